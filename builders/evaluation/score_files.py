"""Calibration and OOD metrics for reward scores computed elsewhere (`genies metrics`).

A scores file is CSV or Parquet with numeric columns `chosen` and `rejected`, one row per preference
pair: the rewards a model gave the preferred and the dispreferred response. This is the format of the
published scores of LeVine et al. (2023), so their tables can be reproduced from their files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from builders.errors import GeniesError
from builders.evaluation import metrics

SCORE_COLUMNS = ("chosen", "rejected")
_READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ScoreFile:
    path: Path
    chosen: NDArray[np.float64]
    rejected: NDArray[np.float64]

    @property
    def pair(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return self.chosen, self.rejected


def _read_frame(path: Path) -> pl.DataFrame:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise GeniesError(f"{path}: unsupported file type {path.suffix or '(none)'}", "use a .csv or .parquet file")
    if kind == "parquet":
        return pl.read_parquet(path)
    schema = {c: pl.Float64 for c in SCORE_COLUMNS}
    return pl.read_csv(path, separator="\t" if kind == "tsv" else ",", schema_overrides=schema)


def load_scores(path: Path | str) -> ScoreFile:
    """Read a scores file, refusing anything that is not a clean pair of finite numeric columns."""
    path = Path(path)
    if not path.is_file():
        raise GeniesError(f"no such scores file: {path}", "pass CSV or Parquet files with columns chosen, rejected")
    try:
        frame = _read_frame(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise GeniesError(f"{path}: cannot read it as a scores file ({exc})".splitlines()[0],
                          "each file needs numeric columns chosen and rejected, one row per preference pair") from exc
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise GeniesError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(frame.columns)})",
                          "name the reward columns chosen and rejected")
    try:
        values = frame.select(pl.col(c).cast(pl.Float64, strict=True) for c in SCORE_COLUMNS).to_numpy()
    except pl.exceptions.PolarsError as exc:
        raise GeniesError(f"{path}: columns chosen and rejected must be numeric", "remove text values from them") from exc
    if values.shape[0] == 0:
        raise GeniesError(f"{path}: has no rows", "score at least one preference pair")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise GeniesError(f"{path}: {bad.size} row(s) with a missing or non-finite reward, first at row {bad[0] + 1}",
                          "drop or re-score those pairs")
    return ScoreFile(path, values[:, 0].copy(), values[:, 1].copy())


def _rate(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def file_metrics(scores: ScoreFile, in_distribution: ScoreFile | None) -> dict[str, Any]:
    """The row `genies metrics` reports for one file; OOD columns only against an ID file."""
    summary = metrics.summarize(*scores.pair)
    row: dict[str, Any] = {
        "file": str(scores.path), "n": summary.n, "accuracy": _rate(summary.accuracy), "ece": _rate(summary.ece),
        "mean_confidence": _rate(summary.mean_confidence), "auroc": None, "fpr95": None,
    }
    if in_distribution is not None:
        ood = metrics.energy_ood(in_distribution.pair, scores.pair)
        row.update(auroc=_rate(ood.auroc), fpr95=_rate(ood.fpr95))
    return row


def compare_files(id_file: Path | str, shifted: list[Path | str]) -> tuple[list[ScoreFile], list[dict[str, Any]]]:
    """Load every file first (so a bad file fails before any output), then one metrics row per file."""
    reference = load_scores(id_file)
    others = [load_scores(p) for p in shifted]
    rows = [file_metrics(reference, None)] + [file_metrics(s, reference) for s in others]
    return [reference, *others], rows
