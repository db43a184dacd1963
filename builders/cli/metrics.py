"""`genies metrics`: calibration and OOD metrics for reward scores computed elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import console, summary_table, write_json

COLUMNS = ("file", "n", "accuracy", "ece", "mean_confidence", "auroc", "fpr95")


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def metrics_command(
    shifted: Annotated[list[Path] | None, typer.Argument(help="Scores of shifted data: CSV or Parquet files with columns chosen, rejected.")] = None,
    id_file: Annotated[Path, typer.Option("--id", help="Scores of the in-distribution data (same format); the reference for AUROC and FPR@95.")] = ...,
    out: Annotated[Path | None, typer.Option(help="Directory for reliability diagrams (reliability.png).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the rows as a JSON list of {file, n, accuracy, ece, mean_confidence, auroc, fpr95}; rates are fractions.")] = None,
) -> None:
    """Accuracy, ECE, mean confidence and energy-score OOD detection (AUROC, FPR@95) from reward-score files.

    Each file holds one row per preference pair: the rewards of the chosen and of the rejected response.

    Definitions as in LeVine et al. (2023): confidence = sigmoid(|chosen - rejected|), 10 equal-width bins.

    Energy = -logsumexp(chosen, rejected); the shifted files are the positive (OOD) class against --id.

    Example: [bold]genies metrics --id english.csv german_prompt.csv french.parquet --json m.json --out plots/[/]
    """
    from builders.evaluation import metrics as m
    from builders.evaluation.plots import reliability_grid
    from builders.evaluation.report import write_atomically
    from builders.evaluation.score_files import compare_files

    files, rows = compare_files(id_file, list(shifted or []))
    console.print(summary_table(
        f"Reward-score metrics (ID = {id_file}; rates in %)", ["file", "pairs", "accuracy", "ECE", "mean confidence", "AUROC", "FPR@95"],
        [[r["file"], r["n"], *(_percent(r[c]) for c in COLUMNS[2:])] for r in rows],
    ))
    if json_path is not None:
        write_json(json_path, rows)
        console.print(f"wrote {json_path}")
    if out is not None:
        panels = [(f.path.name, {"pairs": m.reliability(*f.pair)}) for f in files]
        written = write_atomically(out, lambda tmp: reliability_grid(panels, tmp / "reliability.png"))
        console.print(f"wrote {', '.join(str(p) for p in written)}")


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics_command)
