"""`genies export`: a version's distributions in the layouts TRL, RewardBench and RewardBench 2 read."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import Artifacts, console, open_version, summary_table


def export_command(
    version: Annotated[str, typer.Argument(help="Version directory, dataset/version, or a version under ./artifacts.")],
    fmt: Annotated[str, typer.Option("--format", help="trl, rewardbench, rewardbench2 or jsonl (docs/evaluation.md describes each).")],
    out: Annotated[Path, typer.Option(help="Folder to write into (new, empty, or an earlier export, which is replaced).")],
    distributions: Annotated[str | None, typer.Option(help="Comma-separated distributions (default: every one in the version).")] = None,
    shift: Annotated[str | None, typer.Option(help="One shift, SOURCE->TARGET: its source, target and target reference.")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Every distribution of a benchmark's shifts, e.g. genies.")] = None,
    artifacts: Artifacts = None,
) -> None:
    """Write one file set per distribution and split in a consumer's own layout, loadable with datasets.load_dataset.

    Example: [bold]genies export genies/1.0.0 --format trl --shift "alpaca_easy->alpaca_hard" --out exports/trl[/]
    """
    from builders.discovery import catalog
    from builders.downstream import export_downstream, selection

    opened = open_version(version, artifacts)
    names, missing = selection(opened, catalog(), distributions=(distributions or "").split(","), shift=shift,
                               benchmark=benchmark)
    chosen = {"--distributions": distributions, "--shift": shift, "--benchmark": benchmark}
    command = shlex.join(["genies", "export", version, "--format", fmt, "--out", str(out),
                          *[part for option, value in chosen.items() if value for part in (option, value)]])
    written = export_downstream(opened, fmt, names, out, command, missing=missing)
    console.print(summary_table(f"{fmt} export of {opened.path} into {out}", ["file", "rows"],
                                [(f.path, f.rows) for f in written]))
    if missing:
        console.print(f"not in this version, so not exported: {', '.join(missing)}")
    console.print(f"wrote {len(written)} files and README.md to {out}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
