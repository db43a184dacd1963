"""Validation output: the terminal rows, the JSON document and the Markdown/HTML report with its plots.

Plots are PNGs in `<report stem>_files/` next to the report, so the report can be committed or attached
together with its pictures; the report is written last, after every plot exists.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from builders.errors import GeniesError
from builders.templating import render
from builders.validation.data import distribution_stats
from builders.validation.fidelity import compare_versions, side_by_side
from builders.validation.overlap import overlap_matrix
from builders.validation.run import ValidationReport

REPORT_TEMPLATES = {".md": "reports/validation.md.j2", ".html": "reports/validation.html.j2"}
FAILED_STATUS = {"error": "FAIL", "warning": "WARN", "info": "NOTE"}
MAX_SCOPES_SHOWN = 4


def failing_scopes(scopes: list[str]) -> str:
    shown = ", ".join(scopes[:MAX_SCOPES_SHOWN])
    return shown + (f" (+{len(scopes) - MAX_SCOPES_SHOWN} more)" if len(scopes) > MAX_SCOPES_SHOWN else "")


def summary_rows(report: ValidationReport) -> list[tuple[str, str, str, str, int]]:
    """(check, severity, status, failing distributions or shifts, count) per check, for the terminal table."""
    return [
        (r.check.name, r.check.severity, FAILED_STATUS[r.check.severity] if r.failed else "pass",
         failing_scopes(list(r.by_scope())), r.count)
        for r in report.results
    ]


def _figure_height(rows: int) -> float:
    return max(3.0, 0.16 * rows + 1.5)


def plot_lengths(stats: pl.DataFrame, frame: pl.DataFrame, path: Path) -> None:
    """Left: all preferred vs all other response lengths; right: per-distribution means against each other."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    preferred = frame["preferred_length"].drop_nulls().to_numpy()
    others = (
        frame.select("lengths", "preferred")
        .with_row_index("r")
        .explode("lengths")
        .filter(pl.int_range(pl.len()).over("r") != pl.col("preferred"))["lengths"]
        .drop_nulls()
        .to_numpy()
    )
    bins = np.logspace(0, np.log10(max(preferred.max(initial=1), others.max(initial=1), 10)), 40)
    left.hist([preferred, others], bins=bins, label=["preferred", "other responses"], density=True)
    left.set(xscale="log", xlabel="characters", ylabel="density", title="Response lengths")
    left.legend()
    right.scatter(stats["other_chars"], stats["preferred_chars"], s=14)
    top = max(float(stats["other_chars"].max() or 1), float(stats["preferred_chars"].max() or 1))
    right.plot([1, top], [1, top], color="grey", linewidth=0.8)
    right.set(xscale="log", yscale="log", xlabel="mean other length", ylabel="mean preferred length",
              title="Per distribution (above the line: preferred is longer)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_positions(stats: pl.DataFrame, path: Path) -> None:
    """Stacked share of the preferred position per distribution: a balanced one shows even stripes."""
    names = stats["dist"].to_list()
    fig, ax = plt.subplots(figsize=(8, _figure_height(len(names))))
    rows = np.arange(len(names))
    left = np.zeros(len(names))
    for p in range(4):
        values = stats[f"pos{p}"].fill_null(0).to_numpy()
        ax.barh(rows, values, left=left, label=f"position {p}")
        left += values
    ax.set_yticks(rows, names, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="share of examples", xlim=(0, 1), title="Preferred response position")
    ax.legend(loc="lower right", fontsize=7)
    fig.subplots_adjust(left=0.3, right=0.97)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_overlap(report: ValidationReport, path: Path) -> None:
    """Train (rows) x test (columns) overlap counts between the distributions the shifts pair up."""
    shifts = report.loaded.shifts()
    names = sorted({s[k] for s in shifts for k in ("source", "target") if s.get(k)} & set(report.loaded.distributions))
    names = names or report.loaded.distributions
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(names), len(names)))
    for train, test, count in overlap_matrix(report.loaded).iter_rows():
        if train in index and test in index:
            matrix[index[train], index[test]] = count
    size = max(4.0, 0.16 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(np.log10(matrix + 1), cmap="Reds")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set(xlabel="test split of", ylabel="train split of", title="Overlapping test examples (log10(n+1))")
    fig.colorbar(image, ax=ax, shrink=0.7)
    fig.subplots_adjust(left=0.25, bottom=0.25, right=0.95, top=0.95)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fidelity_tables(report: ValidationReport) -> dict | None:
    """The `--against` comparison for the report: the reference's path and, per distribution, its
    mismatches and its (measure, NEW, REFERENCE) rows; None without a reference."""
    reference = report.loaded.reference
    if reference is None:
        return None
    return {"reference": str(reference.version.path),
            "distributions": [{"dist": c.dist, "mismatches": c.mismatches(), "rows": side_by_side(c)}
                              for c in compare_versions(report.loaded)]}


def report_template(path: Path) -> str:
    """The template for a report file name; checked before any work so a bad name fails fast."""
    template = REPORT_TEMPLATES.get(path.suffix.lower())
    if template is None:
        raise GeniesError(f"cannot write a report as {path.name}", "name the report FILE.md or FILE.html")
    return template


def write_report(report: ValidationReport, path: Path) -> list[Path]:
    """Write the plots, then the Markdown or HTML report that embeds them; returns every file written."""
    template = report_template(path)
    assets = path.parent / f"{path.stem}_files"
    assets.mkdir(parents=True, exist_ok=True)
    stats = distribution_stats(report.loaded.frame)
    plots = {"lengths": assets / "lengths.png", "positions": assets / "positions.png", "overlap": assets / "overlap.png"}
    plot_lengths(stats, report.loaded.frame, plots["lengths"])
    plot_positions(stats, plots["positions"])
    plot_overlap(report, plots["overlap"])
    text = render(
        template,
        report=report.to_dict(),
        rows=summary_rows(report),
        stats=stats.to_dicts(),
        plots={k: f"{assets.name}/{p.name}" for k, p in plots.items()},
        fidelity=fidelity_tables(report),
    )
    path.write_text(text)
    return [*plots.values(), path]
