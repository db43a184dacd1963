"""`genies list`: categories, shifts and distributions of the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from builders.cli.build import CacheDir, Mirror
from builders.cli.common import console, print_json, summary_table

if TYPE_CHECKING:
    from builders.catalog import Catalog
    from builders.pipeline import Buildability


def _buildability(catalog: Catalog, mirror: list[str] | None, cache_dir: Path | None,
                  llm: bool | None) -> dict[str, Buildability]:
    """Each distribution's buildability as `build` decides it, with these mirrors, cache and LLM engine."""
    from builders.discovery import discover
    from builders.llm.config import llm_configured
    from builders.pipeline import BuildOptions, buildability

    discover()
    options = BuildOptions(mirror=tuple(mirror) if mirror else None, cache_dir=cache_dir)
    has_llm = llm_configured() if llm is None else llm
    return {name: buildability(name, catalog, options, has_llm) for name in catalog.distributions}


def list_command(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Only shifts of this benchmark suite, e.g. genies.")] = None,
    mirror: Mirror = None,
    cache_dir: CacheDir = None,
    llm: Annotated[bool | None, typer.Option(
        "--llm/--no-llm", help="Say what builds with (or without) an LLM engine (default: whether "
                               "OPENAI_BASE_URL / OPENAI_API_KEY or the LLM config file name one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """List categories, shifts and distributions, and what can be built here.

    `buildable` is decided by the same function as `genies build`'s skips, with the same reasons: a
    builder, the LLM engine (--llm/--no-llm), the sources in --mirror or the cache.

    Example: [bold]genies list --benchmark genies --mirror ../shared/sources --no-llm[/]
    """
    from builders.discovery import catalog as shared_catalog

    catalog = shared_catalog()
    shifts = catalog.select_shifts(category=category, benchmark=benchmark)
    buildable = _buildability(catalog, mirror, cache_dir, llm)
    if as_json:
        data = catalog.to_json()
        data["shifts"] = [s.to_dict() for s in shifts]
        for d in data["distributions"]:
            d["buildable"] = buildable[d["name"]].label
            d["skip_kind"] = buildable[d["name"]].kind or None
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
        [(d.name, d.build, ",".join(d.sources), ",".join(d.categories), buildable[d.name].label)
         for d in catalog.distributions.values() if d.name in wanted],
    ))


def register(app: typer.Typer) -> None:
    app.command("list")(list_command)
