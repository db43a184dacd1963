"""`genies list`: categories, shifts and distributions of the catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from builders.cli.common import console, print_json, summary_table


def _buildable(name: str, needs_llm: bool, builders: dict) -> str:
    builder = builders.get(name)
    if builder is None:
        return "no builder yet"
    return "needs LLM" if builder.needs_llm or needs_llm else "yes"


def list_command(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Only shifts of this benchmark suite, e.g. genies.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """List categories, shifts and distributions.

    Example: [bold]genies list --benchmark genies[/]
    """
    from builders.catalog import load_catalog
    from builders.registry import discover, plugin_catalog_dirs

    catalog = load_catalog(plugin_catalog_dirs())
    builders = discover()
    shifts = catalog.select_shifts(category=category, benchmark=benchmark)
    if as_json:
        data = catalog.to_json()
        data["shifts"] = [s.to_dict() for s in shifts]
        for d in data["distributions"]:
            d["buildable"] = _buildable(d["name"], catalog.distributions[d["name"]].needs_llm, builders)
        print_json(data)
        return
    console.print(summary_table(
        "Categories", ["category", "label", "shifts", "description"],
        [(c.name, c.label, sum(s.category == c.name for s in catalog.shifts), c.description)
         for c in catalog.categories.values() if category in (None, c.name)],
    ))
    console.print(summary_table(
        f"Shifts ({len(shifts)})", ["category", "source", "target", "target_reference", "benchmarks"],
        [(s.category, s.source, s.target, s.target_reference or "", ",".join(s.benchmarks)) for s in shifts],
    ))
    families = [f for f in catalog.families.values() if category in (None, f.category)]
    if families:
        console.print(summary_table(
            "Families (any base distribution; the grid lists the default members)",
            ["family", "category", "member name", "default grid"],
            [(f.name, f.category, f.member, "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in f.grid.items()))
             for f in families],
        ))
    wanted = set(catalog.distributions_in(shifts)) if (category or benchmark) else set(catalog.distributions)
    console.print(summary_table(
        f"Distributions ({len(wanted)})", ["distribution", "build", "sources", "categories", "buildable"],
        [(d.name, d.build, ",".join(d.sources), ",".join(d.categories), _buildable(d.name, d.needs_llm, builders))
         for d in catalog.distributions.values() if d.name in wanted],
    ))


def register(app: typer.Typer) -> None:
    app.command("list")(list_command)
