"""The surface probe: can the label be read off the responses alone, without the prompt?

A bag-of-words logistic regression sees one response at a time (never the prompt, never the position) and
learns, on a distribution's train split, which words mark the preferred response; on the test split it
picks the response it scores highest. High test accuracy means the label is decidable without reading
the instruction: a reward model could learn the same surface rule instead of the task. The words are the
audit's (lower-cased `\\w+` tokens, hashed), so the probe tokenizes nothing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import polars as pl
from scipy import sparse

from builders.validation.data import LoadedVersion
from builders.validation.registry import Finding, check
from builders.validation.shortcuts import (
    THRESHOLDS,
    ChanceTest,
    audit_version,
    credits,
    responses_of,
)


@dataclass
class ProbeResult(ChanceTest):
    """The probe's test accuracy on one distribution, or why it could not be trained (`note`)."""

    dist: str = ""
    note: str = ""

    @property
    def flagged(self) -> bool:
        return not self.note and self.beats_chance(THRESHOLDS.probe_margin, THRESHOLDS.probe_p_value)


def bag_of_words(responses: pl.DataFrame, vocabulary: np.ndarray | None = None) -> tuple[sparse.csr_matrix, np.ndarray]:
    """One binary row per response over its distinct words (hashes, `word_set` of the response table), with
    one column per word of `vocabulary` (default: every word the responses use; words outside it are
    dropped). Returns the matrix and the vocabulary."""
    lengths = responses["word_set"].list.len().to_numpy()
    words = responses["word_set"].explode().drop_nulls().to_numpy()
    row_of = np.repeat(np.arange(responses.height), lengths)
    if vocabulary is None:
        vocabulary = np.unique(words)
    columns = np.clip(np.searchsorted(vocabulary, words), 0, max(len(vocabulary) - 1, 0))
    known = vocabulary[columns] == words if len(vocabulary) else np.zeros(len(words), dtype=bool)
    matrix = sparse.csr_matrix((np.ones(int(known.sum())), (row_of[known], columns[known])),
                               shape=(responses.height, max(len(vocabulary), 1)))
    return matrix, vocabulary


def _missing(train_examples: int, test_examples: int) -> str:
    """Why the probe cannot run on these splits, or "" when it can."""
    if train_examples < THRESHOLDS.probe_min_train or test_examples < THRESHOLDS.probe_min_test:
        return (f"no surface probe: {train_examples} train / {test_examples} test auditable examples "
                f"(needs {THRESHOLDS.probe_min_train} / {THRESHOLDS.probe_min_test})")
    return ""


def _bounded(train: pl.DataFrame) -> pl.DataFrame:
    """At most `probe_max_train` train examples (a fixed-seed sample of whole examples): enough to learn a
    surface rule, and the fit stays cheap however large the distribution is."""
    examples = train["row"].unique().sort()
    if examples.len() <= THRESHOLDS.probe_max_train:
        return train
    kept = examples.sample(THRESHOLDS.probe_max_train, seed=0)
    return train.filter(pl.col("row").is_in(kept.implode()))


def probe_distribution(dist: str, responses: pl.DataFrame) -> ProbeResult:
    """Train on the train responses of one distribution, pick among its test responses (rows of the
    response table, grouped by example)."""
    from sklearn.linear_model import LogisticRegression

    train, test = responses.filter(pl.col("split") == "train"), responses.filter(pl.col("split") == "test")
    test_k = test.group_by("row").len()["len"]
    chance = float(cast(float, (1 / test_k).mean())) if test_k.len() else 0.0
    note = _missing(train["row"].n_unique(), test_k.len())
    if note:
        return ProbeResult(test_k.len(), 0.0, chance, dist, note)
    features, vocabulary = bag_of_words(train := _bounded(train))
    if not features.nnz:
        return ProbeResult(test_k.len(), 0.0, chance, dist, "no surface probe: the train responses have no words")
    model = LogisticRegression(solver="liblinear", max_iter=1000)
    model.fit(features, train["preferred"].to_numpy())
    scores = np.asarray(model.decision_function(bag_of_words(test, vocabulary)[0]), dtype=np.float64)
    return ProbeResult(test_k.len(), float(credits(test, scores).sum()), chance, dist)


def probe_version(loaded: LoadedVersion) -> dict[str, ProbeResult]:
    """The probe on every distribution, computed once per loaded version."""

    def compute() -> dict[str, ProbeResult]:
        responses = responses_of(loaded)
        by_dist = {str(d): rows for (d,), rows in responses.group_by("dist")}
        empty = responses.clear()
        return {dist: probe_distribution(dist, by_dist.get(dist, empty)) for dist in sorted(loaded.distributions)}

    return loaded.memo("surface_probe", compute)


@check("surface_probe", "warning",
       f"a response-only bag-of-words probe trained on the train split does not pick the preferred test "
       f"response {THRESHOLDS.probe_margin:.0%} or more above chance (binomial p < {THRESHOLDS.probe_p_value})")
def surface_probe(loaded: LoadedVersion) -> list[Finding]:
    return [
        Finding(dist, round(result.correct), result.n, [],
                f"picks the preferred test response in {result.numbers()} without reading the prompt")
        for dist, result in probe_version(loaded).items() if result.flagged
    ]


@check("shortcut_coverage", "info", "a distribution the shortcut audit or the surface probe can judge only in part: "
       "too few examples, responses per example that vary, identical responses, empty prompts, no words")
def shortcut_coverage(loaded: LoadedVersion) -> list[Finding]:
    probes = probe_version(loaded)
    findings = []
    for dist, audit in audit_version(loaded).items():
        notes = [*audit.notes, *([probes[dist].note] if dist in probes and probes[dist].note else [])]
        if notes:
            findings.append(Finding(dist, 0, audit.total, [], "; ".join(notes)))
    return findings
