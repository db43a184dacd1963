"""Helpers for family members derived from a base distribution (perturbation, lingual).

A member is built from its base's *exported* rows: the base goes through the same pipeline (builder,
checks, dedup, group split, position balance) with the same seed and sizes, and each of its rows becomes
one member row with the same `group`. The member's own split then puts every row on the side its base
row is on, so no item straddles train/test across the shift base -> member.

The prompt side of a record is edited where the words of the task are: its `instruction` and `input`
spans inside the rendered prompt when they are there (the prompt format's boilerplate stays intact and
`instruction` stays a substring of `prompt`), else the whole prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from builders.errors import GeniesError
from builders.registry import BuildContext
from builders.schema import Record

PLACEMENTS = {"prompt": (True, False), "response": (False, True), "both": (True, True)}
PROMPT_FIELDS = ("instruction", "input")


@lru_cache(maxsize=8)
def _built_base(base: str, seed: int, train: int, test: int, mirror: str, cache_dir: str, offline: bool, llm: Any):
    from builders.pipeline import BuildOptions, build_distribution

    options = BuildOptions(seed=seed, train_size=train, test_size=test, mirror=mirror or None,
                           cache_dir=Path(cache_dir) if cache_dir else None, fetch=not offline)
    return build_distribution(base, options, llm)


def base_rows(ctx: BuildContext, base: str) -> list[Record]:
    """The base distribution's rows (train then test), built once per process for the same options."""
    from builders.pipeline import BUILT, NEEDS_SOURCE

    result = _built_base(base, ctx.seed, ctx.train_size, ctx.test_size, str(ctx.mirror or ""),
                         str(ctx.cache_dir or ""), ctx.offline, ctx.llm)
    if result.skip_kind == NEEDS_SOURCE:
        ctx.source(result.needs)  # raises SourceUnavailable: the member needs what its base needs
    if result.status != BUILT:
        raise GeniesError(f"base distribution {base} {result.label}", f"build {base} on its own to see why")
    ctx.sources_used.update(result.context.sources_used if result.context else {})
    return [row for split in ("train", "test") for row in result.splits.get(split, [])]


def prompt_spans(record: Record) -> list[str]:
    """The parts of the prompt a shift edits: instruction and input where the prompt holds them."""
    spans = [getattr(record, f) for f in PROMPT_FIELDS if getattr(record, f)]
    if spans and all(span in record.prompt for span in spans):
        return spans
    return [record.prompt]


def edit_prompt(record: Record, edit: Callable[[str, str], str]) -> dict[str, Any]:
    """The prompt, instruction and input of `record` with `edit(field, text)` applied to the spans
    `prompt_spans` picks (`field` is "instruction", "input" or "prompt")."""
    spans = prompt_spans(record)
    if spans == [record.prompt]:
        return {"prompt": edit("prompt", record.prompt)}
    prompt, fields = record.prompt, {}
    for name in PROMPT_FIELDS:
        text = getattr(record, name)
        if text:
            fields[name] = edit(name, text)
            prompt = prompt.replace(text, fields[name], 1)
    return {"prompt": prompt, **fields}


def derived(record: Record, distribution: str, meta: dict[str, Any], **changes: Any) -> Record:
    """A member row: the base row with `changes`, the member's name and the base's identity in `meta`."""
    meta = {**record.meta, "base": record.distribution, "base_id": record.id, **meta}
    return replace(record, distribution=distribution, meta=meta, **changes)
