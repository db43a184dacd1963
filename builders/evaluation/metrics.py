"""Pairwise reward-model metrics: accuracy, calibration (ECE), energy-score OOD detection, GENIES DE.

Every function takes the rewards a model gave the chosen and the rejected response of each preference
pair (two equal-length float arrays) and follows the conventions of LeVine, Pikus et al. (2023), "A
Baseline Analysis of Reward Models' Ability To Accurately Analyze Foundation Models Under Distribution
Shift", so numbers computed here are comparable with theirs:

- the two rewards are the logits of a two-way choice; the predicted winner is the higher reward and
  its probability, softmax(r_chosen, r_rejected) at the winner, is the confidence sigmoid(|Δ|) with
  Δ = r_chosen - r_rejected, always in [0.5, 1];
- a pair is correct when the chosen response gets the higher reward. A tie (Δ = 0) is a coin flip:
  it earns half a correct answer at confidence 0.5, so a scorer without any preference gets exactly
  chance accuracy and a perfectly calibrated 0.5 (their script breaks ties toward the chosen response;
  see docs/evaluation.md);
- ECE uses 10 equal-width bins over [0, 1], each closed on the left, the last also on the right;
  ECE = sum over bins of (pairs in bin / pairs) * |mean correctness - mean confidence|, empty bins
  add nothing;
- energy = -logsumexp(r_chosen, r_rejected); out-of-distribution pairs are the positive class and a
  higher energy means "more OOD"; AUROC counts ties as half; FPR@95 is the smallest false-positive
  rate at any threshold whose true-positive rate is at least 95%.

Empty inputs give NaN rather than raising, so a caller can report "no data" per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from sklearn.metrics import roc_auc_score, roc_curve

N_BINS = 10
TPR_TARGET = 0.95
TIE_CREDIT = 0.5


def _as_pair(chosen: ArrayLike, rejected: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    c = np.asarray(chosen, dtype=np.float64).ravel()
    r = np.asarray(rejected, dtype=np.float64).ravel()
    if c.shape != r.shape:
        raise ValueError(f"chosen and rejected differ in length: {c.size} vs {r.size}")
    return c, r


def correctness(chosen: ArrayLike, rejected: ArrayLike) -> NDArray[np.float64]:
    """Per pair: 1 if the chosen response wins, 0 if the rejected one does, 0.5 for a tie."""
    c, r = _as_pair(chosen, rejected)
    return np.where(c > r, 1.0, np.where(c < r, 0.0, TIE_CREDIT))


def confidence(chosen: ArrayLike, rejected: ArrayLike) -> NDArray[np.float64]:
    """Per pair: the probability the model gives its own predicted winner, sigmoid(|Δ|)."""
    c, r = _as_pair(chosen, rejected)
    return expit(np.abs(c - r))


def energy(chosen: ArrayLike, rejected: ArrayLike) -> NDArray[np.float64]:
    """Per pair: -logsumexp(r_chosen, r_rejected); higher means less like the training data."""
    c, r = _as_pair(chosen, rejected)
    return -np.logaddexp(c, r)


def pairwise_accuracy(chosen: ArrayLike, rejected: ArrayLike) -> float:
    scores = correctness(chosen, rejected)
    return float(scores.mean()) if scores.size else float("nan")


def mean_confidence(chosen: ArrayLike, rejected: ArrayLike) -> float:
    conf = confidence(chosen, rejected)
    return float(conf.mean()) if conf.size else float("nan")


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's data: per confidence bin, how many pairs, their accuracy and confidence."""

    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    accuracy: NDArray[np.float64]
    confidence: NDArray[np.float64]

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return float("nan")
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.counts[filled] / total * gaps))


def reliability(chosen: ArrayLike, rejected: ArrayLike, n_bins: int = N_BINS) -> Reliability:
    """Bin pairs by confidence into `n_bins` equal-width bins over [0, 1] (empty bins hold NaN)."""
    conf = confidence(chosen, rejected)
    correct = correctness(chosen, rejected)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
        mean_conf = np.bincount(index, weights=conf, minlength=n_bins) / counts
    return Reliability(edges, counts, accuracy, mean_conf)


def expected_calibration_error(chosen: ArrayLike, rejected: ArrayLike, n_bins: int = N_BINS) -> float:
    return reliability(chosen, rejected, n_bins).ece


def _labelled(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]] | None:
    ind = np.asarray(id_scores, dtype=np.float64).ravel()
    ood = np.asarray(ood_scores, dtype=np.float64).ravel()
    if ind.size == 0 or ood.size == 0:
        return None
    labels = np.concatenate([np.zeros(ind.size, np.int8), np.ones(ood.size, np.int8)])
    return labels, np.concatenate([ind, ood])


def auroc(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve for telling OOD (positive) from ID by a score that is higher for OOD."""
    labelled = _labelled(id_scores, ood_scores)
    if labelled is None:
        return float("nan")
    return float(roc_auc_score(*labelled))


def fpr_at_tpr(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = TPR_TARGET) -> float:
    """Share of ID examples flagged as OOD at the strictest threshold that still catches `tpr` of OOD."""
    labelled = _labelled(id_scores, ood_scores)
    if labelled is None:
        return float("nan")
    fprs, tprs, _ = roc_curve(*labelled, drop_intermediate=False)
    return float(fprs[tprs >= tpr - 1e-12].min())


def differential_elicitation(target_accuracy: float, zero_shot_accuracy: float, ceiling: float) -> float:
    """GENIES DE: how much of the target-tuned ceiling source training added over zero-shot."""
    if not ceiling or np.isnan(ceiling):
        return float("nan")
    return float((target_accuracy - zero_shot_accuracy) / ceiling)


@dataclass(frozen=True)
class ScoreSummary:
    """Accuracy and calibration of one set of pairs, plus the bins behind its reliability diagram."""

    n: int
    accuracy: float
    ece: float
    mean_confidence: float
    bins: Reliability


def summarize(chosen: ArrayLike, rejected: ArrayLike) -> ScoreSummary:
    c, r = _as_pair(chosen, rejected)
    bins = reliability(c, r)
    return ScoreSummary(int(c.size), pairwise_accuracy(c, r), bins.ece, mean_confidence(c, r), bins)


@dataclass(frozen=True)
class OodSummary:
    auroc: float
    fpr95: float


def energy_ood(id_pairs: tuple[ArrayLike, ArrayLike], ood_pairs: tuple[ArrayLike, ArrayLike]) -> OodSummary:
    """Energy-score OOD detection of `ood_pairs` against `id_pairs`, each given as (chosen, rejected)."""
    id_energy, ood_energy = energy(*id_pairs), energy(*ood_pairs)
    return OodSummary(auroc(id_energy, ood_energy), fpr_at_tpr(id_energy, ood_energy))
