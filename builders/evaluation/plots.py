"""Figures for evaluation results: reliability diagrams, per-shift bars, AUROC by category.

Every function draws one PNG with matplotlib's non-interactive backend and returns its path, so plots
work on headless machines and in CI.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from builders.evaluation.metrics import Reliability  # noqa: E402

DPI = 110


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def draw_reliability(ax: Axes, series: Mapping[str, Reliability], title: str) -> None:
    """Accuracy per confidence bin for each series, against the diagonal of perfect calibration."""
    ax.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="gray", linewidth=1)
    for label, bins in series.items():
        centers = (bins.edges[:-1] + bins.edges[1:]) / 2
        filled = bins.counts > 0
        ax.plot(centers[filled], bins.accuracy[filled], marker="o", label=f"{label} (ECE {bins.ece:.3f})")
    ax.set_xlim(0.45, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("confidence sigmoid(|Δ|)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def reliability_grid(panels: Sequence[tuple[str, Mapping[str, Reliability]]], path: Path) -> Path:
    """One reliability diagram per panel (a shift, or a scores file), in a grid of up to four columns."""
    columns = min(4, max(1, len(panels)))
    rows = math.ceil(len(panels) / columns) or 1
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels):
        draw_reliability(ax, series, title)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path)


def grouped_bars(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str], title: str, path: Path) -> Path:
    """Bars per shift, one bar per metric column (`columns` maps column to legend label); nulls omitted."""
    names = [r["shift"] for r in rows]
    width = 0.8 / max(1, len(columns))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(names) * (len(columns) + 1) + 3), 5.5))
    x = np.arange(len(names))
    for i, (column, label) in enumerate(columns.items()):
        values = [np.nan if r.get(column) is None else r[column] for r in rows]
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, values, width, label=label)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def auroc_by_category(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Mean energy AUROC per category (bars) with each shift's AUROC as a dot; 0.5 is chance."""
    by_category: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("energy_auroc") is not None:
            by_category[r["category"] or "uncategorised"].append(r["energy_auroc"])
    categories = sorted(by_category)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(categories)), 4))
    x = np.arange(len(categories))
    ax.bar(x, [np.mean(by_category[c]) for c in categories], color="tab:blue", alpha=0.6)
    for i, c in enumerate(categories):
        ax.scatter(np.full(len(by_category[c]), i), by_category[c], color="black", s=12, zorder=3)
    ax.axhline(0.5, linestyle="--", color="gray", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xticks(x, categories, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("energy AUROC (OOD = target)")
    ax.set_title("OOD detection of each shift's target, by category")
    return _save(fig, path)
