"""Write evaluation results: Parquet + JSON (one row per shift), a Markdown summary, and plots.

Everything is rendered into a hidden temporary folder inside the output directory first and then moved
into place file by file, so a failed run never leaves a half-written results file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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


def markdown_summary(rows: Sequence[dict[str, Any]], title: str) -> str:
    """A Markdown table of the headline metrics, the means, and every skipped shift with its reason."""
    done = [r for r in rows if r["status"] == "ok"]
    lines = [f"# {title}", "", "| " + " | ".join(SUMMARY_COLUMNS.values()) + " |",
             "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in SUMMARY_COLUMNS) + " |" for r in done]
    means = {c: mean_of(done, c) for c in SUMMARY_COLUMNS if c not in ("shift", "category")}
    lines.append("| **mean** | | " + " | ".join(_fmt(v) for v in means.values()) + " |")
    skipped = [r for r in rows if r["status"] != "ok"]
    if skipped:
        lines += ["", "Skipped shifts:", ""] + [f"- `{r['shift']}`: {r['skipped_reason']}" for r in skipped]
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


def write_eval_outputs(results: Sequence[ShiftResult], out: Path, meta: dict[str, str]) -> list[Path]:
    """results.parquet, results.json, summary.md and the PNG plots under `out`."""
    rows = [r.row for r in results]
    title = f"GENIES evaluation: {meta.get('version', '')} with scorer {meta.get('scorer', '')}"

    def render(tmp: Path) -> None:
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA).replace_schema_metadata(
            {f"genies.{k}": str(v) for k, v in meta.items()}
        )
        pq.write_table(table, tmp / "results.parquet")
        (tmp / "results.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        (tmp / "summary.md").write_text(markdown_summary(rows, title))
        _render_plots(results, tmp)

    return write_atomically(out, render)

