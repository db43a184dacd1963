"""Metric values checked against numbers computed by hand, and `genies metrics` on CSV and Parquet."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError
from builders.evaluation import metrics as m
from builders.evaluation.score_files import compare_files, load_scores

LN3, LN17 = math.log(3), math.log(17)


# Five pairs whose confidences are 0.75 (x3), 17/18 and 0.5 (a tie); worked out in test_ece_by_hand.
CHOSEN = [LN3, 0.0, LN3, LN17, 1.0]
REJECTED = [0.0, LN3, 0.0, 0.0, 1.0]


def test_correctness_counts_a_tie_as_half() -> None:
    assert m.correctness([2, 1, 0, 0], [0, 2, 0, 1]).tolist() == [1.0, 0.0, 0.5, 0.0]
    assert m.pairwise_accuracy([2, 1, 0, 0], [0, 2, 0, 1]) == pytest.approx(0.375)


def test_a_scorer_without_preferences_is_at_chance_and_calibrated() -> None:
    constant = np.zeros(7)
    assert m.pairwise_accuracy(constant, constant) == 0.5
    assert m.expected_calibration_error(constant, constant) == 0.0
    assert m.mean_confidence(constant, constant) == 0.5


def test_confidence_is_sigmoid_of_the_absolute_margin() -> None:
    assert m.confidence([LN3, 0.0], [0.0, LN3]).tolist() == pytest.approx([0.75, 0.75])
    assert m.confidence([LN17], [0.0])[0] == pytest.approx(17 / 18)


def test_ece_by_hand() -> None:
    # bin [0.5,0.6): the tie, accuracy 0.5, confidence 0.5 -> gap 0
    # bin [0.7,0.8): 3 pairs, 2 right, confidence 0.75 -> gap 1/12, weight 3/5
    # bin [0.9,1.0]: 1 pair, right, confidence 17/18 -> gap 1/18, weight 1/5
    expected = 3 / 5 * 1 / 12 + 1 / 5 * 1 / 18
    assert expected == pytest.approx(11 / 180)
    summary = m.summarize(CHOSEN, REJECTED)
    assert summary.ece == pytest.approx(11 / 180)
    assert summary.accuracy == pytest.approx(3.5 / 5)
    assert summary.mean_confidence == pytest.approx((3 * 0.75 + 17 / 18 + 0.5) / 5)
    assert summary.bins.counts.tolist() == [0, 0, 0, 0, 0, 1, 0, 3, 0, 1]


def test_empty_bins_hold_nan_and_add_nothing() -> None:
    bins = m.reliability(CHOSEN, REJECTED)
    empty = bins.counts == 0
    assert np.isnan(bins.accuracy[empty]).all() and np.isnan(bins.confidence[empty]).all()
    assert not np.isnan(bins.ece)


def test_saturated_confidence_lands_in_the_last_bin() -> None:
    # sigmoid(100) is exactly 1.0 in float64; the last bin is closed on the right, so it is counted
    chosen, rejected = [100.0, 100.0, 100.0, 0.0], [0.0, 0.0, 0.0, 100.0]
    bins = m.reliability(chosen, rejected)
    assert bins.counts[-1] == 4
    assert bins.ece == pytest.approx(0.25)


def test_bin_edges_are_closed_on_the_left() -> None:
    # confidence exactly 0.5 belongs to [0.5, 0.6), not to [0.4, 0.5)
    assert m.reliability([0.0], [0.0]).counts[5] == 1


def test_empty_input_gives_nan_not_an_error() -> None:
    assert math.isnan(m.pairwise_accuracy([], []))
    assert math.isnan(m.expected_calibration_error([], []))
    assert math.isnan(m.auroc([], [1.0]))
    assert math.isnan(m.fpr_at_tpr([1.0], []))


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        m.correctness([1.0, 2.0], [1.0])


def _levine_ece(chosen: np.ndarray, rejected: np.ndarray) -> tuple[float, float]:
    """An independent re-derivation of the published convention: two-way softmax, argmax, np.digitize bins."""
    logits = np.stack([chosen, rejected], axis=1)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), predicted]
    right = predicted == 0
    which = np.digitize(conf, np.linspace(0.1, 1, 10))
    ece = sum(abs(right[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
              for b in range(10) if (which == b).any())
    return float(ece), float(right.mean())


def test_matches_the_published_convention_on_untied_scores() -> None:
    rng = np.random.default_rng(7)
    chosen, rejected = rng.normal(0.8, 2.0, 5000), rng.normal(0.0, 2.0, 5000)
    ece, accuracy = _levine_ece(chosen, rejected)
    assert m.expected_calibration_error(chosen, rejected) == pytest.approx(ece, abs=1e-12)
    assert m.pairwise_accuracy(chosen, rejected) == pytest.approx(accuracy, abs=1e-12)


def test_energy_is_minus_logsumexp() -> None:
    assert m.energy([0.0, LN3], [0.0, 0.0]).tolist() == pytest.approx([-math.log(2), -math.log(4)])
    assert np.isfinite(m.energy([1000.0], [1000.0])).all()


def test_auroc_by_hand() -> None:
    # OOD 1.5 beats ID 0 and 1; OOD 3 beats all three: 5 of 6 ordered pairs
    assert m.auroc([0, 1, 2], [1.5, 3]) == pytest.approx(5 / 6)
    # ties count half: (1 vs 1) twice = 1, (2 vs 1) twice = 2 -> 3 of 4
    assert m.auroc([1, 1], [1, 2]) == pytest.approx(0.75)
    assert m.auroc([0, 1], [2, 3]) == 1.0
    assert m.auroc([2, 3], [0, 1]) == 0.0


def test_fpr_at_95_tpr_by_hand() -> None:
    in_dist = np.arange(100.0)
    # 19 of 20 OOD scores above every ID score: TPR 0.95 is reached before any ID is flagged
    assert m.fpr_at_tpr(in_dist, [200.0] * 19 + [50.0]) == 0.0
    # only 18 above: the 19th OOD score is 50, and ID scores 50..99 (half of them) are flagged with it
    assert m.fpr_at_tpr(in_dist, [200.0] * 18 + [50.0, 50.0]) == pytest.approx(0.5)
    # indistinguishable: every ID example must be flagged to catch 95% of OOD
    assert m.fpr_at_tpr([1.0] * 10, [1.0] * 10) == 1.0


def test_energy_ood_flags_the_shift_with_higher_energy() -> None:
    rng = np.random.default_rng(0)
    in_dist = (rng.normal(4, 1, 2000), rng.normal(3, 1, 2000))
    shifted = (rng.normal(0, 1, 2000), rng.normal(-1, 1, 2000))  # lower rewards -> higher energy
    ood = m.energy_ood(in_dist, shifted)
    assert ood.auroc > 0.95 and ood.fpr95 < 0.3
    same = m.energy_ood(in_dist, in_dist)
    assert same.auroc == pytest.approx(0.5) and same.fpr95 > 0.9


def test_differential_elicitation_by_hand() -> None:
    assert m.differential_elicitation(0.7, 0.5, 0.8) == pytest.approx(0.25)
    assert m.differential_elicitation(0.4, 0.5, 0.8) == pytest.approx(-0.125)
    assert math.isnan(m.differential_elicitation(0.7, 0.5, 0.0))


@pytest.fixture
def score_files(tmp_path):
    rng = np.random.default_rng(1)
    n = 120_000
    in_dist = pl.DataFrame({"chosen": rng.normal(2.0, 1.5, n), "rejected": rng.normal(0.5, 1.5, n)})
    shifted = pl.DataFrame({"chosen": rng.normal(0.5, 1.0, n), "rejected": rng.normal(0.0, 1.0, n)})
    in_dist.write_csv(tmp_path / "english.csv")
    shifted.write_parquet(tmp_path / "german.parquet")
    return tmp_path / "english.csv", tmp_path / "german.parquet", in_dist, shifted


def test_metrics_cli_on_csv_and_parquet(score_files, tmp_path, monkeypatch) -> None:
    id_path, shifted_path, in_dist, shifted = score_files
    monkeypatch.chdir(tmp_path)
    id_path, shifted_path = id_path.relative_to(tmp_path), shifted_path.relative_to(tmp_path)
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["metrics", "--id", str(id_path), str(shifted_path), "--json", "m.json", "--out", "plots"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert elapsed < 15, f"120k-row files took {elapsed:.1f}s"
    rows = json.loads((tmp_path / "m.json").read_text())
    assert [set(r) for r in rows] == [{"file", "n", "accuracy", "ece", "mean_confidence", "auroc", "fpr95"}] * 2
    assert rows[0]["file"] == str(id_path) and rows[0]["auroc"] is None and rows[0]["fpr95"] is None
    assert rows[1]["n"] == 120_000
    expected = m.summarize(shifted["chosen"].to_numpy(), shifted["rejected"].to_numpy())
    assert rows[1]["accuracy"] == pytest.approx(expected.accuracy)
    assert rows[1]["ece"] == pytest.approx(expected.ece)
    ood = m.energy_ood((in_dist["chosen"].to_numpy(), in_dist["rejected"].to_numpy()),
                       (shifted["chosen"].to_numpy(), shifted["rejected"].to_numpy()))
    assert rows[1]["auroc"] == pytest.approx(ood.auroc) and rows[1]["fpr95"] == pytest.approx(ood.fpr95)
    for row in rows:
        assert all(0.0 <= row[k] <= 1.0 for k in ("accuracy", "ece", "mean_confidence", "auroc", "fpr95") if row[k] is not None)
    assert (tmp_path / "plots" / "reliability.png").stat().st_size > 0
    assert "german.parquet" in result.output


def test_score_files_refuse_bad_input(tmp_path) -> None:
    (tmp_path / "cols.csv").write_text("good,bad\n1,2\n")
    (tmp_path / "text.csv").write_text("chosen,rejected\n1,2\nhigh,low\n")
    (tmp_path / "nan.csv").write_text("chosen,rejected\n1,2\n3,\n")
    (tmp_path / "empty.csv").write_text("chosen,rejected\n")
    (tmp_path / "scores.txt").write_text("chosen,rejected\n1,2\n")
    cases = {"cols.csv": "missing column", "text.csv": "cannot read", "nan.csv": "non-finite",
             "empty.csv": "no rows", "scores.txt": "unsupported", "absent.csv": "no such"}
    for name, message in cases.items():
        with pytest.raises(GeniesError, match=message):
            load_scores(tmp_path / name)


def test_a_bad_file_fails_before_any_output(score_files, tmp_path) -> None:
    id_path, _, _, _ = score_files
    (tmp_path / "broken.csv").write_text("chosen\n1\n")
    result = CliRunner().invoke(app, ["metrics", "--id", str(id_path), str(tmp_path / "broken.csv"),
                                      "--json", str(tmp_path / "out.json")])
    assert isinstance(result.exception, GeniesError)
    assert not (tmp_path / "out.json").exists()


def test_id_file_against_itself_is_undetectable(score_files) -> None:
    id_path, _, _, _ = score_files
    _, rows = compare_files(id_path, [id_path])
    assert rows[1]["auroc"] == pytest.approx(0.5)
