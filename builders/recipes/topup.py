"""Generated rows that fill what a deterministic part of a distribution cannot (e.g. us_history beyond MMLU)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from builders.recipes.recipe import get_spec, recipe_records, spec_templates
from builders.registry import BuildContext
from builders.schema import Record


def top_up_templates(spec_name: str) -> list[str]:
    """The templates the top-up spec reads, for the host builder's `templates=` (checked before building)."""
    return spec_templates(get_spec(spec_name))


def top_up(ctx: BuildContext, spec_name: str, have: int) -> Iterable[Record]:
    """Records of the `register = false` spec `spec_name` for the `ctx.wanted - have` rows still missing.

    The recipe runs on a copy of `ctx` sized to the gap (sharing its rejects, notes and sources), so the
    deterministic rows are used first and the LLM writes only what they leave; without an LLM the gap is
    noted, never filled with anything else.
    """
    missing = ctx.wanted - have
    if missing <= 0:
        return []
    if ctx.llm is None:
        ctx.note(f"{have} upstream rows only: the {missing} generated rows ({spec_name}) need the LLM engine")
        return []
    ctx.note(f"{have} upstream rows, topped up with generated rows ({spec_name}) for the {missing} missing")
    return recipe_records(replace(ctx, train_size=missing, test_size=0), get_spec(spec_name))
