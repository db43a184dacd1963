"""The fidelity comparison (`genies validate NEW --against REFERENCE`): each mismatch kind is found where it is
planted and nowhere else, the side-by-side table reaches the terminal, JSON and the report, and the card of
a built version carries the shortcut audit."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError
from builders.pipeline import BuildOptions, BuildRequest, run_build
from builders.release import import_release
from builders.validation import validate_version
from builders.validation.fidelity import skeleton
from builders.validation.shortcuts import RULES, audit_records, card_rows
from tests.validation_versions import clean_splits, write_version


def _three_responses(splits):
    return {s: [dataclasses.replace(r, responses=[*r.responses, f"third {i} {r.responses[0][:8]}"])
                for i, r in enumerate(rows)] for s, rows in splits.items()}


def _preferred_first(splits):
    return {s: [r.with_order([r.preferred, 1 - r.preferred]) for r in rows] for s, rows in splits.items()}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """NEW and REFERENCE with one planted mismatch per distribution (named after it)."""
    root = tmp_path_factory.mktemp("against")
    same, slightly = clean_splits("same", train=20, test=10), clean_splits("slightly", train=20, test=10)
    new = {
        "same": same,
        "slightly": {"train": slightly["train"][:19], "test": slightly["test"]},  # 19 vs 20: within 5%
        "more_k": _three_responses(clean_splits("more_k")),
        "resized": clean_splits("resized", train=12, test=6),
        "cue_here": _preferred_first(clean_splits("cue_here", train=20, test=10)),
        "cue_there": clean_splits("cue_there", train=20, test=10),
        "only_new": clean_splits("only_new"),
    }
    reference = {
        "same": same, "slightly": slightly, "more_k": clean_splits("more_k"),
        "resized": clean_splits("resized", train=20, test=10),
        "cue_here": clean_splits("cue_here", train=20, test=10),
        "cue_there": _preferred_first(clean_splits("cue_there", train=20, test=10)),
        "missing": clean_splits("missing"),
    }
    new_path = write_version(root / "new", "1.0.0", new)
    reference_path = write_version(root / "reference", "1.0.0", reference)
    return new_path, reference_path, validate_version(new_path, ["fidelity"], against=reference_path)


def test_each_mismatch_is_found_where_it_is_planted(compared):
    *_, report = compared
    details = {f.scope: f.detail for f in report.result("fidelity").findings}
    assert set(details) == {"more_k", "resized", "cue_here", "cue_there", "missing"}
    assert details["more_k"] == "responses per example 3: 18 vs 2: 18"
    assert details["resized"] == "test rows 6 vs 10 (-40%); train rows 12 vs 20 (-40%)"
    assert details["cue_here"] == "shortcut only here: position_0 (100%)"
    assert details["cue_there"] == "shortcut only in the reference: position_0 (100%)"
    assert details["missing"] == "missing: only the reference has it"


def test_json_has_every_distribution_side_by_side(compared):
    new_path, reference_path, report = compared
    against = report.to_dict()["against"]
    assert against["path"] == str(reference_path)
    assert set(against["distributions"]) == {"same", "slightly", "more_k", "resized", "cue_here", "cue_there",
                                             "only_new", "missing"}
    same = against["distributions"]["same"]
    assert same["new"] == same["reference"] and same["skeleton_similarity"] == 1.0 and same["mismatches"] == []
    assert same["new"]["rows"] == {"test": 10, "train": 20}
    assert same["new"]["responses_per_example"] == {"2": 30}
    assert same["new"]["prompt_skeleton"] == "### Instruction:\n… ### Response:"
    assert set(same["new"]["rule_accuracy"]) == set(RULES)
    assert against["distributions"]["only_new"]["reference"] is None
    assert against["distributions"]["cue_here"]["new"]["shortcuts"] == ["position_0"]


def test_the_cli_prints_the_table_and_writes_it_to_json_and_report(compared, tmp_path):
    new_path, reference_path, _ = compared
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = CliRunner().invoke(app, ["validate", str(new_path), "--against", str(reference_path),
                                      "--json", str(out_json), "--report", str(out_md)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    terminal = " ".join(result.output.replace("│", " ").split())
    assert f"Against {reference_path} (NEW / REFERENCE)" in terminal
    assert "missing — / 18 — / 2" in terminal and "shortcut only here: position_0 (100%)" in terminal
    assert "fidelity" in {c["name"] for c in json.loads(out_json.read_text())["checks"]}
    report = out_md.read_text()
    assert "## Against" in report and "### cue_here" in report
    assert "| rule position_0 | 100% ⚑ | 50% |" in report
    html = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["validate", str(new_path), "--against", str(reference_path),
                                      "--checks", "fidelity", "--report", str(html)])
    assert result.exit_code == 0 and "<h3>cue_here</h3>" in html.read_text()


def test_fidelity_needs_a_reference(compared):
    new_path, *_ = compared
    assert "fidelity" not in {r.check.name for r in validate_version(new_path).results}
    with pytest.raises(GeniesError) as caught:
        validate_version(new_path, ["fidelity"])
    assert "--against" in caught.value.hint


@pytest.mark.parametrize(("prompts", "expected"), [
    (["Question: what is the cat?\nAnswer:", "Question: where is the big dog now?\nAnswer:",
      "Question: why the sky?\nAnswer:"], "Question: … Answer:"),
    (["Rewrite: a b c. Use formal words.", "Rewrite: d e. Use formal words.", "Rewrite: f. Use formal words."],
     "Rewrite: … Use formal words."),
    (["only one"], "only one"),
    (["", ""], ""),
    ([], ""),
])
def test_the_skeleton_keeps_the_template_and_drops_what_varies(prompts, expected):
    assert skeleton(prompts) == expected


def test_bad_input_against_a_reference_gets_notes_not_crashes(tmp_path):
    """A single example, identical responses, empty prompts and varying k, compared with each other."""
    single = clean_splits("odd", train=1, test=0)
    empty = {s: [dataclasses.replace(r, prompt="", responses=[r.responses[0], r.responses[0] + "!"]) for r in rows]
             for s, rows in clean_splits("odd", train=3, test=1).items()}
    identical = {s: [dataclasses.replace(r, responses=[r.responses[0]] * 2) for r in rows]
                 for s, rows in clean_splits("odd", train=3, test=2).items()}
    varying = clean_splits("odd", train=4, test=2)
    varying["train"][0] = dataclasses.replace(varying["train"][0], responses=[*varying["train"][0].responses, "x"])
    for new, reference in [(single, empty), (empty, varying), (varying, identical), (identical, single)]:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        report = validate_version(write_version(root / "new", "1", {"odd": new}), ["fidelity", "shortcut_coverage"],
                                  against=write_version(root / "ref", "1", {"odd": reference}))
        assert [f.scope for f in report.result("fidelity").findings] == ["odd"]
        assert report.to_dict()["against"]["distributions"]["odd"]["new"]["rows"]


def test_the_card_of_a_build_has_the_shortcut_audit(tmp_path):
    planted = _preferred_first(clean_splits("planted", train=20, test=10))
    rows = card_rows(audit_records({"planted": planted, "clean": clean_splits("clean", train=20, test=10)}))
    assert rows == [{"dist": "planted", "rule": "position_0", "accuracy": 1.0, "chance": 0.5, "declared": False}]
    report = run_build(BuildRequest(names=["crt_1"], options=BuildOptions(limit=20), out=tmp_path, version="1"))
    assert report.path is not None
    card = (report.path / "README.md").read_text()
    assert "## Shortcut audit" in card and "--against REFERENCE" in card


@pytest.mark.needs_shared
def test_a_build_against_the_imported_release_sample(release_sample, tmp_path):
    import_release(release_sample, tmp_path, "1.0.0")
    build = run_build(BuildRequest(names=["crt_1", "modus_tollens"], options=BuildOptions(limit=30), out=tmp_path,
                                   version="1"))
    report = validate_version(build.path, ["fidelity"], against=tmp_path / "genies-release" / "1.0.0")
    details = {f.scope: f.detail for f in report.result("fidelity").findings}
    assert "crt_1" in details and "train rows 30 vs 20 (+50%)" in details["crt_1"]
    assert "shortcut only in the reference: position_0 (100%)" in details["crt_1"]
    assert details["word_swap"] == "missing: only the reference has it"
    crt_1 = report.to_dict()["against"]["distributions"]["crt_1"]
    head = "Below is an instruction that describes a task. Complete the request to the best of your ability."
    assert crt_1["new"]["prompt_skeleton"].startswith(head) and crt_1["reference"]["prompt_skeleton"].startswith(head)
    assert crt_1["skeleton_similarity"] > 0.8
