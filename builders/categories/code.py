"""Programming problems from APPS: verified upstream solutions against buggy variants made by mutation.

Every label here comes from running code, never from trusting it. A problem is used only when one of its
upstream solutions passes all of its tests (up to `MAX_TESTS`) in the sandbox; buggy variants are
mutants of that solution that fail at least one test (`builders.mutation`). Because mutants are text
edits of the very solution they compete with, a buggy response looks exactly like the correct one except
for the bug: no comment, reformatting or length difference gives it away.

- `code_is_correct` / `sycophancy_feedback`: "is this code correct?" asked plainly / about a proud
  classmate's code; the code is the verified solution (preferred answer "yes") or a failing mutant ("no"),
  alternating so yes and no are exactly balanced.
- `code` (interview), `code_easy` (introductory), `code_hard` (competition): the verified solution
  preferred over three mutants with one subtle mutation each and pairwise different behaviour.
- `code_low_quality` (interview): the verified solution preferred over three egregiously broken mutants
  (three stacked mutations, failing at least half of the tests).

Problems are visited in a seeded order independent of the distribution, so distributions over the same
problems reuse each other's sandbox runs (and a rebuild reuses the on-disk verdict cache). A record's group
is `apps:<split>/<problem_id>`: APPS numbers train and test problems from 0 separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from builders.categories._sourced import (
    ALPACA,
    ALPACA_INPUT,
    PromptFormat,
    kept,
    rows,
    sourced_record,
)
from builders.mutation import (
    SUBTLE_KINDS,
    BuggyVariant,
    buggy_variants,
    normalize_newlines,
)
from builders.registry import BuildContext, distribution
from builders.sandbox import Sandbox, TestSuite
from builders.schema import Record
from builders.splits import seeded_rng, unit_hash
from builders.text import text_key

SOURCE = "apps"
APPS_COLUMNS = ("row_key", "split", "problem_id", "question", "solutions", "input_output", "difficulty", "url",
                "starter_code")
MAX_TESTS = 20
SOLUTIONS_TRIED = 3
OVERSHOOT = 1.25
CHUNK = 8

PROBLEM = PromptFormat("code/problem.j2", ("question", "fn_name", "starter_code"))
IS_CORRECT = PromptFormat("code/is_correct.j2", ("problem", "code"))
CLASSMATE = PromptFormat("code/classmate.j2", ("problem", "code"))
WRITE_PROGRAM = "Write a Python program that solves the following programming problem."
YES, NO = "Yes, this code is correct.", "No, this code is incorrect."
BUILD_NOTE = "built from APPS problems with mutation-made buggy solutions; LLM-written problems are not included"


@dataclass(frozen=True)
class VariantSpec:
    """How buggy the competing variants must be and how many a problem needs."""

    count: int
    mutations_per_variant: int = 1
    min_failed_fraction: float = 0.0
    kinds: frozenset[str] = field(default=SUBTLE_KINDS)
    candidates: int = 16


SUBTLE = VariantSpec(count=3)
EGREGIOUS = VariantSpec(count=3, mutations_per_variant=3, min_failed_fraction=0.5, candidates=24)


@dataclass(frozen=True)
class Problem:
    """An APPS problem with a solution verified by running it, and its buggy variants."""

    row: dict[str, Any]
    suite: TestSuite
    statement: str
    solution: str
    variants: tuple[BuggyVariant, ...]

    @property
    def key(self) -> str:
        return f"{self.row['split']}/{self.row['row_key']}"

    def meta(self) -> dict[str, Any]:
        return {"difficulty": self.row["difficulty"], "url": self.row["url"], "problem_id": self.row["problem_id"],
                "upstream_split": self.row["split"], "tests_used": len(self.suite), "test_mode": self.suite.mode}


@lru_cache(maxsize=4)
def shared_sandbox(cache_dir: Path | None) -> Sandbox:
    """One sandbox per cache directory, so every distribution of a build shares its verdicts in memory."""
    return Sandbox(cache_dir=cache_dir / "sandbox" if cache_dir else None)


def problems(ctx: BuildContext, difficulties: tuple[str, ...], spec: VariantSpec,
             usable: Callable[[Problem], str | None]) -> Iterator[Problem]:
    """Verified problems of the given difficulties, in seeded order, until enough for both splits.

    `usable` returns why a prepared problem cannot serve this distribution (None when it can). Problems
    are prepared `CHUNK` at a time on the sandbox's workers; the order of results never depends on timing.
    """
    PROBLEM.checked()
    table = ctx.source(SOURCE)
    order = seeded_order(ctx, rows(table, ("split", "row_key", "difficulty", "question")), difficulties)
    sandbox = shared_sandbox(Path(ctx.cache_dir) if ctx.cache_dir else None)
    wanted, produced = math.ceil(ctx.wanted * OVERSHOOT), 0
    with ThreadPoolExecutor(sandbox.workers) as pool:
        for start in range(0, len(order), CHUNK):
            chunk = table.take(order[start:start + CHUNK]).select(list(APPS_COLUMNS)).to_pylist()
            for row, (problem, reason) in zip(chunk, pool.map(lambda r: prepare(ctx, r, spec, sandbox), chunk)):
                reason = reason or usable(problem)
                if reason:
                    ctx.reject(reason, {"problem": f"{row['split']}/{row['row_key']}", "url": row["url"]})
                    continue
                yield problem
                produced += 1
                if produced >= wanted:
                    return


def seeded_order(ctx: BuildContext, keys: list[dict[str, Any]], difficulties: tuple[str, ...]) -> list[int]:
    """Row indices of the wanted difficulties in a seeded order that does not depend on the distribution.

    Only these small columns become Python objects; full rows (APPS tests can be megabytes) are taken
    chunk by chunk, and only as many as the build needs. A question that APPS repeats under another id
    (some problems sit in both of its splits) is used once, so it cannot straddle our train/test split.
    """
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(text_key(key["question"]), i)
    wanted = [i for i in first.values() if keys[i]["difficulty"] in difficulties]
    return sorted(wanted, key=lambda i: unit_hash("apps-order", ctx.seed, keys[i]["split"], keys[i]["row_key"]))


def prepare(ctx: BuildContext, row: dict[str, Any], spec: VariantSpec,
            sandbox: Sandbox) -> tuple[Problem | None, str | None]:
    """Verify a solution of the problem by running it, then mutate it; or say why the problem is unusable."""
    try:
        suite = TestSuite.from_apps(row["input_output"], MAX_TESTS)
    except ValueError as exc:
        return None, f"no usable tests: {exc}"
    key = f"{row['split']}/{row['row_key']}"
    solution = verified_solution(row["solutions"], suite, sandbox, seeded_rng("apps-solution", ctx.seed, key))
    if solution is None:
        return None, f"none of {SOLUTIONS_TRIED} upstream solutions tried passes the tests"
    variants = buggy_variants(
        solution, suite, spec.count, rng=seeded_rng("apps-mutants", ctx.seed, key), sandbox=sandbox,
        kinds=spec.kinds, mutations_per_variant=spec.mutations_per_variant,
        min_failed_fraction=spec.min_failed_fraction, candidates=spec.candidates,
    )
    statement = PROBLEM.render(question=row["question"], fn_name=suite.fn_name,
                               starter_code=row["starter_code"] or "").strip()
    return Problem(row, suite, statement, solution, tuple(variants)), None


def verified_solution(solutions: list[str], suite: TestSuite, sandbox: Sandbox, rng) -> str | None:
    """The first upstream solution, in seeded order, that passes every test; None if none tried does."""
    candidates = [normalize_newlines(s).strip("\n") + "\n" for s in solutions if s.strip()]
    for solution in rng.sample(candidates, min(SOLUTIONS_TRIED, len(candidates))):
        if sandbox.run([solution], suite)[0].status == "correct":
            return solution
    return None


def needs_variants(count: int) -> Callable[[Problem], str | None]:
    def check(problem: Problem) -> str | None:
        found = len(problem.variants)
        return None if found >= count else f"only {found} of {count} behaviourally different failing mutants"

    return check


def solution_vs_mutants(ctx: BuildContext, difficulties: tuple[str, ...], spec: VariantSpec) -> Iterator[Record]:
    """The verified solution preferred over `spec.count` failing mutants of it."""
    ALPACA_INPUT.checked()
    ctx.note(BUILD_NOTE)
    for problem in problems(ctx, difficulties, spec, needs_variants(spec.count)):
        variants = problem.variants[: spec.count]
        yield from kept([sourced_record(
            ctx, source=SOURCE, row_key=problem.key, prompt_format=ALPACA_INPUT,
            values={"instruction": WRITE_PROGRAM, "input": problem.statement},
            responses=[problem.solution, *(v.code for v in variants)], preferred=0,
            instruction=WRITE_PROGRAM, input=problem.statement,
            meta={**problem.meta(), "mutations": [list(v.mutations) for v in variants],
                  "failed_tests": [v.verdict.failed for v in variants]},
        )])


def verdict_questions(ctx: BuildContext, framing: PromptFormat) -> Iterator[Record]:
    """"Is this code correct?" with the verified solution (yes) or a failing mutant (no), alternating."""
    ALPACA.checked()
    framing.checked()
    for index, problem in enumerate(problems(ctx, ("introductory", "interview"), SUBTLE, needs_variants(1))):
        correct = index % 2 == 0
        variant = None if correct else problem.variants[0]
        code = problem.solution if correct else variant.code
        instruction = framing.render(problem=problem.statement, code=code).strip()
        yield from kept([sourced_record(
            ctx, source=SOURCE, row_key=problem.key, prompt_format=ALPACA, values={"instruction": instruction},
            responses=[YES, NO], preferred=0 if correct else 1, instruction=instruction,
            meta={**problem.meta(), "code_is_correct": correct, "code_origin": "upstream" if correct else "mutant",
                  "mutations": list(variant.mutations) if variant else [],
                  "instruction_template": framing.id},
        )])


@distribution("code_is_correct", templates=[ALPACA.name, IS_CORRECT.name, PROBLEM.name])
def build_code_is_correct(ctx: BuildContext) -> Iterator[Record]:
    return verdict_questions(ctx, IS_CORRECT)


@distribution("sycophancy_feedback", templates=[ALPACA.name, CLASSMATE.name, PROBLEM.name])
def build_sycophancy_feedback(ctx: BuildContext) -> Iterator[Record]:
    return verdict_questions(ctx, CLASSMATE)


@distribution("code", templates=[ALPACA_INPUT.name, PROBLEM.name])
def build_code(ctx: BuildContext) -> Iterator[Record]:
    return solution_vs_mutants(ctx, ("interview",), SUBTLE)


@distribution("code_easy", templates=[ALPACA_INPUT.name, PROBLEM.name])
def build_code_easy(ctx: BuildContext) -> Iterator[Record]:
    return solution_vs_mutants(ctx, ("introductory",), SUBTLE)


@distribution("code_hard", templates=[ALPACA_INPUT.name, PROBLEM.name])
def build_code_hard(ctx: BuildContext) -> Iterator[Record]:
    return solution_vs_mutants(ctx, ("competition",), SUBTLE)


@distribution("code_low_quality", templates=[ALPACA_INPUT.name, PROBLEM.name])
def build_code_low_quality(ctx: BuildContext) -> Iterator[Record]:
    return solution_vs_mutants(ctx, ("interview",), EGREGIOUS)
