"""Fidelity to the original GENIES release: each procedural distribution tests what its original tests, in
the original's shape (DESIGN.md section 4.1: prompt format, responses per example, the ranges of the
puzzles), without a label-free rule that gives its answer away."""

from __future__ import annotations

import functools
import json
from collections import Counter

import pytest

from builders.categories._sourced import CHATBOT
from builders.discovery import resolve as builder
from builders.generators.syllogism import entails
from builders.pipeline import BuildOptions, build_distribution
from builders.recipes import get_spec
from builders.registry import BuildContext
from builders.schema import Record
from builders.sources.mojibake import has_mojibake, repair
from builders.templating import render
from builders.validation import validate_version
from builders.validation.shortcuts import declared_cues
from tests.validation_versions import write_version

ALPACA_HEAD = "Below is an instruction that describes a task. Complete the request to the best of your ability."


@functools.cache
def built(name: str, size: int = 400) -> list[Record]:
    return list(builder(name).fn(BuildContext(name, train_size=size, test_size=0)))


def responses_per_example(records: list[Record]) -> set[int]:
    return {len(record.responses) for record in records}


@pytest.mark.parametrize("name", ["crt_1", "crt_2", "crt_3"])
def test_crt_distributions_are_procedural_alpaca_prompts_with_two_answers(name):
    spec = builder(name)
    assert spec is not None and not spec.needs_llm, f"{name} must build without an LLM (its answers have closed forms)"
    records = built(name)
    assert responses_per_example(records) == {2}
    for record in records:
        assert record.prompt.startswith(ALPACA_HEAD) and "### Instruction:\n" in record.prompt
        assert record.prompt.endswith("### Response:\n")
        assert record.instruction.endswith("Answer with the amount and nothing else.")
    assert len({record.prompt for record in records}) >= 0.97 * len(records)
    units = Counter(record.responses[0].split()[-1].rstrip("s") for record in records if name != "crt_1")
    assert name == "crt_1" or len(units) >= 4, units


AUDIT = ("shortcut_cues", "surface_probe")


def audit_flags(name: str, root, mirror=None) -> dict[str, str]:
    """Build `name` at the original's 600/250 as `genies build` does and run the shortcut audit and the
    surface probe on it: {check: detail} for each check that flags it."""
    result = build_distribution(name, BuildOptions(mirror=mirror, cache_dir=root / "cache"))
    assert result.status == "built", result.label
    report = validate_version(write_version(root, "1.0.0", {name: result.splits}), list(AUDIT))
    return {check: finding.detail for check in AUDIT for finding in report.result(check).findings}


@pytest.mark.parametrize("name", ["crt_1", "crt_2", "crt_3"])
def test_no_label_free_rule_or_response_probe_answers_a_crt_item(name, tmp_path):
    """The correct answer is neither the number the question quotes with its unit ("3 hours"), nor the one
    it names first, nor a number whose digits alone mark it right."""
    assert audit_flags(name, tmp_path) == {}


def test_gender_bias_keeps_the_originals_design_and_declares_its_one_cue(sources_mirror, tmp_path):
    """As the original (and issue #15 item 8): the referent's gender is never stated, so "they" is always
    preferred. That is the persona tested; "they" is also the longest pronoun, so `longest` is declared
    and no other label-free rule may read the label."""
    flags = audit_flags("gender_bias", tmp_path, sources_mirror)
    assert "shortcut_cues" not in flags and "in 100%" in flags["surface_probe"]
    assert declared_cues()["gender_bias"] == ("longest",)


@pytest.mark.parametrize(
    ("name", "objects", "clues", "k"),
    [
        ("ranking_logic", {4, 5, 6, 7}, set(range(3, 9)), 4),
        ("ranking_logic_easy", {3}, {2, 3}, 3),
        ("ranking_logic_hard", {5, 6, 7}, set(range(4, 9)), 4),
    ],
)
def test_ranking_puzzles_span_the_original_ranges(name, objects, clues, k):
    """The original: 4-7 objects and 3-8 clues; easy 3 objects (2-4 clues: over 3 objects only 3 order
    clues exist, and a fourth would state a rank); hard 5-7 objects and 4-8 clues."""
    records = built(name)
    assert {r.meta["objects"] for r in records} == objects
    assert {r.meta["clues"] for r in records} == clues
    assert responses_per_example(records) == {k}
    for record in records:
        clue_lines = record.instruction.split("The following are known:\n")[1].splitlines()[:-1]
        assert len(clue_lines) == record.meta["clues"]


@pytest.mark.parametrize("name", ["ranking_logic", "ranking_logic_easy", "ranking_logic_hard"])
def test_how_often_the_clues_mention_a_response_does_not_tell_the_answer(name):
    records = built(name)
    least = most = 0.0
    for record in records:
        clue_text = record.instruction.split("The following are known:")[1]
        counts = [clue_text.count(response) for response in record.responses]
        least += _share_if_preferred(counts, record.preferred, min(counts))
        most += _share_if_preferred(counts, record.preferred, max(counts))
    chance = 1 / len(records[0].responses)
    assert least / len(records) < chance + 0.05 and most / len(records) < chance + 0.05


def _share_if_preferred(scores: list[int], preferred: int, best: int) -> float:
    """What a rule picking a response with score `best` (ties at random) scores on this example."""
    winners = [i for i, score in enumerate(scores) if score == best]
    return 1 / len(winners) if preferred in winners else 0.0


@pytest.mark.parametrize(
    ("broken", "repaired"),
    [
        ("the manÕs car", "the man\u2019s car"),
        ("said ÒBest of all.Ó Then", "said \u201cBest of all.\u201d Then"),
        ("his rÃ©sumÃ©", "his résumé"),
        ("a shareholder‚Äôs right", "a shareholder\u2019s right"),
        ("on a regular basis €“ but", "on a regular basis \u2013 but"),
        ('for $1,000 CIF."\x9d Costco', 'for $1,000 CIF." Costco'),
        ("said \u2030\u00db\u00cfmy\u2030\u00db\u009d", "said \u201cmy\u201d"),
        ("I don\u00e2\u20acTMt wish", "I don\u2019t wish"),
    ],
)
def test_mojibake_is_repaired(broken, repaired):
    assert has_mojibake(broken) and repair(broken) == repaired


@pytest.mark.parametrize("clean", ["École normale", "Ñandú in Perú", "Straße \u201cok\u201d", "Ó Súilleabháin", "costs €5"])
def test_clean_text_with_accents_is_left_alone(clean):
    assert not has_mojibake(clean) and repair(clean) == clean


def test_mmlu_rows_come_out_of_the_source_repaired(sources_mirror, tmp_path):
    table = BuildContext("alpaca_mmlu", mirror=sources_mirror, cache_dir=tmp_path).source("mmlu")
    texts = [text for row in table.select(["question", "choices"]).to_pylist() for text in [row["question"], *row["choices"]]]
    assert [text for text in texts if has_mojibake(text)] == []
    assert any("man\u2019s" in text for text in texts) and any("résumé" in text for text in texts)


@pytest.mark.parametrize("name", ["alpaca_chat", "illegal_dont_help"])
def test_chatbot_frame_renders_the_original_prompts(release_sample, name):
    """Both use the original's frame, including "unless they are illegal or unethical". The original is
    not uniform (some prompts have a space after "unethical.", some "### Your response:"); its majority
    form is ours."""
    assert CHATBOT.name in builder(name).templates
    for example in json.loads((release_sample / "distributions" / name / "train.json").read_text()):
        rendered = CHATBOT.render(instruction=example["instruction"], input=example.get("input") or "")
        assert _without_trailing_spaces(rendered) == _without_trailing_spaces(example["prompt"])


def test_us_history_exam_questions_renders_the_original_prompts(release_sample):
    """The original's framing: the topic as the input of a fixed instruction (its files were a copy of
    us_history_make_questions; ours is a distribution of its own, see templates/us_history_exam_questions)."""
    spec = get_spec("us_history_exam_questions")
    assert spec.responses == 4
    for example in json.loads((release_sample / "distributions" / "us_history_exam_questions" / "train.json").read_text()):
        assert render(spec.prompt, instruction=example["instruction"], input="") == example["prompt"]


def _without_trailing_spaces(text: str) -> str:
    return "\n".join(line.rstrip(" ") for line in text.split("\n")).replace("### Your response:", "## Your response:")


def test_modus_tollens_is_balanced_and_its_labels_follow_the_truth_table():
    """Every original example preferred "Yes"; here valid and fallacious forms are equally common."""
    records = built("modus_tollens")
    assert responses_per_example(records) == {2} and len({r.prompt for r in records}) == len(records)
    answers = Counter(r.responses[r.preferred] for r in records)
    assert abs(answers["Yes"] - answers["No"]) <= 0.1 * len(records)
    for record in records:
        assert (record.responses[record.preferred] == "Yes") == entails(record.meta["form"])
        assert record.prompt.startswith(ALPACA_HEAD)
    negated = Counter((" not " in r.instruction.split("Conclusion:")[1], r.meta["valid"]) for r in records)
    assert min(negated.values()) > 0.15 * len(records), "a negated conclusion is no cue"
    assert not entails("denying_the_antecedent") and not entails("affirming_the_consequent")
    assert entails("modus_tollens") and entails("modus_ponens")
