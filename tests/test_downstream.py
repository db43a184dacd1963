"""`genies export`: every format round-trips through `datasets.load_dataset`, and a reward model trained by
TRL's `RewardTrainer` on an exported source scores the target through `genies eval --scorer hf:`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.discovery import catalog
from builders.downstream import FORMATS, MARKER, selection
from builders.errors import GeniesError
from builders.export import Version

SOURCE, TARGET = "ranking_logic_easy", "ranking_logic_hard"
runner = CliRunner()


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Version:
    """A real procedural build (no sources, no LLM) of one shift's two ends, kept small."""
    out = tmp_path_factory.mktemp("artifacts")
    built = runner.invoke(app, ["build", SOURCE, TARGET, "--train-size", "16", "--test-size", "8", "--out", str(out),
                                "--version", "1.0.0"])
    assert built.exit_code == 0, built.output
    return Version.open(out / "genies" / "1.0.0")


def _export(version: Version, fmt: str, out: Path, *options: str) -> Path:
    result = runner.invoke(app, ["export", str(version.path), "--format", fmt, "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return out


def _load(path: Path):
    import datasets

    builder = "json" if path.suffix == ".jsonl" else "parquet"
    return datasets.load_dataset(builder, data_files={"split": str(path)}, split="split")


def _pair_count(version: Version, name: str, split: str) -> int:
    return sum(len(r) - 1 for r in version.table(name, split).column("responses").to_pylist())


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips_through_load_dataset(version, tmp_path, fmt) -> None:
    out = _export(version, fmt, tmp_path / fmt)
    about = json.loads((out / MARKER).read_text())
    readme = (out / "README.md").read_text()
    assert version.manifest["content_sha256"] in readme and f"--format {fmt}" in readme
    assert len(about["files"]) == 2 * 2 * len(FORMATS[fmt])
    for rel, rows in about["files"].items():
        name, split = Path(rel).parent.name, Path(rel).stem
        loaded = _load(out / rel)
        assert len(loaded) == rows
        records = version.table(name, split).to_pylist()
        first = loaded[0]
        if fmt == "jsonl":
            assert [r["id"] for r in loaded] == [r["id"] for r in records]
            assert first["responses"] == records[0]["responses"] and first["preferred"] == records[0]["preferred"]
        elif fmt == "rewardbench2":
            assert rows == len(records)
            assert first["chosen"] == [records[0]["responses"][records[0]["preferred"]]]
            assert first["num_correct"] == 1 and len(first["rejected"]) == len(records[0]["responses"]) - 1
            assert first["subset"] == name and first["prompt"] == records[0]["prompt"]
        else:
            assert rows == _pair_count(version, name, split)
            preferred = records[0]["responses"][records[0]["preferred"]]
            if fmt == "rewardbench":
                assert first["prompt"] == [{"role": "user", "content": records[0]["prompt"]}]
                assert first["chosen"] == preferred and first["subset"] == name
            elif rel.startswith("explicit/"):
                assert first["prompt"] == records[0]["prompt"] and first["chosen"] == preferred
            else:
                assert first["chosen"] == [{"role": "user", "content": records[0]["prompt"]},
                                           {"role": "assistant", "content": preferred}]


def test_selection_by_shift_by_name_and_what_is_missing(version) -> None:
    names, missing = selection(version, catalog(), shift=f"{SOURCE}->{TARGET}")
    assert names == [SOURCE, TARGET] and missing == []
    names, missing = selection(version, catalog(), distributions=[TARGET])
    assert names == [TARGET] and missing == []
    with pytest.raises(GeniesError, match="none of .*alpaca_hard"):
        selection(version, catalog(), benchmark="genies")
    with pytest.raises(GeniesError, match="pass one"):
        selection(version, catalog(), distributions=[SOURCE], shift=f"{SOURCE}->{TARGET}")
    with pytest.raises(GeniesError, match="did you mean"):
        selection(version, catalog(), distributions=["ranking_logic_esay"])


def test_an_export_refuses_a_foreign_folder_and_replaces_an_earlier_one(version, tmp_path) -> None:
    out = _export(version, "jsonl", tmp_path / "x", "--distributions", SOURCE)
    _export(version, "rewardbench2", out, "--distributions", TARGET)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", MARKER, TARGET]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = runner.invoke(app, ["export", str(version.path), "--format", "trl", "--out", str(tmp_path / "mine")])
    assert result.exit_code != 0 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.slow
def test_trl_reward_trainer_on_an_exported_source_then_genies_eval_on_the_target(version, tmp_path) -> None:
    """The real consumer: TRL trains a one-logit MiniLM reward model for a few CPU steps on the exported
    source, and `genies eval --scorer hf:` scores the shift with it."""
    pytest.importorskip("trl")
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from builders.evaluation.scorers import minilm_model_dir

    exported = _export(version, "trl", tmp_path / "trl", "--shift", f"{SOURCE}->{TARGET}")
    train = datasets.load_dataset("parquet", data_files=str(exported / "explicit" / SOURCE / "train.parquet"),
                                  split="train")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_model_dir()))
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_model_dir()), num_labels=1)
    config = RewardConfig(
        output_dir=str(tmp_path / "checkpoints"), max_steps=3, per_device_train_batch_size=2, learning_rate=5e-5,
        eos_token=tokenizer.sep_token,  # BERT has no EOS token; TRL appends one to every response
        max_length=128, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, seed=0,
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(float(loss)) for loss in losses)
    saved = tmp_path / "reward-model"
    trainer.save_model(str(saved))
    tokenizer.save_pretrained(str(saved))

    results = tmp_path / "eval"
    evaluated = runner.invoke(app, ["eval", str(version.path), "--shifts", f"{SOURCE}->{TARGET}",
                                    "--scorer", f"hf:{saved}", "--max-length", "128", "--out", str(results)])
    assert evaluated.exit_code == 0, evaluated.output
    [row] = json.loads((results / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["target_pairs"] == _pair_count(version, TARGET, "test")
    for column in ("source_accuracy", "target_accuracy", "target_ece", "energy_auroc"):
        assert math.isfinite(row[column]) and 0.0 <= row[column] <= 1.0, column
