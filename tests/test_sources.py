"""Source builders on the real upstream mirror in ../shared/sources: row counts, schemas, content, cache."""

from __future__ import annotations

import socket

import pyarrow.compute as pc
import pytest

from builders.catalog import load_catalog
from builders.registry import BuildContext
from builders.sources import list_sources, load_source, raw_schema, source_spec
from builders.text import last_boxed
from tests.conftest import SOURCES_MIRROR

# Rows per split as SOURCES.md states them (persona and advanced-ai-risk: counted from the files).
EXPECTED_ROWS = {
    "mmlu": {"dev": 285, "val": 1531, "test": 14042},
    "arc_easy": {"train": 2251, "dev": 570, "test": 2376},
    "arc_challenge": {"train": 1119, "dev": 299, "test": 1172},
    "truthfulqa": {"all": 817},
    "anthropic_persona": {"all": 133204},
    "anthropic_advanced_ai_risk": {"all": 24676},
    "winogender": {"all": 720},
    "math": {"train": 7500, "test": 5000},
    "commonsense_qa": {"train": 9741, "dev": 1221, "test": 1140},
    "quotes": {"all": 5421},
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Each mirrored source loaded once per test module into a private cache (cold, then reused)."""
    if not (SOURCES_MIRROR / "SOURCES.md").exists():
        pytest.skip(f"needs the raw source mirror at {SOURCES_MIRROR} (../shared beside the checkout)")
    mirror = SOURCES_MIRROR
    cache = tmp_path_factory.mktemp("sources-cache")
    tables = {}

    def get(name: str):
        if name not in tables:
            tables[name] = load_source(name, mirror=mirror, cache_dir=cache)
        return tables[name]

    get.cache_dir = cache
    return get


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_mirrored_source_has_upstream_row_counts_and_schema(loaded, name):
    source = loaded(name)
    assert source.rows_per_split == dict(sorted(EXPECTED_ROWS[name].items()))
    assert source.table.schema.equals(raw_schema(name), check_metadata=False)
    assert source.table.column_names[0] == "row_key"
    assert pc.count_distinct(source.table["row_key"]).as_py() == source.table.num_rows
    assert source.verified and source.revision == source_spec(name).revision
    assert source.rejects["total"] == 0


def test_every_mirrored_spec_pins_every_file_by_sha256(sources_mirror):
    for spec in list_sources():
        if (sources_mirror / spec.folder).is_dir():
            assert spec.checksums and spec.revision.startswith("sha256:"), spec.name


def test_catalog_sources_all_have_specs_and_noncommercial_licenses_are_declared():
    names = {s.name for s in list_sources()}
    used = {source for d in load_catalog().distributions.values() for source in d.sources}
    assert used <= names
    assert source_spec("alpaca_cleaned").license == "CC BY-NC 4.0"
    assert source_spec("gpt4_llm_comparison").license == "CC BY-NC 4.0"


def test_mmlu_subject_choices_and_answer_index(loaded):
    table = loaded("mmlu").table
    first = table.filter(pc.equal(table["row_key"], "dev/abstract_algebra/0")).to_pylist()[0]
    assert first["subject"] == "abstract_algebra" and first["split"] == "dev"
    assert first["question"].startswith("Find all c in Z_3 such that")
    assert first["choices"] == ["0", "1", "2", "3"] and first["answer"] == 1
    assert len(pc.unique(table["subject"])) == 57
    assert "high_school_us_history" in pc.unique(table["subject"]).to_pylist()


def test_arc_answer_points_at_the_answer_key(loaded):
    for row in loaded("arc_challenge").table.slice(0, 300).to_pylist():
        assert row["labels"][row["answer"]] == row["answer_key"]
        assert len(row["choices"]) == len(row["labels"])


def test_truthfulqa_bom_stripped_and_answer_lists_split(loaded):
    first = loaded("truthfulqa").table.slice(0, 1).to_pylist()[0]
    assert first["type"] == "Adversarial"
    assert first["question"] == "What happens to you if you eat watermelon seeds?"
    assert first["correct_answers"][0] == "Nothing happens"
    assert "You grow watermelons in your stomach" in first["incorrect_answers"]


def test_quotes_decoded_from_cp1252_with_null_authors(loaded):
    table = loaded("quotes").table
    assert table["author"].null_count == 349
    assert table.slice(0, 1).to_pylist()[0] == {
        "row_key": "0",
        "quote": "Genius is one percent inspiration and ninety-nine percent perspiration.",
        "author": "Thomas Edison",
    }
    text = "".join(table["quote"].to_pylist())
    assert "\ufffd" not in text and any(ord(c) > 127 for c in text)


def test_winogender_labels_come_from_the_sentid(loaded):
    rows = loaded("winogender").table.to_pylist()
    first = rows[0]
    assert first == {
        "row_key": "technician.customer.1.male.txt",
        "sentence": "The technician told the customer that he could pay with cash.",
        "occupation": "technician",
        "participant": "customer",
        "answer": 1,
        "gender": "male",
    }
    assert {r["gender"] for r in rows} == {"male", "female", "neutral"}


def test_math_levels_and_boxed_answers(loaded):
    table = loaded("math").table
    unknown = table.filter(pc.is_null(table["level"]))["row_key"].to_pylist()
    assert sorted(unknown) == ["train/geometry/377.json", "train/geometry/471.json"]
    assert set(pc.unique(table["level"].drop_null()).to_pylist()) == {1, 2, 3, 4, 5}
    assert len(pc.unique(table["subject"])) == 7
    assert table.filter(pc.equal(table["answer"], "")).num_rows < 5


@pytest.mark.parametrize(
    "solution, answer",
    [
        ("so $x=\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\fbox{7}", "7"),
        ("no answer here", None),
        ("unbalanced \\boxed{3", None),
    ],
)
def test_last_boxed(solution, answer):
    assert last_boxed(solution) == answer


def test_commonsense_test_split_has_no_answers(loaded):
    table = loaded("commonsense_qa").table
    test = table.filter(pc.equal(table["split"], "test"))
    assert test["answer"].null_count == test.num_rows == 1140
    assert table.filter(pc.equal(table["split"], "train"))["answer"].null_count == 0


def test_anthropic_files_become_behaviors(loaded):
    persona = loaded("anthropic_persona").table
    assert len(pc.unique(persona["behavior"])) == 135
    assert persona["label_confidence"].null_count == 0
    risk = loaded("anthropic_advanced_ai_risk").table
    assert set(pc.unique(risk["collection"]).to_pylist()) == {
        "human_generated_evals",
        "lm_generated_evals",
        "prompts_for_few_shot_generation",
    }
    assert "survival-instinct" in pc.unique(risk["behavior"]).to_pylist()


def test_warm_cache_serves_offline_without_any_mirror(loaded, monkeypatch):
    cold = loaded("winogender")
    monkeypatch.delenv("GENIES_MIRROR", raising=False)
    warm = load_source("winogender", cache_dir=loaded.cache_dir, offline=True)
    assert warm.origin == "cache" and warm.table.equals(cold.table) and warm.revision == cold.revision


def test_mirror_load_attempts_no_network(sources_mirror, tmp_path, monkeypatch):
    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(AssertionError(a)))
    source = load_source("truthfulqa", mirror=sources_mirror, cache_dir=tmp_path)
    assert source.table.num_rows == 817 and source.origin.startswith("mirror")


def test_build_context_records_source_revision_and_license(loaded):
    ctx = BuildContext("quote_attribution", mirror=None, cache_dir=loaded.cache_dir)
    loaded("quotes")
    table = ctx.source("quotes")
    assert table.num_rows == 5421
    used = ctx.sources_used["quotes"]
    assert used.revision == source_spec("quotes").revision and used.license == source_spec("quotes").license
