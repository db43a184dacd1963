"""Helpers shared by the category modules that build distributions from an upstream table.

They keep three promises in one place: a record's `group` is `<upstream>:<row key>` (so every distribution
made from the same upstream item lands on the same side of the split), its provenance names the loaded
revision, and a candidate that breaks the record invariants is rejected with a reason instead of being
yielded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jinja2
import pyarrow as pa

from builders.registry import BuildContext
from builders.schema import Provenance, Record
from builders.templating import check_template, environment, render, template_id
from builders.text import first_occurrences, group_key


@dataclass(frozen=True)
class PromptFormat:
    """A prompt template plus the variables its builder fills; `checked()` fails before any row is built."""

    name: str
    fields: tuple[str, ...]

    def checked(self) -> PromptFormat:
        check_template(self.name, self.fields)
        return self

    @cached_property
    def id(self) -> str:
        return template_id(self.name)

    @cached_property
    def _template(self) -> jinja2.Template:
        return environment().get_template(self.name)

    def render(self, **values: Any) -> str:
        """Render with the compiled template kept (a builder renders up to 15,000 rows); a missing variable
        goes through `templating.render` so it raises the usual GeniesError."""
        try:
            return self._template.render(**values)
        except jinja2.UndefinedError:
            return render(self.name, **values)


ALPACA = PromptFormat("prompts/alpaca.j2", ("instruction",))
ALPACA_INPUT = PromptFormat("prompts/alpaca_input.j2", ("instruction", "input"))
CHATBOT = PromptFormat("prompts/chatbot.j2", ("instruction", "input"))  # the original's chatbot frame


def rows(table: pa.Table, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The named columns as Python rows (tables here are small enough; filtering happens before this)."""
    return table.select(list(columns)).to_pylist()


def without_repeats(ctx: BuildContext, items: list[dict[str, Any]], text_field: str) -> list[dict[str, Any]]:
    """The rows whose `text_field` no earlier row has; later repeats are rejected.

    Upstreams repeat a question under several keys (MMLU across subjects, ARC, the quotes file). Keeping
    only the first occurrence, on the whole upstream table and before any other filter, means every
    distribution keeps the same row, so a question has one group key and one side of the split.
    """
    kept_items = []
    for item, first in zip(items, first_occurrences(item[text_field] for item in items)):
        if first:
            kept_items.append(item)
        else:
            ctx.reject(f"repeats the {text_field} of an earlier row", item)
    return kept_items


def provenance(ctx: BuildContext, source: str, row_key: str) -> Provenance:
    """Provenance for a row of `source`, which `ctx.source` must have loaded already."""
    return Provenance(source=source, revision=ctx.sources_used[source].revision, row_key=row_key)


def sourced_record(
    ctx: BuildContext,
    *,
    source: str,
    row_key: str,
    prompt_format: PromptFormat,
    values: dict[str, Any],
    responses: list[str],
    preferred: int,
    instruction: str | None = None,
    input: str | None = None,
    meta: dict[str, Any] | None = None,
    group: str | None = None,
) -> Record | None:
    """Render the prompt and assemble a record, or reject the candidate (returning None) if it is invalid.

    `group` defaults to the upstream row; pass it only when several upstream rows form one item.
    """
    record = Record(
        distribution=ctx.distribution,
        prompt=prompt_format.render(**values),
        responses=responses,
        preferred=preferred,
        group=group or group_key(source, row_key),
        provenance=provenance(ctx, source, row_key),
        template=prompt_format.id,
        instruction=instruction,
        input=input,
        meta=meta or {},
    )
    problems = record.problems()
    if problems:
        ctx.reject("; ".join(problems), {"source": source, "row_key": row_key, "responses": responses})
        return None
    return record


def kept(records: Iterable[Record | None]) -> Iterable[Record]:
    """Drop the candidates `sourced_record` rejected."""
    return (record for record in records if record is not None)


def balanced_by(
    items: list[dict[str, Any]], label: str, ctx: BuildContext, *key: object
) -> list[dict[str, Any]]:
    """Downsample so every value of `items[*][label]` is equally common, choosing with the seeded RNG.

    Used where the preferred answer comes from a small set (Yes/No): an unbalanced set would teach a
    reward model the majority answer instead of the intended skill.
    """
    by_value: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        by_value.setdefault(item[label], []).append(item)
    smallest = min((len(group) for group in by_value.values()), default=0)
    chosen = []
    for value in sorted(by_value, key=str):
        chosen.extend(ctx.rng("balance", label, value, *key).sample(by_value[value], smallest))
    return chosen


def _length_rank(record: Record) -> str:
    lengths = [len(response) for response in record.responses]
    mine = lengths[record.preferred]
    others = [n for i, n in enumerate(lengths) if i != record.preferred]
    if mine > max(others):
        return "longest"
    if mine < min(others):
        return "shortest"
    return "between"


def without_length_cue(records: Iterable[Record | None], ctx: BuildContext) -> list[Record]:
    """Keep as many records whose preferred response is the longest as whose preferred is the shortest.

    For upstreams where the right answer is systematically longer or shorter (TruthfulQA's best answers,
    the deferential answers of the survival evals), a reward model could otherwise score by length alone.
    """
    by_rank: dict[str, list[Record]] = {"longest": [], "shortest": [], "between": []}
    for record in kept(records):
        by_rank[_length_rank(record)].append(record)
    smallest = min(len(by_rank["longest"]), len(by_rank["shortest"]))
    dropped = 0
    for rank in ("longest", "shortest"):
        dropped += len(by_rank[rank]) - smallest
        by_rank[rank] = ctx.rng("length", rank).sample(by_rank[rank], smallest)
    if dropped:
        ctx.note(f"dropped {dropped} examples so the preferred answer is as often the longest as the shortest")
    return by_rank["longest"] + by_rank["shortest"] + by_rank["between"]
