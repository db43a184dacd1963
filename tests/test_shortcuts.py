"""The shortcut audit: every label-free rule is found where it is planted, nothing is found on clean data,
declared cues are notes, bad input gets notes instead of crashes, and the surface probe reads the label
off the responses when the responses give it away."""

from __future__ import annotations

import dataclasses
import random

import polars as pl
import pytest

from builders.catalog import load_catalog
from builders.schema import Provenance, Record
from builders.validation import validate_version
from builders.validation.shortcuts import (
    RULES,
    THRESHOLDS,
    ChanceTest,
    audit_records,
    card_rows,
)
from tests.validation_versions import clean_splits, write_version

VOCABULARY = [f"{a}{b}" for a in ("ba", "de", "fo", "gu", "hi", "jo", "ku", "le", "mo", "ni")
              for b in ("rak", "sel", "tun", "vop", "wix", "yal", "zem", "cor", "dis", "fen")]
FRESH = [f"{w}q" for w in VOCABULARY]
TRAIN, TEST = 60, 30


def _phrase(rng: random.Random, pool: list[str], n: int = 6) -> str:
    return " ".join(rng.choice(pool) for _ in range(n))


def _placed(rng: random.Random, preferred: str, others: list[str], at: int | None = None) -> tuple[list[str], int]:
    """The preferred response among the others, at `at` or at a random position."""
    position = rng.randrange(len(others) + 1) if at is None else at
    return [*others[:position], preferred, *others[position:]], position


def _example(rule: str, rng: random.Random) -> tuple[str, list[str], int]:
    """(prompt, responses, preferred) where `rule` picks the preferred response and nothing else does
    on purpose; words are random, so other rules stay near chance."""
    question = f"{_phrase(rng, VOCABULARY)}?"
    good, bad = _phrase(rng, FRESH), _phrase(rng, FRESH)
    if rule in ("longest", "shortest"):
        longer, shorter = f"{good} {_phrase(rng, FRESH, 4)}", good
        chosen = longer if rule == "longest" else shorter
        responses, preferred = _placed(rng, chosen, [shorter if chosen is longer else longer])
        return question, responses, preferred
    if rule.startswith("position_"):
        responses, preferred = _placed(rng, good, [_phrase(rng, FRESH) for _ in range(3)], int(rule[-1]))
        return question, responses, preferred
    if rule in ("most_overlap", "least_overlap"):
        echo = " ".join(question.rstrip("?").split()[:4])
        chosen, other = (echo, bad) if rule == "most_overlap" else (bad, echo)
        responses, preferred = _placed(rng, chosen, [other])
        return question, responses, preferred
    if rule in ("quoted", "not_quoted"):
        said = good if rule == "quoted" else bad
        responses, preferred = _placed(rng, good, [bad])
        return f"{question}\nEarlier you said: {said}", responses, preferred
    if rule in ("first_named", "last_named"):
        stem = _phrase(rng, FRESH, 4)
        first, second = rng.sample(VOCABULARY, 2)
        chosen, other = (first, second) if rule == "first_named" else (second, first)
        responses, preferred = _placed(rng, f"{stem} {chosen}", [f"{stem} {other}"])
        return f"Rewrite the text, putting {first} where {second} was.", responses, preferred
    given, other = rng.sample(range(10, 99), 2)
    chosen, dispreferred = (given, other) if rule == "number_in_prompt" else (other, given)
    responses, preferred = _placed(rng, f"{chosen}.00", [f"{dispreferred}.00"])
    return f"The difference is ${given}.00. How much is the ball?", responses, preferred


def _records(dist: str, make, n: int, seed: int = 0) -> list[Record]:
    rng = random.Random(f"{dist}:{seed}")
    records = []
    for i in range(n):
        prompt, responses, preferred = make(rng)
        records.append(Record(dist, f"{prompt} ({i})", responses, preferred, f"up:{dist}:{i}",
                              Provenance(source="up", row_key=str(i))))
    return records


def _splits(dist: str, make, train: int = TRAIN, test: int = TEST) -> dict[str, list[Record]]:
    records = _records(dist, make, train + test)
    return {"train": records[:train], "test": records[train:]}


def _planted(rule: str) -> dict[str, list[Record]]:
    return _splits(f"planted_{rule}", lambda rng: _example(rule, rng))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    distributions = {f"planted_{rule}": _planted(rule) for rule in RULES}
    distributions["clean"] = clean_splits("clean", train=40, test=20)
    path = write_version(tmp_path_factory.mktemp("planted"), "1.0.0", distributions)
    return validate_version(path, ["shortcut_cues", "declared_cues", "shortcut_coverage", "surface_probe"])


def _flagged(report) -> dict[str, str]:
    return {f.scope: f.detail for f in report.result("shortcut_cues").findings}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_is_found_where_it_is_planted(planted, rule):
    detail = _flagged(planted).get(f"planted_{rule}", "")
    assert f"`{rule}` on train" in detail and f"`{rule}` on test" in detail


def test_a_clean_distribution_passes_every_audit_check(planted):
    for name in ("shortcut_cues", "declared_cues", "shortcut_coverage", "surface_probe"):
        assert "clean" not in {f.scope for f in planted.result(name).findings}, name


def test_findings_name_the_rule_accuracy_chance_count_and_examples(planted):
    finding = next(f for f in planted.result("shortcut_cues").findings if f.scope == "planted_position_2")
    assert "`position_2` on train: 100% (chance 25%, 60/60" in finding.detail
    assert (finding.count, finding.total) == (60, 60) and len(finding.examples) == 5


def test_the_surface_probe_reads_a_label_the_responses_give_away(tmp_path):
    def giveaway(rng: random.Random) -> tuple[str, list[str], int]:
        responses, preferred = _placed(rng, f"{_phrase(rng, FRESH)} certainly", [f"{_phrase(rng, FRESH)} perhaps"])
        return f"{_phrase(rng, VOCABULARY)}?", responses, preferred

    path = write_version(tmp_path, "1.0.0", {"giveaway": _splits("giveaway", giveaway)})
    finding = validate_version(path, ["surface_probe"]).result("surface_probe").findings[0]
    assert finding.scope == "giveaway" and (finding.count, finding.total) == (30, 30)
    assert "100% (chance 50%" in finding.detail


def test_the_probe_trains_on_a_bounded_sample_of_whole_examples(monkeypatch):
    from builders.validation import probe

    monkeypatch.setattr(probe, "THRESHOLDS", dataclasses.replace(THRESHOLDS, probe_max_train=7))
    train = pl.DataFrame({"row": [r for r in range(20) for _ in range(2)], "idx": [0, 1] * 20})
    kept = probe._bounded(train)
    assert kept["row"].n_unique() == 7 and kept.group_by("row").len()["len"].to_list() == [2] * 7
    assert kept.equals(probe._bounded(train)) and probe._bounded(train.head(14)).equals(train.head(14))


def test_declared_cues_are_notes_not_errors(tmp_path):
    assert load_catalog().distribution("alpaca_short").intended_cues == ("shortest",)
    path = write_version(tmp_path, "1.0.0", {"alpaca_short": _splits("alpaca_short", lambda r: _example("shortest", r))})
    report = validate_version(path, ["shortcut_cues", "declared_cues"])
    assert report.result("shortcut_cues").findings == []
    note = report.result("declared_cues").findings[0]
    assert note.scope == "alpaca_short" and "`shortest` on test: 100%" in note.detail


def test_every_declared_cue_names_a_rule():
    declared = {c for info in load_catalog().distributions.values() for c in info.intended_cues}
    assert declared and declared <= set(RULES)


@pytest.mark.parametrize(("correct", "n", "flagged"), [
    (15, 20, False),    # 75% of 20 at chance 50%: p = 0.02, chance explains it
    (18, 20, True),     # 90% of 20: p = 2e-4
    (330, 600, False),  # 55% of 600: significant, but within the margin
    (390, 600, True),   # 65% of 600
])
def test_a_rule_needs_both_the_margin_and_the_binomial_test(correct, n, flagged):
    assert ChanceTest(n, correct, 0.5).beats_chance(THRESHOLDS.cue_margin, THRESHOLDS.cue_p_value) is flagged


def _odd(dist: str, kind: str) -> dict[str, list[Record]]:
    splits = clean_splits(dist, train=12, test=6)
    if kind == "single":
        return {"train": splits["train"][:1]}
    rows = splits["train"] + splits["test"]
    if kind == "identical":
        rows = [Record(r.distribution, r.prompt, [r.responses[0], r.responses[0]], r.preferred, r.group, r.provenance)
                for r in rows]
    elif kind == "empty_prompt":
        rows = [Record(r.distribution, "", r.responses, r.preferred, r.group, r.provenance) for r in rows[:1]] + rows[1:]
    elif kind == "varying_k":
        rows = [Record(r.distribution, r.prompt, [*r.responses, f"third {i}"], r.preferred, r.group, r.provenance)
                if i % 2 else r for i, r in enumerate(rows)]
    return {"train": rows[:12], "test": rows[12:]}


def test_a_version_with_nothing_to_audit_gets_notes_never_a_crash(tmp_path):
    """Every example has a single response: no example is auditable in the whole version."""
    rows = [dataclasses.replace(r, responses=[r.responses[0]], preferred=0) for r in clean_splits("lone")["train"]]
    path = write_version(tmp_path, "1.0.0", {"lone": {"train": rows}})
    report = validate_version(path, ["shortcut_cues", "declared_cues", "surface_probe", "shortcut_coverage"])
    notes = {f.scope: f.detail for f in report.result("shortcut_coverage").findings}
    assert "12 example(s) without 2+ responses and a valid preferred index are not audited" in notes["lone"]
    assert report.result("shortcut_cues").findings == [] and report.result("surface_probe").findings == []
    assert card_rows(audit_records({"lone": {"train": rows}})) == card_rows(audit_records({})) == []


def test_bad_input_gets_a_note_per_distribution_never_a_crash(tmp_path):
    kinds = ("single", "identical", "empty_prompt", "varying_k")
    path = write_version(tmp_path, "1.0.0", {f"odd_{k}": _odd(f"odd_{k}", k) for k in kinds})
    report = validate_version(path, ["shortcut_cues", "surface_probe", "shortcut_coverage"])
    notes = {f.scope: f.detail for f in report.result("shortcut_coverage").findings}
    assert "1 auditable example(s): too few" in notes["odd_single"]
    assert "no surface probe: 1 train / 0 test" in notes["odd_single"]
    assert "18 example(s) have identical responses" in notes["odd_identical"]
    assert "1 example(s) have an empty prompt" in notes["odd_empty_prompt"]
    assert "responses per example vary (2, 3)" in notes["odd_varying_k"]
    assert report.result("shortcut_cues").findings == []


@pytest.mark.parametrize("chance", [0.5, 1 / 3, 0.25, 0.37])
def test_binomial_tail_agrees_with_scipy(chance):
    """The audit's numpy binomial tail gives scipy's one-sided p-values (the build no longer imports scipy.stats)."""
    from scipy.stats import binomtest

    from builders.validation.shortcuts import binomial_tail

    for n in (1, 7, 40, 300):
        for k in range(n + 1):
            expected = binomtest(k, n, chance, alternative="greater").pvalue
            assert binomial_tail(k, n, chance) == pytest.approx(expected, rel=1e-9, abs=1e-300)
