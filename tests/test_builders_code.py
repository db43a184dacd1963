"""APPS-based code distributions on fixture problems in APPS's exact schema (train.jsonl / test.jsonl).

Labels are re-checked here independently: the code a record shows is run again in a fresh sandbox and
must agree with the preferred answer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builders.categories.code import NO, YES
from builders.discovery import resolve
from builders.registry import BuildContext
from builders.sandbox import Sandbox, TestSuite

FIXTURE = Path(__file__).parent / "fixtures" / "builders_code"
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def upstream_problems() -> dict[str, dict]:
    problems = {}
    for split in ("train", "test"):
        for line in (FIXTURE / "apps" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            problems[f"apps:{split}/{row['problem_id']}"] = row
    return problems


UPSTREAM = upstream_problems()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("code-cache")


def build(name: str, cache_dir: Path, seed: int = 0) -> tuple[list, BuildContext]:
    ctx = BuildContext(name, seed=seed, mirror=FIXTURE, cache_dir=cache_dir)
    return list(resolve(name).fn(ctx)), ctx


def suite_of(record) -> TestSuite:
    return TestSuite.from_apps(UPSTREAM[record.group]["input_output"], 20)


def shown_code(record) -> str:
    return CODE_BLOCK.findall(record.prompt)[-1]


@pytest.mark.parametrize("name", ["code_is_correct", "sycophancy_feedback"])
def test_verdict_questions_are_balanced_and_agree_with_running_the_code(name, cache_dir):
    records, ctx = build(name, cache_dir)
    assert len(records) == 4
    verdicts = [record.responses[record.preferred] for record in records]
    assert verdicts.count(YES) == verdicts.count(NO) == 2
    fresh = Sandbox()
    for record in records:
        status = fresh.run([shown_code(record)], suite_of(record))[0].status
        assert status == ("correct" if record.responses[record.preferred] == YES else "incorrect")
        assert UPSTREAM[record.group]["question"].strip()[:80] in record.prompt
        assert record.meta["code_origin"] == ("upstream" if status == "correct" else "mutant")
    if name == "sycophancy_feedback":
        assert all("My classmate wrote the code" in record.prompt for record in records)


def test_unusable_problems_are_rejected_with_their_reason(cache_dir):
    _, ctx = build("code_is_correct", cache_dir)
    reasons = {reject.raw["problem"]: reject.reason for reject in ctx.rejects}
    assert reasons["train/2003"].startswith("no usable tests")
    assert "passes the tests" in reasons["train/2004"]


def test_a_problem_apps_repeats_under_another_id_is_used_once(cache_dir):
    records, ctx = build("code_easy", cache_dir)
    considered = {r.group for r in records} | {f"apps:{reject.raw['problem']}" for reject in ctx.rejects}
    assert UPSTREAM["apps:train/2001"]["question"] == UPSTREAM["apps:test/4001"]["question"]
    assert len(considered & {"apps:train/2001", "apps:test/4001"}) == 1


@pytest.mark.parametrize(("name", "difficulty"), [("code", "interview"), ("code_easy", "introductory"),
                                                  ("code_hard", "competition")])
def test_verified_solution_beats_three_subtle_mutants(name, difficulty, cache_dir):
    records, ctx = build(name, cache_dir)
    assert records and ctx.notes
    fresh = Sandbox()
    for record in records:
        assert UPSTREAM[record.group]["difficulty"] == difficulty
        assert record.preferred == 0 and len(record.responses) == 4
        verdicts = fresh.run(record.responses, suite_of(record))
        assert [v.status for v in verdicts] == ["correct", "incorrect", "incorrect", "incorrect"]
        assert len({v.behaviour for v in verdicts[1:]}) == 3
        assert record.responses[0] in [s.strip("\n") + "\n" for s in json.loads(UPSTREAM[record.group]["solutions"])]
        assert all(len(m) == 1 for m in record.meta["mutations"])
        solution = record.responses[0].splitlines()
        for mutant in (r.splitlines() for r in record.responses[1:]):
            assert len(mutant) == len(solution)
            changed = [(a, b) for a, b in zip(solution, mutant) if a != b]
            assert len(changed) == 1 and abs(len(changed[0][0]) - len(changed[0][1])) <= 4


def test_low_quality_mutants_are_egregiously_broken(cache_dir):
    records, _ = build("code_low_quality", cache_dir)
    assert records
    for record in records:
        suite = suite_of(record)
        verdicts = Sandbox().run(record.responses, suite, stop_after=None)
        assert verdicts[0].status == "correct"
        assert all(v.failed >= len(suite) / 2 for v in verdicts[1:])
        assert all(len(m) == 3 for m in record.meta["mutations"])


def test_builds_are_deterministic_and_seeded(cache_dir, tmp_path):
    first, _ = build("code", cache_dir)
    again, _ = build("code", tmp_path)
    assert [r.id for r in first] == [r.id for r in again]
    assert {r.group for r in first} == {"apps:train/2002", "apps:test/2500"}
