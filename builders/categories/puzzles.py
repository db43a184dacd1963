"""Procedural distributions: ordering puzzles, Raven-style matrices and bat-and-ball CRT items.

Each item comes from its own seeded RNG (`ctx.rng(index)`), so item i is the same whatever the build
size, and each generator has already proved the item has exactly one correct answer. The puzzle text
comes from a template under `templates/puzzles/` and is wrapped in the Alpaca prompt format.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator

from builders.generators.crt import dollars, generate_crt
from builders.generators.ranking import generate_ranking
from builders.generators.raven import CONFIGURATIONS, generate_numeric, generate_raven
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


def _ranking(ctx: BuildContext, n_objects: int) -> Iterable[Record]:
    def make(index: int) -> Item:
        puzzle = generate_ranking(ctx.rng(index), n_objects)
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
    return _ranking(ctx, 4)


@distribution("ranking_logic_easy", templates=[PROMPT, "puzzles/ranking.j2"])
def build_ranking_logic_easy(ctx: BuildContext) -> Iterable[Record]:
    return _ranking(ctx, 3)


@distribution("ranking_logic_hard", templates=[PROMPT, "puzzles/ranking.j2"])
def build_ranking_logic_hard(ctx: BuildContext) -> Iterable[Record]:
    return _ranking(ctx, 7)


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
        meta = {"total_cents": item.total_cents, "difference_cents": item.difference_cents}
        return instruction, [dollars(item.correct_cents), dollars(item.intuitive_cents)], meta

    return _records(ctx, "puzzles/crt.j2", make)
