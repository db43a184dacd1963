"""`genies repair`: a repaired GENIES release with every change recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import console, summary_table
from builders.export import DEFAULT_ROOT


def repair_command(
    source: Annotated[str, typer.Argument(help="The imported version to repair (path, dataset/version or version).")],
    version: Annotated[str, typer.Option(help="Version to write for the repaired release, e.g. 1.1.0.")],
    out: Annotated[Path, typer.Option(help="Artifacts root; the version goes to OUT/DATASET/VERSION.")] = DEFAULT_ROOT,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: the source's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for re-splitting and response order.")] = 0,
) -> None:
    """Fix leaks, position cues, prompts missing their question, debris and duplicates; log every change.

    Writes changelog.json (per distribution: removed, moved, rewritten and flagged examples by row key and
    id; dropped distributions) and a summary in the dataset card.

    Example: [bold]genies repair genies-release/1.0.0 --version 1.0.1-repaired[/]
    """
    from builders.repair import repair_version

    report = repair_version(source, out, version, seed=seed, dataset=dataset)
    rows = [(name, c["train_rows"], c["test_rows"], c["removed"], c["moved"], c["rewritten"], c["flagged"])
            for name, c in report.counts().items()]
    console.print(summary_table("Repaired distributions",
                                ["distribution", "train", "test", "removed", "moved", "rewritten", "flagged"], rows))
    for name, why in sorted(report.dropped.items()):
        console.print(f"[yellow]dropped[/] {name}: {why}")
    for name, change in sorted(report.changes.items()):
        if change.size_note:
            console.print(f"[dim]{name}: {change.size_note}[/]")
    result = report.result
    verb = "already present, identical: nothing written" if result.status == "unchanged" else "written"
    console.print(f"[bold]Version {result.path}: {verb}.[/] Changelog: {result.path / 'changelog.json'}")


def register(app: typer.Typer) -> None:
    app.command("repair")(repair_command)
