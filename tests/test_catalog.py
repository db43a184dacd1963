import json
import subprocess
import sys

import pytest

from builders.catalog import load_catalog
from builders.errors import UnknownNameError

GENIES_CATEGORIES = {"difficulty", "encoding", "pretraining_similarity", "skill", "context", "quality",
                     "unwanted_personas", "spurious_cues"}


def test_catalog_has_8_categories_56_shifts_15_genies():
    catalog = load_catalog()
    genies = [s for s in catalog.shifts if s.category in GENIES_CATEGORIES]
    assert GENIES_CATEGORIES <= set(catalog.categories)
    assert len(genies) == 56
    assert len({(s.source, s.target) for s in genies}) == 56
    assert len(catalog.select_shifts(benchmark="genies")) == 15


def test_new_categories_are_additional():
    catalog = load_catalog()
    assert set(catalog.categories) - GENIES_CATEGORIES >= {"perturbation", "lingual"}
    assert len({(s.source, s.target) for s in catalog.shifts}) == len(catalog.shifts)
    assert not any(s.benchmarks for s in catalog.shifts if s.category not in GENIES_CATEGORIES)


def test_labels_follow_categories():
    catalog = load_catalog()
    probing = {s.category for s in catalog.shifts if s.label == "probing" and s.category in GENIES_CATEGORIES}
    assert probing == {"unwanted_personas", "spurious_cues"}
    assert {s.category for s in catalog.shifts if s.label == "robustness"} >= {"perturbation", "lingual"}


def test_target_references():
    catalog = load_catalog()
    refs = {s.name: s.target_reference for s in catalog.shifts if s.target_reference}
    assert refs == {
        "alpaca_mmlu->sycophancy_mimicry": "quote_attribution",
        "alpaca_mmlu->sycophancy_answer": "arc_easy",
        "alpaca_mmlu->sycophancy_feedback": "code_is_correct",
        "alpaca_chat->sycophancy_are_you_sure": "arc_easy",
        "alpaca_short->alpaca_long": "alpaca_mmlu",
    }


def test_every_shift_distribution_is_registered():
    catalog = load_catalog()
    for name in catalog.distributions_in(catalog.shifts):
        assert name in catalog.distributions


def test_unknown_names_suggest_closest():
    catalog = load_catalog()
    with pytest.raises(UnknownNameError) as info:
        catalog.distribution("arc_esy")
    assert "arc_easy" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        catalog.select_shifts(category="dificulty")
    assert "difficulty" in str(info.value)


def test_list_json_cli():
    out = subprocess.run([sys.executable, "-m", "builders", "list", "--json"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert {c["name"] for c in data["categories"]} >= GENIES_CATEGORIES | {"perturbation", "lingual"}
    assert sum(s["category"] in GENIES_CATEGORIES for s in data["shifts"]) == 56
    assert sum("genies" in s["benchmarks"] for s in data["shifts"]) == 15
    assert set(data["shifts"][0]) == {"source", "target", "category", "label", "target_reference", "benchmarks"}
    assert {d["name"] for d in data["distributions"]} >= {"arc_easy", "alpaca_mmlu", "raven_matrices"}


def test_unknown_category_cli_exits_with_hint():
    out = subprocess.run([sys.executable, "-m", "builders", "list", "--category", "dificulty"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "difficulty" in out.stderr
    assert "Traceback" not in out.stderr
