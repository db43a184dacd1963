"""Helpers for family members derived from a base distribution (perturbation, lingual).

A member is built from its base's *exported* rows, which the executor hands it in `ctx.base_rows`: the
base went through the same pipeline (builder, checks, dedup, group split, position balance) with the same
seed and sizes, and each of its rows becomes one member row with the same `group`. The member's own split
then puts every row on the side its base row is on, so no item straddles train/test across the shift
base -> member.

The prompt side of a record is edited where the words of the task are: its `instruction` and `input`
spans inside the rendered prompt when they are there (the prompt format's boilerplate stays intact and
`instruction` stays a substring of `prompt`), else the whole prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from builders.schema import PROMPT_FIELDS, Record

PLACEMENTS = {"prompt": (True, False), "response": (False, True), "both": (True, True)}


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
