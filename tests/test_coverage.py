"""A version says what it covers: every catalog shift in its shifts table with a status, and an evaluation
of a partial version reports every selected shift and states what its means are over."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import discovery
from builders.catalog import load_catalog
from builders.cli import app
from builders.errors import GeniesError
from builders.export import Version
from builders.pipeline import BuildOptions, BuildRequest, run_build
from builders.registry import BUILDERS, BuildContext, Builder
from builders.schema import Provenance, Record

STAND_IN = "alpaca_mmlu"  # its real builder needs an upstream; a stand-in makes it here
PROCEDURAL = ["ranking_logic", "raven_matrices"]


def _mmlu_like(ctx: BuildContext) -> Iterator[Record]:
    for i in range(40):
        good, bad = f"answer{i % 7} correct reasoning", f"answer{i % 5} sloppy guess"
        yield Record(distribution=ctx.distribution, prompt=f"question number {i}?", responses=[good, bad],
                     preferred=0, group=f"stand-in:{i}", provenance=Provenance(source="test", row_key=str(i)))


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    """A version of 3 distributions, which covers 2 of the 15 GENIES shifts."""
    discovery.discover()
    with BUILDERS.snapshot():
        BUILDERS.remove(STAND_IN)
        BUILDERS.add(STAND_IN, Builder(STAND_IN, _mmlu_like, module=__name__), __name__)
        request = BuildRequest(names=[STAND_IN, *PROCEDURAL], options=BuildOptions(limit=12),
                               out=tmp_path_factory.mktemp("art"), version="partial")
        return run_build(request).path


def test_the_shifts_table_holds_every_catalog_shift_with_its_status(partial) -> None:
    rows = {f"{r['source']}->{r['target']}": r["status"] for r in Version.open(partial).shifts().to_pylist()}
    assert set(rows) == {s.name for s in load_catalog().shifts}
    assert rows["alpaca_mmlu->ranking_logic"] == "built"
    assert rows["raven_matrices->us_history"] == "missing: target us_history (not selected for this build)"
    assert rows["alpaca_easy->alpaca_hard"].startswith("missing: source alpaca_easy (not selected")


def test_eval_reports_all_15_genies_shifts_and_states_its_coverage(partial, tmp_path) -> None:
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(partial), "--shifts", "genies", "--out", str(out)])
    assert result.exit_code == 0, result.output
    statement = "mean over 2 of 15 GENIES shifts"
    document = json.loads((out / "results.json").read_text())
    assert len(document["rows"]) == 15
    assert document["coverage"] == {"evaluated": 2, "selected": 15, "scope": "GENIES shifts", "statement": statement}
    assert 0.0 <= document["means"]["target_accuracy"] <= 1.0
    skipped = {r["shift"]: r["skipped_reason"] for r in document["rows"] if r["status"] == "skipped"}
    assert skipped["raven_matrices->us_history"] == "missing: target us_history (not selected for this build)"
    assert len(skipped) == 13
    assert statement in (out / "summary.md").read_text()
    assert statement in " ".join(result.output.split())


def test_eval_strict_refuses_partial_coverage(partial, tmp_path) -> None:
    out = tmp_path / "strict"
    result = CliRunner().invoke(app, ["eval", str(partial), "--shifts", "genies", "--strict", "--out", str(out)])
    assert isinstance(result.exception, GeniesError)
    assert "mean over 2 of 15 GENIES shifts" in result.exception.message
    assert not out.exists()
    named = ["eval", str(partial), "--shifts", "alpaca_mmlu->ranking_logic", "--strict", "--out", str(out)]
    assert CliRunner().invoke(app, named).exit_code == 0


def test_a_source_read_only_to_remove_duplicates_is_declared_as_such(sources_mirror, tmp_path) -> None:
    """wrong_arc reads mmlu only to drop questions both upstreams ask: metadata_sources does not flag it."""
    from builders.validation.run import validate_version

    request = BuildRequest(names=["wrong_arc"], options=BuildOptions(limit=10, mirror=sources_mirror,
                                                                     cache_dir=tmp_path / "cache"),
                           out=tmp_path / "art", version="1")
    path = run_build(request).path
    entry = Version.open(path).manifest["distributions"]["wrong_arc"]
    assert entry["sources"] == ["arc_easy", "mmlu"] and entry["dedupe_sources"] == ["mmlu"]
    assert validate_version(path, ["metadata_sources"]).result("metadata_sources").findings == []
