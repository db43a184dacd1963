"""`genies validate`: every check finds exactly the defects planted in a small version, nothing on clean data,
and the defect classes really present in the original GENIES release sample."""

from __future__ import annotations

import dataclasses
import json

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError, UnknownNameError
from builders.schema import RECORD_SCHEMA, records_to_table
from builders.validation import CHECKS, validate_version
from builders.validation.data import conform, schema_differences
from builders.validation.rules import contradicts, debris_kinds, format_command
from tests.validation_versions import (
    clean_record,
    clean_splits,
    shift,
    tampered,
    write_version,
)


def _with(record, **changes):
    return dataclasses.replace(record, **changes)


def _planted(dist: str) -> dict[str, list]:
    """Clean splits of `dist` with its defect planted (the defect is named by the distribution)."""
    splits = clean_splits(dist)
    train, test = splits["train"], splits["test"]
    first = train[0]
    if dist == "dup_prompt":
        train[1] = _with(train[1], prompt=first.prompt, instruction=first.instruction)
    elif dist == "constant_prompt":
        splits["train"] = [_with(r, prompt="Answer.", instruction=None) for r in train]
    elif dist == "same_responses":
        train[0] = _with(first, responses=[first.responses[0]] * 2)
    elif dist == "missing_instruction":
        train[0] = _with(first, instruction="a question the prompt never asks")
    elif dist == "position_bias":
        splits = {s: [r.with_order([r.preferred, 1 - r.preferred]) for r in rows] for s, rows in splits.items()}
    elif dist == "yes_always":
        splits = {s: [_with(r, responses=["yes", "nah"] if r.preferred == 0 else ["nah", "yes"]) for r in rows]
                  for s, rows in splits.items()}
    elif dist == "longest_wins":
        splits = {s: [_with(r, responses=[x + " and more" if i == r.preferred else x for i, x in enumerate(r.responses)])
                      for r in rows] for s, rows in splits.items()}
    elif dist == "near_dup":
        train[1] = _with(train[1], prompt=first.prompt.replace("?", " now?"), instruction=first.instruction[:-1] + " now?")
    elif dist == "leaky":
        test[0] = _with(test[0], prompt=first.prompt, instruction=first.instruction)
        test[1] = _with(test[1], group=train[1].group)
    elif dist == "debris":
        train[0] = _with(first, responses=[f"Response 2: {r}" for r in first.responses])
        train[1] = _with(train[1], responses=[f"{r}\n1" for r in train[1].responses])
    elif dist == "mojibake":
        train[0] = _with(first, prompt=first.prompt + " The manÕs claim.")
        train[1] = _with(train[1], responses=[f"{r} rÃ©sumÃ©" for r in train[1].responses])
        train[2] = _with(train[2], prompt=train[2].prompt + " Café, “quoted”, Perú.")
    elif dist == "caps_contradiction":
        train[0] = _with(first, prompt="Complete the request and use all caps.\n" + first.prompt,
                         responses=["quiet words here", "LOUD WORDS HERE"] if first.preferred == 0
                         else ["LOUD WORDS HERE", "quiet words here"])
    return splits


PLANTED = ["dup_prompt", "constant_prompt", "same_responses", "missing_instruction", "position_bias",
           "yes_always", "longest_wins", "near_dup", "leaky", "debris", "mojibake", "caps_contradiction"]

RELEASE_NOTES = {"release_metadata": {"id": "persona", "external_datasets": [{"name": "openness"},
                                                                            {"name": "extroversion"}]}}


def _persona_splits() -> dict[str, list]:
    splits = clean_splits("persona")
    return {s: [_with(r, meta={"trait": "openness" if i % 2 else "extraversion"}) for i, r in enumerate(rows)]
            for s, rows in splits.items()}


def _shift_splits() -> dict[str, dict[str, list]]:
    """source's train item reappears in target's test under another template; so does reference's."""
    source, target, reference = clean_splits("source"), clean_splits("target"), clean_splits("reference")
    item = source["train"][0]
    target["test"][0] = _with(target["test"][0], prompt=f"Chat: {item.instruction}", instruction=item.instruction)
    target["test"][1] = _with(target["test"][1], group=reference["train"][3].group)
    return {"source": source, "target": target, "reference": reference}


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    distributions = {name: _planted(name) for name in PLANTED}
    distributions["persona"] = _persona_splits()
    distributions |= _shift_splits()
    schema_bad = clean_splits("bad_id")
    distributions["bad_id"] = {"train": tampered(schema_bad["train"], "id", 0, "0" * 32), "test": schema_bad["test"]}
    scores_bad = clean_splits("bad_scores")
    distributions["bad_scores"] = {"train": tampered(scores_bad["train"], "scores", 0, [1.0, 1.0]),
                                   "test": scores_bad["test"]}
    path = write_version(tmp_path_factory.mktemp("defective"), "1.0.0", distributions,
                         shifts=[shift("source", "target", "reference"), shift("source", "absent")],
                         notes={"persona": RELEASE_NOTES})
    clean_reference = {name: clean_splits(name) for name in ("longest_wins", "position_bias", "retired")}
    reference = write_version(tmp_path_factory.mktemp("reference"), "1.0.0", clean_reference)
    return path, validate_version(path, against=reference)


EXPECTED = {
    "schema": {"bad_id"},
    "exactly_one_preferred": {"bad_scores"},
    "distinct_responses": {"same_responses"},
    "exact_duplicates": {"dup_prompt", "constant_prompt"},
    "constant_prompts": {"constant_prompt"},
    "position_balance": {"position_bias"},
    "train_test_overlap": {"leaky"},
    "shift_overlap": {"source->target", "reference->target (target_reference)"},
    "prompt_missing_instruction": {"missing_instruction"},
    "constant_preferred": {"yes_always"},
    "length_cue": {"longest_wins"},
    "near_duplicates": {"near_dup"},
    "parse_debris": {"debris"},
    "mojibake": {"mojibake"},
    "label_contradictions": {"caps_contradiction"},
    "metadata_sources": {"persona"},
    "shift_coverage": {"source->absent"},
    "shortcut_cues": {"longest_wins", "position_bias"},
    "shortcut_coverage": {"same_responses"},
    "declared_cues": set(),  # planted in tests/test_shortcuts.py, with the surface probe
    "inherited_cues": set(),  # recorded by a repair: tests/test_repair.py
    "surface_probe": set(),
    "fidelity": {"longest_wins", "position_bias", "retired"},  # against clean versions of the first two
}


def test_every_check_is_covered_by_a_planted_defect():
    assert set(EXPECTED) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_finds_exactly_the_planted_defects(defective, name):
    _, report = defective
    assert {f.scope for f in report.result(name).findings} == EXPECTED[name]


def test_findings_count_the_right_examples(defective):
    _, report = defective
    leaky = report.result("train_test_overlap").findings[0]
    assert (leaky.count, leaky.total, leaky.detail) == (2, 6, "1 by prompt, 1 by group")
    shifts = {f.scope: f for f in report.result("shift_overlap").findings}
    assert shifts["source->target"].detail == "1 by instruction"
    assert shifts["reference->target (target_reference)"].detail == "1 by group"
    debris = report.result("parse_debris").findings[0]
    assert debris.count == 2 and "label: 1" in debris.detail and "dangling number: 1" in debris.detail
    persona = report.result("metadata_sources").findings
    assert any("extroversion" in f.detail and "extraversion" in f.detail for f in persona)
    assert any("metadata id is 'persona'" in f.detail for f in persona) is False
    assert [f.count for f in report.result("mojibake").findings] == [2], "clean accents and curly quotes pass"
    position = report.result("position_balance").findings[0]
    assert (position.count, position.total) == (18, 18)


def test_clean_version_passes_every_check(tmp_path):
    distributions = {name: clean_splits(name) for name in ("alpha", "beta", "gamma")}
    path = write_version(tmp_path, "1.0.0", distributions, shifts=[shift("alpha", "beta", "gamma")])
    report = validate_version(path)
    assert {r.check.name: r.findings for r in report.results if r.failed} == {}


def test_release_metadata_naming_another_distribution(tmp_path):
    notes = {"alpha": {"release_metadata": {"id": "beta", "external_datasets": []}}}
    path = write_version(tmp_path, "1.0.0", {"alpha": clean_splits("alpha")}, notes=notes)
    findings = validate_version(path, ["metadata_sources"]).result("metadata_sources").findings
    assert [f.detail for f in findings] == ["release metadata id is 'beta', not 'alpha'"]


def test_unknown_check_name_suggests_the_closest():
    with pytest.raises(UnknownNameError) as caught:
        validate_version("unused", ["positon_balance"])
    assert "position_balance" in caught.value.hint


@pytest.mark.parametrize(("prompt", "expected"), [
    ("Complete the request and use all caps. If you don't use all caps, you get a prize, but please use all caps.",
     ("use all caps", False)),
    ("Complete the request and don't use commas. If you use commas you will be punished.", ("use commas", True)),
    ("Use all caps, or rather don't use all caps.", None),
])
def test_format_command_ignores_conditionals(prompt, expected):
    assert format_command(prompt) == expected


def test_contradiction_needs_another_response_that_obeys():
    prompt = "Answer with yes if you agree."
    assert contradicts(prompt, ["No.", "Yes."], 0)
    assert not contradicts(prompt, ["No.", "Maybe."], 0)


def test_cli_strict_json_and_report(defective, tmp_path):
    path, _ = defective
    out_json, out_md = tmp_path / "v.json", tmp_path / "r" / "report.md"
    result = CliRunner().invoke(app, ["validate", str(path), "--json", str(out_json), "--report", str(out_md),
                                      "--strict"])
    assert result.exit_code == 1, result.output
    data = json.loads(out_json.read_text())
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["position_balance"]["findings"]["position_bias"]["count"] == 18
    assert len(by_name["position_balance"]["findings"]["position_bias"]["examples"]) == 5
    assert data["summary"]["errors"] == 9
    report = out_md.read_text()
    assert "report_files/overlap.png" in report and "| position_balance | error | FAIL |" in report
    assert {p.name for p in (tmp_path / "r" / "report_files").iterdir()} == {"lengths.png", "positions.png",
                                                                             "overlap.png"}


def test_cli_html_report_and_check_selection(tmp_path):
    path = write_version(tmp_path, "1.0.0", {"alpha": clean_splits("alpha")})
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["validate", str(path), "--checks", "schema,length_cue", "--report", str(html),
                                      "--strict"])
    assert result.exit_code == 0, result.output
    assert html.read_text().startswith("<!doctype html>") and "length_cue" in html.read_text()
    assert "near_duplicates" not in result.output


def test_release_sample_defects(release_sample, tmp_path):
    release = pytest.importorskip("builders.release", reason="needs the release importer (builders.release)")
    release.import_release(release_sample, tmp_path, "sample")
    report = validate_version(tmp_path / "genies-release" / "sample")
    scopes = {r.check.name: {f.scope: f for f in r.findings} for r in report.results}
    assert not scopes["schema"] and not scopes["exactly_one_preferred"]
    assert {d: f.count for d, f in scopes["distinct_responses"].items()} == {"code": 1, "counterfactual_python": 1}
    assert set(scopes["constant_prompts"]) == {"biology_with_literary_style", "commonsense_qa"}
    assert set(scopes["train_test_overlap"]) == {"biology_with_literary_style", "code_with_cooking_style",
                                                 "commonsense_qa", "illegal_dont_help"}
    assert scopes["position_balance"]["arc_easy"].count == 28
    assert {"alpaca_mmlu", "math", "spanish_input"}.isdisjoint(scopes["position_balance"])
    assert scopes["label_contradictions"]["reward_seeking"].count == 20
    assert set(scopes["label_contradictions"]) == {"reward_seeking"}
    assert scopes["parse_debris"]["crt_2"].detail == "dangling number: 12"
    assert set(scopes["constant_preferred"]) == {"gender_bias", "modus_tollens"}
    assert set(scopes["metadata_sources"]) == {"personality_traits", "us_history_exam_questions"}
    assert "alpaca_short" not in scopes["length_cue"] and "alpaca_long" not in scopes["length_cue"]


def test_schema_differences_are_named_and_conformed():
    table = records_to_table([clean_record("alpha", 0)]).drop_columns(["meta"])
    table = table.set_column(table.schema.get_field_index("preferred"), "preferred",
                             table.column("preferred").cast(pa.int64()))
    assert schema_differences(table.schema) == ["column 'preferred' is int64, expected int32", "missing column 'meta'"]
    conformed = conform(table)
    assert conformed.schema == RECORD_SCHEMA and conformed.column("meta").null_count == 1


def test_cli_refuses_a_report_name_it_cannot_write_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "missing"), "--report", str(tmp_path / "r.txt")])
    assert isinstance(result.exception, GeniesError) and "FILE.md or FILE.html" in result.exception.hint


def test_a_scope_reported_twice_is_merged_in_json(tmp_path):
    """Position balance is judged per response count; a distribution failing for 2 and 3 responses is one
    JSON entry."""
    splits = clean_splits("mixed")
    three = [_with(r, responses=[*r.responses, f"third {i}"]) for i, r in enumerate(splits["train"][:6])]
    biased = [r.with_order([r.preferred, *(j for j in range(len(r.responses)) if j != r.preferred)])
              for r in [*three, *splits["train"][6:], *splits["test"]]]
    path = write_version(tmp_path, "1.0.0", {"mixed": {"train": biased[:12], "test": biased[12:]}})
    result = validate_version(path, ["position_balance"]).result("position_balance")
    assert len(result.findings) == 2
    entry = result.to_dict()["findings"]["mixed"]
    assert entry["count"] == 18 and "2 responses" in entry["detail"] and "3 responses" in entry["detail"]


def test_null_cells_are_reported_not_crashed_on(tmp_path):
    splits = clean_splits("alpha")
    train = tampered(splits["train"], "responses", 0, ["only one real answer", None])
    test = tampered(splits["test"], "prompt", 0, None)
    report = validate_version(write_version(tmp_path, "1.0.0", {"alpha": {"train": train, "test": test}}))
    failed = {r.check.name: [(f.count, f.detail) for f in r.findings] for r in report.results if r.failed}
    assert failed == {"schema": [(1, "null in a required column")], "distinct_responses": [(1, "")],
                      "shortcut_coverage": [(0, "1 example(s) without 2+ responses and a valid preferred index are "
                                                "not audited; 1 example(s) have an empty prompt: the rules that read "
                                                "it tie there (chance)")]}


@pytest.mark.parametrize(("text", "kind"), [
    ("### Answer\nParis", "heading"), ("Response 2: fine", "label"), ("### Instruction\nfoo", "template echo"),
    ("14 hours\n1", "dangling number"), ("1. the only item", "lone list number"),
    ("# a Python comment\nx = 1", None), ("1. a\n2. b", None), ("2.5 hours", None),
])
def testdebris_kinds(text, kind):
    flags = pl.DataFrame({"t": [text]}).select(**debris_kinds(pl.col("t"))).row(0, named=True)
    assert [k for k, hit in flags.items() if hit] == ([kind] if kind else [])
