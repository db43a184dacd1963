"""`genies import-release`: the original GENIES release as a versioned Arrow dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from builders.cli.common import console, summary_table
from builders.export import artifacts_root

if TYPE_CHECKING:
    from builders.release import ImportReport


def _print_report(report: ImportReport) -> None:
    rows = []
    skipped = {}
    for problem in report.malformed:
        skipped[problem.path.split("/")[0]] = skipped.get(problem.path.split("/")[0], 0) + 1
    for name, splits in report.distributions.items():
        note = "not in catalog" if name in report.not_in_catalog else ""
        rows.append((name, splits.get("train", 0), splits.get("test", 0), skipped.get(name, 0), note))
    console.print(summary_table("Imported distributions", ["distribution", "train", "test", "skipped", "note"], rows))
    if report.stray:
        console.print(summary_table("Stray files (skipped)", ["path", "reason"], [(p.path, p.reason) for p in report.stray]))
    if report.malformed:
        console.print(summary_table(
            "Malformed (skipped)", ["path", "index", "reason"],
            [(p.path, "" if p.index is None else p.index, p.reason) for p in report.malformed[:50]],
        ))
        if len(report.malformed) > 50:
            console.print(f"... and {len(report.malformed) - 50} more (all listed in manifest.json under import.malformed)")
    diff = report.shifts_diff
    if diff is not None:
        console.print(
            f"Release shift files: {diff['release_entries']} entries, {diff['release_unique']} unique pairs; "
            f"only in release: {len(diff['only_in_release'])}, only in catalog: {len(diff['only_in_catalog'])}, "
            f"field differences: {len(diff['differences'])}"
        )
        for d in diff["differences"]:
            console.print(f"  {d['shift']}: {d['field']} release={d['release']!r} catalog={d['catalog']!r}")
        for name in diff["only_in_release"] + diff["only_in_catalog"]:
            side = "release" if name in diff["only_in_release"] else "catalog"
            console.print(f"  {name}: only in the {side}")
    total = sum(sum(s.values()) for s in report.distributions.values())
    result = report.result
    verb = "already present, identical: nothing written" if result.status == "unchanged" else "written"
    console.print(
        f"[bold]{len(report.distributions)} distributions, {total} examples imported, "
        f"{report.examples_skipped} examples skipped ({report.skipped_by_reason() or 'none'}), "
        f"{len(report.stray)} stray files skipped.[/]\nVersion {result.path}: {verb}."
    )


def import_release_command(
    release_dir: Annotated[Path, typer.Argument(help="The release folder (holding distributions/ and optionally distribution_shifts/).")],
    version: Annotated[str, typer.Option(help="Version to write, e.g. 1.0.0.")],
    out: Annotated[Path | None, typer.Option(help="Artifacts root; the version goes to OUT/DATASET/VERSION "
                                                  "(default: $GENIES_ARTIFACTS or ./artifacts).")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name under the artifacts root.")] = "genies-release",
) -> None:
    """Convert the original GENIES release into the canonical schema, as an immutable version.

    Stray files (extra.json, *-copy.json, editor swap files, sub-folders) and malformed examples are
    reported and skipped; the release's distribution_shifts/ files are compared with the catalog.

    Example: [bold]genies import-release ../shared/genies-release-sample --out artifacts --version 1.0.0[/]
    """
    from builders.release import import_release

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("importing", total=None)
        report = import_release(release_dir, artifacts_root(out), version, dataset=dataset,
                                progress=lambda name: progress.update(task, advance=1, description=name))
    _print_report(report)


def register(app: typer.Typer) -> None:
    app.command("import-release")(import_release_command)
