"""Procedural distributions: ordering puzzles, Raven-style matrices and cognitive-reflection (CRT) items.

Each item comes from its own seeded RNG (`ctx.rng(index)`), so item i is the same whatever the build
size, and each generator has already proved the item has exactly one correct answer. The puzzle text
comes from a template under `templates/puzzles/` and is wrapped in the Alpaca prompt format.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from builders.generators.crt import (
    amount,
    dollars,
    generate_crt,
    generate_doubling,
    generate_work_rate,
)
from builders.generators.ranking import generate_ranking
from builders.generators.raven import CONFIGURATIONS, generate_numeric, generate_raven
from builders.generators.syllogism import all_conditionals
from builders.registry import BuildContext, distribution
from builders.schema import Provenance, Record
from builders.templating import render, template_id

PROMPT = "prompts/alpaca.j2"
OVERSHOOT = 1.1  # extra items so both sides of the group split still fill despite the split's randomness

Item = tuple[str, list[str], dict]  # instruction, responses (preferred first), meta


def _items_wanted(ctx: BuildContext) -> int:
    return math.ceil(ctx.wanted * OVERSHOOT) + 20


def _records(ctx: BuildContext, puzzle_template: str, make: Callable[[int], Item]) -> Iterator[Record]:
    """Wrap generated items as records: Alpaca prompt, preferred response first, content-keyed group."""
    prompt_id, puzzle_id = template_id(PROMPT), template_id(puzzle_template)
    for index in range(_items_wanted(ctx)):
        instruction, responses, meta = make(index)
        key = hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:16]
        yield Record(
            distribution=ctx.distribution,
            prompt=render(PROMPT, instruction=instruction),
            responses=responses,
            preferred=0,
            group=f"{ctx.distribution}:{key}",
            provenance=Provenance(source="procedural", row_key=str(index)),
            template=prompt_id,
            instruction=instruction,
            meta={**meta, "instruction_template": puzzle_id, "seed": ctx.seed, "index": index},
        )


@dataclass(frozen=True)
class RankingShape:
    """The original's ranges for one ranking distribution: objects, clues and responses per item."""

    objects: tuple[int, int]
    clues: tuple[int, int]
    responses: int


def _ranking(ctx: BuildContext, shape: RankingShape) -> Iterable[Record]:
    def make(index: int) -> Item:
        rng = ctx.rng(index)
        n_objects = rng.randint(*shape.objects)
        puzzle = generate_ranking(rng, n_objects, shape.responses, shape.clues)
        instruction = render(
            "puzzles/ranking.j2",
            intro=puzzle.theme.intro,
            objects=puzzle.objects,
            clues=[puzzle.clue_text(c) for c in puzzle.clues],
            question=puzzle.question,
        )
        responses = [puzzle.objects[i] for i in (puzzle.answer, *puzzle.distractors)]
        return instruction, responses, {"objects": n_objects, "asked_rank": puzzle.asked_rank, "clues": len(puzzle.clues)}

    return _records(ctx, "puzzles/ranking.j2", make)


@distribution("ranking_logic", templates=[PROMPT, "puzzles/ranking.j2"])
def build_ranking_logic(ctx: BuildContext) -> Iterable[Record]:
    return _ranking(ctx, RankingShape(objects=(4, 7), clues=(3, 8), responses=4))


@distribution("ranking_logic_easy", templates=[PROMPT, "puzzles/ranking.j2"])
def build_ranking_logic_easy(ctx: BuildContext) -> Iterable[Record]:
    return _ranking(ctx, RankingShape(objects=(3, 3), clues=(2, 4), responses=3))


@distribution("ranking_logic_hard", templates=[PROMPT, "puzzles/ranking.j2"])
def build_ranking_logic_hard(ctx: BuildContext) -> Iterable[Record]:
    return _ranking(ctx, RankingShape(objects=(5, 7), clues=(4, 8), responses=4))


@distribution("raven_matrices", templates=[PROMPT, "puzzles/raven.j2"])
def build_raven_matrices(ctx: BuildContext) -> Iterable[Record]:
    configurations = sorted(CONFIGURATIONS)

    def make(index: int) -> Item:
        configuration = configurations[index % len(configurations)]
        puzzle = generate_raven(ctx.rng(index), configuration)
        instruction = render(
            "puzzles/raven.j2", parts=puzzle.names, rows=puzzle.rows_text()
        )
        responses = [puzzle.candidate_text(p) for p in (puzzle.answer, *puzzle.distractors)]
        meta = {"configuration": configuration, "rules": list(puzzle.rules), "distractors_break": [list(b) for b in puzzle.broken]}
        return instruction, responses, meta

    return _records(ctx, "puzzles/raven.j2", make)


@distribution("raven_easy", templates=[PROMPT, "puzzles/raven_easy.j2"])
def build_raven_easy(ctx: BuildContext) -> Iterable[Record]:
    def make(index: int) -> Item:
        puzzle = generate_numeric(ctx.rng(index))
        instruction = render("puzzles/raven_easy.j2", rows=puzzle.rows_text())
        return instruction, [str(v) for v in (puzzle.answer, *puzzle.distractors)], {"rule": puzzle.rule}

    return _records(ctx, "puzzles/raven_easy.j2", make)


@distribution("crt_1", templates=[PROMPT, "puzzles/crt.j2"])
def build_crt_1(ctx: BuildContext) -> Iterable[Record]:
    def make(index: int) -> Item:
        item = generate_crt(ctx.rng(index))
        instruction = render("puzzles/crt.j2", question=item.question)
        meta = {
            "total_cents": item.total_cents,
            "difference_cents": item.difference_cents,
            "asks_expensive": item.asks_expensive,
            "intuitive_error": item.error,
        }
        return instruction, [dollars(item.correct_cents), dollars(item.intuitive_cents)], meta

    return _records(ctx, "puzzles/crt.j2", make)


@distribution("crt_2", templates=[PROMPT, "puzzles/crt.j2"])
def build_crt_2(ctx: BuildContext) -> Iterable[Record]:
    """Work-rate items ("5 machines, 5 widgets, 5 minutes"), answers from the closed form."""
    def make(index: int) -> Item:
        item = generate_work_rate(ctx.rng(index))
        instruction = render("puzzles/crt.j2", question=item.question)
        responses = [amount(item.correct, item.unit), amount(item.intuitive, item.unit)]
        return instruction, responses, {"crt_kind": "work_rate", "known": item.known, "asked": item.asked}

    return _records(ctx, "puzzles/crt.j2", make)


@distribution("crt_3", templates=[PROMPT, "puzzles/crt.j2"])
def build_crt_3(ctx: BuildContext) -> Iterable[Record]:
    """Doubling items ("the lily pads cover the lake in 48 days"), answers from the closed form."""
    def make(index: int) -> Item:
        item = generate_doubling(ctx.rng(index))
        instruction = render("puzzles/crt.j2", question=item.question)
        responses = [amount(item.correct, item.unit), amount(int(item.intuitive), item.unit)]
        meta = {"crt_kind": "doubling", "question_kind": item.kind, "halvings": item.halvings,
                "period": item.period, "doublings": item.doublings}
        return instruction, responses, meta

    return _records(ctx, "puzzles/crt.j2", make)


@distribution("modus_tollens", templates=[PROMPT])
def build_modus_tollens(ctx: BuildContext) -> Iterable[Record]:
    """Is the conclusion of a conditional argument valid? Valid and fallacious forms equally often, so the
    preferred answer is "Yes" half the time (it was "Yes" in every example of the original)."""
    items = all_conditionals(ctx.rng("order"))

    def make(index: int) -> Item:
        item = items[index % len(items)]
        responses = ["Yes", "No"] if item.valid else ["No", "Yes"]
        return item.question, responses, {"form": item.form, "valid": item.valid}

    return _records(ctx, PROMPT, make)
