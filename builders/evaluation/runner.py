"""Evaluate a scorer on the shifts of an exported version: one result row per shift.

For a shift source -> target with reference distribution ref (target_reference, or the target):

- source_accuracy / _ece / _mean_confidence: trained on source train, tested on source test;
- target_accuracy / _ece / _mean_confidence: the same model, tested on target test;
- zero_shot_accuracy: the scorer's zero-shot rewards (see `scorers`) on target test;
- target_reference_accuracy: trained on ref train, tested on ref test (the ceiling); a frozen `hf:`
  model is not trained on ref either, so its accuracy there is no ceiling (null);
- differential_elicitation: (target_accuracy - zero_shot_accuracy) / target_reference_accuracy, for
  scorers that train; a frozen `hf:` model is not trained on the source, so it has none (null);
- energy_auroc / energy_fpr95: energy of the source-trained model's rewards, ID = source test pairs,
  OOD = target test pairs.

Each distribution is trained on once and each (model, distribution) is scored once, however many
shifts share them. A shift whose distributions or splits are missing from the version is kept as a row
with status "skipped" and the reason, so a results table always says what was not measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from builders.catalog import Shift
from builders.coverage import BUILT
from builders.errors import GeniesError, check_name
from builders.evaluation import metrics
from builders.evaluation.scorers import Pairs, Scorer, TrainedScorer, pair_rewards
from builders.export import Version

GENIES_BENCHMARK = "genies"
TRAIN, TEST = "train", "test"
RESULT_COLUMNS = (
    "shift", "category", "label", "source", "target", "target_reference", "scorer", "status", "skipped_reason",
    "source_pairs", "target_pairs",
    "source_accuracy", "source_ece", "source_mean_confidence",
    "target_accuracy", "target_ece", "target_mean_confidence",
    "zero_shot_accuracy", "target_reference_accuracy", "differential_elicitation",
    "energy_auroc", "energy_fpr95",
)

Rewards = tuple[NDArray[np.float64], NDArray[np.float64]]


def version_shifts(version: Version) -> list[Shift]:
    """The version's own shifts table (not the installed catalog): what was exported is what is evaluated."""
    if not (version.path / "shifts").is_dir():
        raise GeniesError(f"version {version.path} has no shifts table", "re-export it with `genies build` or `genies import-release`")
    return [
        Shift(
            source=row["source"], target=row["target"], category=row.get("category") or "",
            label=row.get("label") or "", target_reference=row.get("target_reference") or None,
            benchmarks=tuple(row.get("benchmarks") or ()),
        )
        for row in version.shifts().to_pylist()
    ]


def shift_statuses(version: Version) -> dict[str, str]:
    """`source->target` -> the status the version's shifts table records for it (built or missing: why)."""
    table = version.shifts()
    if "status" not in table.column_names:
        return {}
    return {f"{r['source']}->{r['target']}": r["status"] or BUILT
            for r in table.select(["source", "target", "status"]).to_pylist()}


def coverage_scope(spec: str) -> str:
    """What a selection's mean is over, in words: GENIES shifts, all shifts, or the named ones."""
    return {GENIES_BENCHMARK: "GENIES shifts", "all": "shifts of the version"}.get(spec, "selected shifts")


def select_shifts(version: Version, spec: str) -> list[Shift]:
    """`genies` (the 15-shift benchmark), `all`, or comma-separated `source->target` names."""
    shifts = version_shifts(version)
    if spec == "all":
        return shifts
    if spec == GENIES_BENCHMARK:
        chosen = [s for s in shifts if GENIES_BENCHMARK in s.benchmarks]
        if not chosen:
            raise GeniesError(
                f"version {version.path} marks no shift as part of the {GENIES_BENCHMARK} benchmark",
                "pass --shifts all or name shifts as source->target",
            )
        return chosen
    by_name = {s.name: s for s in shifts}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise GeniesError("--shifts is empty", "use genies, all, or names like alpaca_easy->alpaca_hard")
    return [by_name[check_name(n, by_name, "shift")] for n in dict.fromkeys(names)]


def _nullable(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class ShiftResult:
    """A shift's result row plus the reliability bins its plots are drawn from."""

    spec: Shift
    row: dict[str, Any]
    source: metrics.ScoreSummary | None = None
    target: metrics.ScoreSummary | None = None

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"


@dataclass
class Evaluator:
    """Trains and scores lazily, caching by distribution, so shifts that share data share the work."""

    version: Version
    scorer: Scorer
    _pairs: dict[tuple[str, str], Pairs] = field(default_factory=dict)
    _trained: dict[str, TrainedScorer] = field(default_factory=dict)
    _rewards: dict[tuple[str, str, bool], Rewards] = field(default_factory=dict)

    @cached_property
    def statuses(self) -> dict[str, str]:
        """Each shift's `status` as the version's shifts table states it (versions before it have none)."""
        return shift_statuses(self.version)

    def missing(self, spec: Shift) -> str | None:
        """Why this shift cannot be evaluated on this version, or None when it can."""
        status = self.statuses.get(spec.name, BUILT)
        if status != BUILT:
            return status
        present = set(self.version.distributions)
        absent = [d for d in dict.fromkeys([spec.source, spec.target, spec.reference]) if d not in present]
        if absent:
            return f"not in this version: {', '.join(absent)}"
        needed = [(spec.source, TEST), (spec.target, TEST), (spec.reference, TEST)]
        if self.scorer.trains:
            needed += [(spec.source, TRAIN), (spec.reference, TRAIN)]
        empty = [f"{d}/{s}" for d, s in dict.fromkeys(needed) if not len(self.pairs(d, s))]
        return f"no preference pairs in {', '.join(empty)}" if empty else None

    def pairs(self, distribution: str, split: str) -> Pairs:
        key = (distribution, split)
        if key not in self._pairs:
            has_split = (self.version.path / "distributions" / distribution / split).is_dir()
            table = self.version.table(distribution, split) if has_split else None
            self._pairs[key] = Pairs.from_records(table) if table is not None else Pairs([], [], [])
        return self._pairs[key]

    def trained_on(self, distribution: str) -> TrainedScorer:
        if distribution not in self._trained:
            self._trained[distribution] = self.scorer.train(self.pairs(distribution, TRAIN))
        return self._trained[distribution]

    def test_rewards(self, trained_on: str, distribution: str, zero_shot: bool = False) -> Rewards:
        """Rewards on `distribution`'s test pairs from the model trained on `trained_on`."""
        owner = trained_on if self.scorer.trains else ""
        key = (owner, distribution, zero_shot)
        if key not in self._rewards:
            model = self.trained_on(trained_on)
            reward = model.zero_shot if zero_shot else model.reward
            self._rewards[key] = pair_rewards(reward, self.pairs(distribution, TEST))
        return self._rewards[key]

    def evaluate(self, spec: Shift) -> ShiftResult:
        reason = self.missing(spec)
        if reason:
            return ShiftResult(spec, _row(spec, self.scorer.name, skipped_reason=reason))
        source_rewards = self.test_rewards(spec.source, spec.source)
        target_rewards = self.test_rewards(spec.source, spec.target)
        source = metrics.summarize(*source_rewards)
        target = metrics.summarize(*target_rewards)
        zero_shot = metrics.pairwise_accuracy(*self.test_rewards(spec.source, spec.target, zero_shot=True))
        ceiling = (metrics.pairwise_accuracy(*self.test_rewards(spec.reference, spec.reference))
                   if self.scorer.trains else math.nan)
        ood = metrics.energy_ood(source_rewards, target_rewards)
        de = metrics.differential_elicitation(target.accuracy, zero_shot, ceiling) if self.scorer.trains else math.nan
        values = {
            "source_pairs": source.n, "target_pairs": target.n,
            "source_accuracy": source.accuracy, "source_ece": source.ece, "source_mean_confidence": source.mean_confidence,
            "target_accuracy": target.accuracy, "target_ece": target.ece, "target_mean_confidence": target.mean_confidence,
            "zero_shot_accuracy": zero_shot, "target_reference_accuracy": ceiling, "differential_elicitation": de,
            "energy_auroc": ood.auroc, "energy_fpr95": ood.fpr95,
        }
        return ShiftResult(spec, _row(spec, self.scorer.name, values=values), source, target)


def _row(spec: Shift, scorer: str, *, values: dict[str, Any] | None = None, skipped_reason: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {column: None for column in RESULT_COLUMNS}
    row.update(
        shift=spec.name, category=spec.category, label=spec.label, source=spec.source, target=spec.target,
        target_reference=spec.reference, scorer=scorer, status="skipped" if skipped_reason else "ok",
        skipped_reason=skipped_reason,
    )
    for column, value in (values or {}).items():
        row[column] = value if isinstance(value, int) else _nullable(value)
    return row


def evaluate_shifts(version: Version, shifts: list[Shift], scorer: Scorer) -> Iterator[ShiftResult]:
    """Results shift by shift, in the order given, so a caller can show progress as they arrive."""
    evaluator = Evaluator(version, scorer)
    for spec in shifts:
        yield evaluator.evaluate(spec)
