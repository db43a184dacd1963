"""Write evaluation results: Parquet + JSON (one row per shift), a Markdown summary, and plots.

Everything is rendered into a hidden temporary folder inside the output directory first and then moved
into place file by file, so a failed run never leaves a half-written results file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from builders.coverage import coverage_statement
from builders.evaluation import plots
from builders.evaluation.runner import RESULT_COLUMNS, ShiftResult

_STRING_COLUMNS = {"shift", "category", "label", "source", "target", "target_reference", "scorer", "status", "skipped_reason"}
_INT_COLUMNS = {"source_pairs", "target_pairs"}
RESULT_SCHEMA = pa.schema([
    pa.field(c, pa.string() if c in _STRING_COLUMNS else pa.int64() if c in _INT_COLUMNS else pa.float64())
    for c in RESULT_COLUMNS
])
SUMMARY_COLUMNS = {
    "shift": "shift", "category": "category", "source_accuracy": "source acc", "target_accuracy": "target acc",
    "zero_shot_accuracy": "zero-shot acc", "target_reference_accuracy": "ceiling",
    "differential_elicitation": "DE", "target_ece": "target ECE", "energy_auroc": "AUROC", "energy_fpr95": "FPR@95",
}


def write_atomically(out: Path, render: Callable[[Path], None]) -> list[Path]:
    """Let `render` fill a temporary folder, then move each file it wrote into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=out) as tmp:
        render(Path(tmp))
        written = []
        for path in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            final = out / path.relative_to(tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            written.append(final)
    return written


def mean_of(rows: Sequence[dict[str, Any]], column: str) -> float | None:
    values = [r[column] for r in rows if r.get(column) is not None]
    return float(np.mean(values)) if values else None


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Coverage:
    """How many of the selected shifts a mean is over, stated beside every mean (table, summary, JSON)."""

    evaluated: int
    selected: int
    scope: str

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]], scope: str) -> Coverage:
        return cls(sum(r["status"] == "ok" for r in rows), len(rows), scope)

    @property
    def statement(self) -> str:
        return coverage_statement(self.evaluated, self.selected, self.scope)

    @property
    def complete(self) -> bool:
        return self.evaluated == self.selected

    def to_dict(self) -> dict[str, Any]:
        return {"evaluated": self.evaluated, "selected": self.selected, "scope": self.scope,
                "statement": self.statement}


def means(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The mean of every headline metric over the evaluated rows."""
    done = [r for r in rows if r["status"] == "ok"]
    return {c: mean_of(done, c) for c in SUMMARY_COLUMNS if c not in ("shift", "category")}


def markdown_summary(rows: Sequence[dict[str, Any]], title: str, coverage: Coverage, notes: Sequence[str] = ()) -> str:
    """A Markdown table of the headline metrics, the means with their coverage, every skipped shift with
    its reason, and the notes (e.g. why a frozen scorer has no ceiling)."""
    done = [r for r in rows if r["status"] == "ok"]
    lines = [f"# {title}", "", f"**{coverage.statement}**", "", "| " + " | ".join(SUMMARY_COLUMNS.values()) + " |",
             "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in SUMMARY_COLUMNS) + " |" for r in done]
    lines.append(f"| **{coverage.statement}** | | " + " | ".join(_fmt(v) for v in means(rows).values()) + " |")
    skipped = [r for r in rows if r["status"] != "ok"]
    if skipped:
        lines += ["", "Skipped shifts:", ""] + [f"- `{r['shift']}`: {r['skipped_reason']}" for r in skipped]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += ["", "Rates are fractions in [0, 1]. Definitions: docs/evaluation.md.", ""]
    return "\n".join(lines)


def _render_plots(results: Sequence[ShiftResult], tmp: Path) -> None:
    done = [r for r in results if r.ok]
    if not done:
        return
    rows = [r.row for r in done]
    panels = [(r.spec.name, {"source test": r.source.bins, "target test": r.target.bins}) for r in done]
    plots.reliability_grid(panels, tmp / "reliability.png")
    plots.grouped_bars(rows, {
        "source_accuracy": "source (ID)", "target_accuracy": "target after source training",
        "zero_shot_accuracy": "zero-shot", "target_reference_accuracy": "ceiling (reference)",
    }, "Pairwise accuracy per shift", tmp / "accuracy.png")
    plots.grouped_bars(rows, {"differential_elicitation": "differential elicitation"},
                       "Differential elicitation per shift", tmp / "differential_elicitation.png")
    plots.auroc_by_category(rows, tmp / "auroc_by_category.png")


def results_json(rows: Sequence[dict[str, Any]], meta: dict[str, str], coverage: Coverage,
                 notes: Sequence[str]) -> dict[str, Any]:
    """results.json: the run (version, hash, scorer), the coverage and means, the notes, and every row."""
    return {**meta, "coverage": coverage.to_dict(), "means": means(rows), "notes": list(notes), "rows": list(rows)}


def write_eval_outputs(results: Sequence[ShiftResult], out: Path, meta: dict[str, str], coverage: Coverage,
                       notes: Sequence[str] = ()) -> list[Path]:
    """results.parquet, results.json, summary.md and the PNG plots under `out`."""
    rows = [r.row for r in results]
    title = f"GENIES evaluation: {meta.get('version', '')} with scorer {meta.get('scorer', '')}"

    def render(tmp: Path) -> None:
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA).replace_schema_metadata(
            {f"genies.{k}": str(v) for k, v in {**meta, "coverage": coverage.statement}.items()}
        )
        pq.write_table(table, tmp / "results.parquet")
        document = results_json(rows, meta, coverage, notes)
        (tmp / "results.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        (tmp / "summary.md").write_text(markdown_summary(rows, title, coverage, notes))
        _render_plots(results, tmp)

    return write_atomically(out, render)

