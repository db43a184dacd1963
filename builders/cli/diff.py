"""`genies diff A B`: compare two versions by example id, schema, shifts and summary statistics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from builders.cli.common import (
    Artifacts,
    console,
    err_console,
    json_target,
    open_version,
    summary_table,
    write_json,
)

if TYPE_CHECKING:
    from builders.diff import VersionDiff


def _arrow(a: object, b: object) -> str:
    return str(a) if a == b else f"{a} -> {b}"


def _print_distributions(diff: VersionDiff, show_all: bool) -> None:
    shown = [d for d in diff.distributions if show_all or d.status != "unchanged"]
    console.print(summary_table(
        f"Distributions ({len(shown)} of {len(diff.distributions)} shown)",
        ["distribution", "status", "train", "test", "added", "removed", "changed", "moved", "reordered", "schema"],
        [(d.name, d.status, _arrow(d.rows_a.get("train", 0), d.rows_b.get("train", 0)),
          _arrow(d.rows_a.get("test", 0), d.rows_b.get("test", 0)), d.counts["added"], d.counts["removed"],
          d.counts["changed"], d.counts["moved"], d.counts["reordered"], "; ".join(d.schema_changes))
         for d in shown],
    ))


def _stat(stats: dict, key: str, percent: bool = False) -> str:
    value = stats.get(key)
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if percent else f"{value:.0f}"


def _print_stats(diff: VersionDiff, show_all: bool) -> None:
    shown = [d for d in diff.distributions if show_all or d.status != "unchanged"]
    if not shown:
        return
    rows = []
    for d in shown:
        a, b = d.stats_a, d.stats_b
        positions = [f"{_stat(a, f'pos{p}', True)} / {_stat(b, f'pos{p}', True)}" for p in range(4)]
        rows.append((d.name, f"{_stat(a, 'prompt_chars')} / {_stat(b, 'prompt_chars')}",
                     f"{_stat(a, 'preferred_chars')} / {_stat(b, 'preferred_chars')}",
                     f"{_stat(a, 'other_chars')} / {_stat(b, 'other_chars')}", *positions))
    console.print(summary_table(
        "Summary statistics, A / B (mean characters; share of preferred at each position)",
        ["distribution", "prompt", "preferred", "others", "pos 0", "pos 1", "pos 2", "pos 3"], rows,
    ))


def _print_shifts(diff: VersionDiff) -> None:
    rows = [("added", s) for s in diff.shifts["added"]] + [("removed", s) for s in diff.shifts["removed"]]
    rows += [("changed", c["shift"]) for c in diff.shifts["changed"]]
    if rows:
        console.print(summary_table("Shift catalog changes", ["change", "shift"], rows))


def diff_command(
    a: Annotated[str, typer.Argument(help="The old version (directory, dataset/version, or a version under ./artifacts).")],
    b: Annotated[str, typer.Argument(help="The new version.")],
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the full comparison as JSON.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged distributions.")] = False,
    artifacts: Artifacts = None,
) -> None:
    """Compare two versions: rows, schema, examples added/removed/changed/moved by id, shifts, statistics.

    Example: [bold]genies diff genies/1.0.0 genies/1.1.0 --json diff.json[/]
    """
    from builders.diff import diff_versions

    json_target(json_file)
    with err_console.status("comparing versions"):
        diff = diff_versions(open_version(a, artifacts), open_version(b, artifacts))
    if diff.manifest:
        console.print(summary_table("Manifest changes", ["field", "A", "B"],
                                    [(k, str(v["a"])[:60], str(v["b"])[:60]) for k, v in diff.manifest.items()]))
    _print_distributions(diff, show_all)
    _print_stats(diff, show_all)
    _print_shifts(diff)
    if json_file is not None:
        write_json(json_file, diff.to_dict())
        console.print(f"wrote {json_file}")
    changed = sum(d.status != "unchanged" for d in diff.distributions)
    console.print("the versions hold identical examples and shifts" if diff.identical
                  else f"{changed} of {len(diff.distributions)} distributions differ")


def register(app: typer.Typer) -> None:
    app.command("diff")(diff_command)
