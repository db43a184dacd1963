"""`genies repair`: a repaired GENIES release with every change recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import announce_version, console, summary_table
from builders.export import artifacts_root


def repair_command(
    source: Annotated[str, typer.Argument(help="The imported version to repair (path, dataset/version or version).")],
    version: Annotated[str, typer.Option(help="Version to write for the repaired release, e.g. 1.1.0.")],
    out: Annotated[Path | None, typer.Option(
        help="Artifacts root: SOURCE is looked up under it and the version goes to OUT/DATASET/VERSION "
             "(default: $GENIES_ARTIFACTS or ./artifacts).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: the source's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for re-splitting and response order.")] = 0,
    relabel: Annotated[bool, typer.Option(
        "--relabel/--no-relabel",
        help="Flip a label when the prompt's rule-checkable instruction (all caps, yes/no, ...) decides which "
             "response obeys; --no-relabel only flags it.")] = True,
) -> None:
    """Fix leaks, position cues, prompts missing their question, debris and duplicates; log every change.

    Writes changelog.json (per distribution: removed, moved, rewritten, relabelled and flagged examples by
    row key and id; dropped distributions) and a summary with counts per distribution in the dataset card.
    Fails without writing anything if the re-split would leave a prompt or group on both sides of a
    distribution or a shift.

    Example: [bold]genies repair genies-release/1.0.0 --version 1.0.1-repaired[/]
    """
    from builders.repair import repair_version

    root = artifacts_root(out)
    report = repair_version(str(announce_version(source, root)), root, version, seed=seed, dataset=dataset,
                            relabel=relabel)
    kinds = ("removed", "moved", "rewritten", "relabelled", "flagged")
    rows = [(name, c["train_rows"], c["test_rows"], *(c[k] for k in kinds)) for name, c in report.counts().items()]
    console.print(summary_table("Repaired distributions", ["distribution", "train", "test", *kinds], rows))
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
