"""`genies eval`: the reference reward-model evaluation of a version's shifts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from builders.cli.common import Artifacts, console, open_version, summary_table
from builders.errors import GeniesError
from builders.export import Version

if TYPE_CHECKING:
    from builders.catalog import Shift
    from builders.evaluation.report import Coverage
    from builders.evaluation.runner import ShiftResult
    from builders.evaluation.scorers import Scorer

TABLE_COLUMNS = {
    "shift": "shift", "source_accuracy": "src acc", "target_accuracy": "tgt acc", "zero_shot_accuracy": "0-shot",
    "target_reference_accuracy": "ceiling", "differential_elicitation": "DE", "target_ece": "tgt ECE",
    "energy_auroc": "AUROC", "energy_fpr95": "FPR95",
}


def _default_out(version: Version, scorer: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", scorer).strip("_")
    return Path("eval-results") / version.manifest.get("dataset", "dataset") / version.manifest.get("version", version.path.name) / slug


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "" if value is None else str(value)


def _table_row(result: ShiftResult) -> list[str]:
    if not result.ok:
        return [result.row["shift"], "skipped"] + [""] * (len(TABLE_COLUMNS) - 2)
    return [_cell(result.row[c]) for c in TABLE_COLUMNS]


def _run(version: Version, shifts: list[Shift], scorer: Scorer) -> list[ShiftResult]:
    from builders.evaluation.runner import evaluate_shifts

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"evaluating with {scorer.name}", total=len(shifts))
        for spec, result in zip(shifts, evaluate_shifts(version, shifts, scorer)):
            results.append(result)
            progress.update(task, advance=1, description=f"evaluated {spec.name}")
    return results


def _notes(scorer: Scorer) -> list[str]:
    """What a reader must know to read the numbers: a frozen scorer has no ceiling and no DE."""
    if scorer.trains:
        return []
    return [f"{scorer.name} is frozen (never trained on a source or a target reference), so its accuracy on the "
            "target reference is no ceiling: target_reference_accuracy (ceiling) and differential_elicitation "
            "are null"]


def _mean_row(rows: list[dict], statement: str) -> list[str]:
    from builders.evaluation.report import mean_of

    done = [r for r in rows if r["status"] == "ok"]
    return [statement] + [_cell(mean_of(done, c)) for c in list(TABLE_COLUMNS)[1:]]


def _refuse_partial(results: list[ShiftResult], coverage: Coverage) -> None:
    """--strict: a mean over fewer shifts than were selected is an error, not a number to report."""
    skipped = [r.row["shift"] for r in results if not r.ok]
    raise GeniesError(
        f"--strict: {coverage.statement}; skipped: {', '.join(skipped)}",
        "build the missing distributions (the table says what each shift lacks) or drop --strict",
    )


def eval_command(
    path: Annotated[str, typer.Argument(help="An exported version: a directory, dataset/version, or a bare version.")],
    shifts: Annotated[str, typer.Option(help="genies (the 15-shift benchmark), all, or comma-separated source->target names.")] = "genies",
    scorer: Annotated[str, typer.Option(help="bow, minilm, or hf:<path-or-hub-id> of a sequence-classification reward model.")] = "bow",
    out: Annotated[Path | None, typer.Option(help="Directory for results.parquet/.json, summary.md and plots (default: eval-results/DATASET/VERSION/SCORER).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size of the hf: and minilm scorers.")] = 16,
    max_length: Annotated[int, typer.Option(min=8, help="hf: scorer: truncate each (prompt, response) pair to this many tokens.")] = 512,
    strict: Annotated[bool, typer.Option(help="Fail (exit 2, nothing written) unless every selected shift is evaluated.")] = False,
    artifacts: Artifacts = None,
) -> None:
    """Train a scorer on each shift's source, test on its target: accuracy, calibration, OOD detection, DE.

    Every selected shift gets a row; one the version lacks is `skipped` with its reason, and every mean
    says what it is over ("mean over 7 of 15 GENIES shifts").

    Example: [bold]genies eval artifacts/genies/1.0.0 --shifts genies --scorer bow --out results/bow[/]
    """
    from builders.evaluation.report import Coverage, mean_of, write_eval_outputs
    from builders.evaluation.runner import coverage_scope, select_shifts
    from builders.evaluation.scorers import build_scorer

    version = open_version(path, artifacts)
    chosen = select_shifts(version, shifts)
    model = build_scorer(scorer, batch_size=batch_size, max_length=max_length)
    results = _run(version, chosen, model)
    rows = [r.row for r in results]
    coverage = Coverage.of(rows, coverage_scope(shifts))
    console.print(summary_table(
        f"Evaluation of {version.path} with {scorer}: {coverage.statement}", list(TABLE_COLUMNS.values()),
        [*(_table_row(r) for r in results), _mean_row(rows, coverage.statement)],
    ))
    for result in results:
        if not result.ok:
            console.print(f"skipped {result.row['shift']}: {result.row['skipped_reason']}")
    notes = _notes(model)
    for note in notes:
        console.print(f"[dim]note[/] {note}")
    if not coverage.evaluated:
        raise GeniesError(
            f"none of the {len(results)} selected shifts could be evaluated on {version.path}",
            "the table says what each shift lacks; build or import those distributions, or choose other --shifts",
        )
    if strict and not coverage.complete:
        _refuse_partial(results, coverage)
    target = out or _default_out(version, scorer)
    meta = {"version": str(version.path), "content_sha256": version.manifest.get("content_sha256", ""), "scorer": scorer}
    written = write_eval_outputs(results, target, meta, coverage, notes)
    done = [r for r in rows if r["status"] == "ok"]
    console.print(f"{coverage.statement}: source accuracy {_cell(mean_of(done, 'source_accuracy'))}, "
                  f"target accuracy {_cell(mean_of(done, 'target_accuracy'))}")
    console.print(f"wrote {len(written)} files to {target}: {', '.join(p.name for p in written)}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
