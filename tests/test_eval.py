"""`genies eval` end to end on a small exported version with a learnable signal, and each scorer kind."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from builders.catalog import SHIFTS_SCHEMA
from builders.cli import app
from builders.errors import GeniesError
from builders.evaluation.report import RESULT_SCHEMA
from builders.evaluation.runner import RESULT_COLUMNS, evaluate_shifts, select_shifts
from builders.evaluation.scorers import (
    Encoder,
    HFRewardModel,
    Pairs,
    build_scorer,
    minilm_model_dir,
)
from builders.evaluation.synthetic import synthetic_version
from builders.export import Version

SHIFTS = pa.Table.from_pylist([
    {"source": "easy", "target": "hard", "category": "difficulty", "label": "extreme", "target_reference": None, "benchmarks": ["genies"]},
    {"source": "easy", "target": "persona", "category": "unwanted_personas", "label": "probing", "target_reference": "reference", "benchmarks": []},
    {"source": "easy", "target": "never_built", "category": "skill", "label": "extreme", "target_reference": None, "benchmarks": ["genies"]},
], schema=SHIFTS_SCHEMA)
PRESENT = ["easy", "hard", "persona", "reference"]
RATE_COLUMNS = [c for c in RESULT_COLUMNS if c.endswith(("accuracy", "_ece", "confidence", "auroc", "fpr95"))]


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Version:
    root = tmp_path_factory.mktemp("artifacts")
    return Version.open(synthetic_version(root, SHIFTS, PRESENT, train=150, test=60, seed=3))


@pytest.fixture(scope="module")
def tiny_version(tmp_path_factory) -> Version:
    """Few examples, for the scorers that run a neural network on every text."""
    root = tmp_path_factory.mktemp("tiny-artifacts")
    return Version.open(synthetic_version(root, SHIFTS, PRESENT[:2], train=24, test=8, seed=3))


@pytest.fixture(scope="module")
def bow_rows(version) -> dict[str, dict]:
    results = evaluate_shifts(version, select_shifts(version, "all"), build_scorer("bow"))
    return {r.row["shift"]: r.row for r in results}


def test_bow_learns_the_source_and_loses_accuracy_across_the_shift(bow_rows) -> None:
    row = bow_rows["easy->hard"]
    assert row["status"] == "ok" and row["source_pairs"] == 180 and row["target_pairs"] == 180
    assert row["source_accuracy"] > 0.9
    assert 0.5 < row["target_accuracy"] < row["source_accuracy"]
    assert row["target_reference_accuracy"] > 0.9
    assert abs(row["zero_shot_accuracy"] - 0.5) < 0.15  # TF-IDF relevance knows nothing about the cues
    expected_de = (row["target_accuracy"] - row["zero_shot_accuracy"]) / row["target_reference_accuracy"]
    assert row["differential_elicitation"] == pytest.approx(expected_de)
    assert row["energy_auroc"] > 0.6  # the target's cue words are new to the probe: its rewards shrink
    assert row["target_mean_confidence"] < row["source_mean_confidence"]


def test_every_rate_is_a_fraction(bow_rows) -> None:
    for row in bow_rows.values():
        for column in RATE_COLUMNS:
            assert row[column] is None or 0.0 <= row[column] <= 1.0, (row["shift"], column, row[column])


def test_target_reference_is_the_ceiling(bow_rows) -> None:
    row = bow_rows["easy->persona"]
    assert row["target_reference"] == "reference"
    assert row["target_reference_accuracy"] > 0.9


def test_missing_distribution_is_skipped_with_a_reason(bow_rows) -> None:
    row = bow_rows["easy->never_built"]
    assert row["status"] == "skipped"
    assert "never_built" in row["skipped_reason"]
    assert row["source_accuracy"] is None and row["energy_auroc"] is None


def test_a_shift_without_training_pairs_is_skipped_for_a_probe(tmp_path) -> None:
    test_only = Version.open(synthetic_version(tmp_path, SHIFTS, PRESENT[:2], train=0, test=4))
    [result] = evaluate_shifts(test_only, select_shifts(test_only, "easy->hard"), build_scorer("bow"))
    assert result.row["status"] == "skipped"
    assert result.row["skipped_reason"] == "no preference pairs in easy/train, hard/train"


def test_select_shifts(version) -> None:
    assert [s.name for s in select_shifts(version, "genies")] == ["easy->hard", "easy->never_built"]
    assert [s.name for s in select_shifts(version, "easy->persona, easy->hard")] == ["easy->persona", "easy->hard"]
    with pytest.raises(GeniesError, match="unknown shift") as error:
        select_shifts(version, "easy->hrad")
    assert "easy->hard" in str(error.value)


def test_eval_cli_writes_parquet_json_markdown_and_plots(version, tmp_path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["eval", str(version.path), "--shifts", "all", "--scorer", "bow", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "results.parquet")
    assert table.schema.names == list(RESULT_COLUMNS)
    assert table.schema == RESULT_SCHEMA.with_metadata(table.schema.metadata)
    assert table.num_rows == 3
    document = json.loads((out / "results.json").read_text())
    assert [r["shift"] for r in document["rows"]] == ["easy->hard", "easy->persona", "easy->never_built"]
    assert document["coverage"]["statement"] == "mean over 2 of 3 shifts of the version"
    summary = (out / "summary.md").read_text()
    assert "| easy->hard |" in summary and "never_built" in summary
    for plot in ("reliability.png", "accuracy.png", "differential_elicitation.png", "auroc_by_category.png"):
        assert (out / plot).stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    assert "mean over 2 of 3 shifts of the version: source accuracy" in " ".join(result.output.split())


def test_eval_cli_fails_when_nothing_can_be_evaluated(version, tmp_path) -> None:
    result = CliRunner().invoke(app, ["eval", str(version.path), "--shifts", "easy->never_built", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, GeniesError)
    assert not (tmp_path / "x").exists()


def test_unknown_scorer_suggests_the_closest() -> None:
    with pytest.raises(GeniesError, match="did you mean minilm"):
        build_scorer("minlm")


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory):
    """A randomly initialised one-logit BERT with MiniLM's tokenizer, saved locally: nothing is downloaded."""
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-rm")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(minilm_model_dir())).save_pretrained(path)
    return path


def test_hf_scorer_scores_text_pairs_in_input_order(tiny_reward_model) -> None:
    model = HFRewardModel(str(tiny_reward_model), batch_size=2)
    prompts = ["short", "a much longer prompt than the others", "mid length prompt", "short"]
    responses = ["yes", "an answer of some length", "no", "yes"]
    rewards = model.rewards(prompts, responses)
    one_by_one = [model.rewards([p], [r])[0] for p, r in zip(prompts, responses)]
    assert rewards.shape == (4,) and np.allclose(rewards, one_by_one, atol=1e-5)
    assert len(set(np.round(rewards[:3], 6))) == 3 and rewards[3] == rewards[0]


def test_hf_scorer_is_frozen_so_it_has_no_ceiling_and_no_differential_elicitation(tiny_version, tiny_reward_model) -> None:
    scorer = build_scorer(f"hf:{tiny_reward_model}", batch_size=64)
    [result] = evaluate_shifts(tiny_version, select_shifts(tiny_version, "easy->hard"), scorer)
    assert result.ok and result.row["scorer"] == f"hf:{tiny_reward_model}"
    assert result.row["differential_elicitation"] is None and result.row["target_reference_accuracy"] is None
    assert result.row["zero_shot_accuracy"] == result.row["target_accuracy"]
    assert 0.0 <= result.row["source_accuracy"] <= 1.0


def test_hf_scorer_refuses_a_missing_model(tmp_path) -> None:
    with pytest.raises(GeniesError, match="could not load the reward model"):
        build_scorer(f"hf:{tmp_path / 'nothing-here'}")


def test_minilm_probe_learns_and_caches_embeddings(tiny_version, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    version = tiny_version
    cache = tmp_path / "embeddings.sqlite"
    scorer = build_scorer("minilm", embedding_cache=cache)
    [result] = evaluate_shifts(version, select_shifts(version, "easy->hard"), scorer)
    assert result.row["source_accuracy"] > 0.6  # 72 pairs of pseudo-words: a weak but real signal
    assert 0.0 <= result.row["energy_auroc"] <= 1.0

    encoder = Encoder(cache)
    pairs = Pairs.from_records(version.table("easy", "test"))
    monkeypatch.setattr(encoder.model, "encode", lambda *a, **k: pytest.fail("cached texts were re-encoded"))
    vectors = encoder.encode(pairs.prompt[:5] + pairs.chosen[:5])
    assert vectors.shape == (10, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_genies_shifts_on_the_imported_release_sample(release_sample, tmp_path) -> None:
    from builders.release import import_release

    path = import_release(release_sample, tmp_path / "artifacts", "1.0.0").result.path
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["eval", str(path), "--shifts", "genies", "--scorer", "bow", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 15 and all(r["status"] == "ok" for r in rows), [r["skipped_reason"] for r in rows]
    for row in rows:
        for column in RATE_COLUMNS:
            assert 0.0 <= row[column] <= 1.0, (row["shift"], column, row[column])
        assert -1.0 <= row["differential_elicitation"] <= 1.0
