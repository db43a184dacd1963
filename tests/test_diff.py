"""`genies diff`: two small versions with known edits are classified example by example."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.diff import diff_versions
from tests.validation_versions import clean_record, clean_splits, shift, write_version


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """B = A with one example of alpha removed, added, changed, moved to test and reordered; beta dropped
    its test split; gamma is new; one shift added."""
    root = tmp_path_factory.mktemp("diff")
    alpha, beta = clean_splits("alpha"), clean_splits("beta")
    a = write_version(root, "1.0.0", {"alpha": alpha, "beta": beta}, shifts=[shift("alpha", "beta")])
    train, test = list(alpha["train"]), list(alpha["test"])
    removed, changed, moved, reordered = train[0], train[1], train[2], train[3]
    edited = dataclasses.replace(changed, responses=[r + " (edited)" for r in changed.responses])
    train = [edited, reordered.with_order([1, 0]), *train[4:]]
    test = [*test, moved, clean_record("alpha", 100)]
    b = write_version(root, "1.1.0", {"alpha": {"train": train, "test": test}, "beta": {"train": beta["train"]},
                                      "gamma": clean_splits("gamma")},
                      shifts=[shift("alpha", "beta"), shift("alpha", "gamma")])
    return a, b, {"removed": removed.id, "changed": edited.id, "moved": moved.id, "reordered": reordered.id}


def test_examples_are_classified_by_id(versions):
    a, b, ids = versions
    alpha = {d.name: d for d in diff_versions(a, b).distributions}["alpha"]
    assert alpha.status == "changed"
    assert {k: v for k, v in alpha.counts.items() if v} == {
        "added": 1, "removed": 1, "changed": 1, "moved": 1, "reordered": 1, "unchanged": 14}
    assert alpha.examples["removed"] == [ids["removed"]]
    assert alpha.examples["changed"] == [ids["changed"]]
    assert alpha.examples["moved"] == [ids["moved"]]
    assert alpha.examples["reordered"] == [ids["reordered"]]
    assert (alpha.rows_a, alpha.rows_b) == ({"test": 6, "train": 12}, {"test": 8, "train": 10})


def test_distributions_schema_shifts_and_stats(versions):
    a, b, _ = versions
    diff = diff_versions(a, b)
    by_name = {d.name: d for d in diff.distributions}
    assert by_name["gamma"].status == "added" and by_name["gamma"].counts["added"] == 18
    assert by_name["beta"].schema_changes == ["split test removed"]
    assert diff.shifts == {"added": ["alpha->gamma"], "removed": [], "changed": []}
    assert set(diff.manifest) >= {"version", "content_sha256"}
    assert by_name["alpha"].stats_a["pos0"] == pytest.approx(0.5)
    assert by_name["alpha"].stats_b["rows"] == 18


def test_a_version_against_itself_is_identical(versions):
    a, _, _ = versions
    diff = diff_versions(a, a)
    assert diff.identical and diff.manifest == {}
    assert all(d.counts["unchanged"] == 18 for d in diff.distributions)


def test_cli_prints_tables_and_writes_json(versions, tmp_path):
    a, b, _ = versions
    out = tmp_path / "diff.json"
    result = CliRunner().invoke(app, ["diff", str(a), str(b), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "alpha->gamma" in result.output and "3 of 3 distributions differ" in result.output
    data = json.loads(out.read_text())
    assert data["distributions"]["alpha"]["examples"]["moved"] == 1
    assert data["identical"] is False


def test_duplicate_ids_are_matched_occurrence_by_occurrence(tmp_path):
    """The release repeats whole examples; dropping one copy of a repeated example is one removal."""
    splits = clean_splits("alpha")
    twice = {"train": [*splits["train"], splits["train"][0]], "test": splits["test"]}
    a = write_version(tmp_path, "1.0.0", {"alpha": twice})
    b = write_version(tmp_path, "1.1.0", {"alpha": splits})
    counts = diff_versions(a, b).distributions[0].counts
    assert {k: v for k, v in counts.items() if v} == {"removed": 1, "unchanged": 18}
