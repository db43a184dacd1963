"""Row providers: the upstream rows of one kind, read once and handed out N at a time.

A provider (`RowProvider`) says which rows of an upstream source a builder may use: MMLU questions
(optionally one subject), MATH problems (optionally some levels), single-author quotes, or the columns of
any table (Alpaca). It filters once, on the whole table, rejecting through the build context with a
reason, so every distribution made from the same upstream keeps the same rows with the same groups.
A `RowCursor` hands a provider's rows out in a seeded order, N at a time: the recipes take as many as a
round needs, the deterministic builders take them all.

Providers sit below both `categories/` and `recipes/`, which is why neither reaches into the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from builders.registry import BuildContext
from builders.text import first_occurrences, group_key, text_digest, text_key

Row = dict[str, Any]

# Options that only make sense next to the other options ("all of the above", "A and B"): shown alone as a
# response they are meaningless, so such questions are left out. RE2 syntax (pyarrow compute).
REFERS_TO_OTHER_OPTIONS = (
    r"(?i)\b(all|none|both|neither) of (the )?(above|these|those|following|options|choices)\b"
    r"|\b[a-d]\)? (and|or|nor|&) \(?[a-d]\b"
    r"|^\(?[a-d][.)]?$"
)
MMLU_COLUMNS = ("row_key", "split", "subject", "question", "choices", "answer")
PASSAGE_HEADER = "This question refers to the following information."
MATH_COLUMNS = ("row_key", "problem", "solution", "level", "subject")


class RowProvider(Protocol):
    """The rows of one kind from upstream `source`, filtered, in upstream order."""

    source: str

    def rows(self, ctx: BuildContext) -> list[Row]: ...


@dataclass
class RowCursor:
    """A provider's rows, loaded on first use and shuffled by the build's seeded RNG, handed out in turn."""

    provider: RowProvider
    ctx: BuildContext
    _rows: list[Row] | None = None
    _next: int = 0

    @property
    def revision(self) -> str:
        """The loaded revision of the provider's source (after the first `take`)."""
        return self.ctx.sources_used[self.provider.source].revision

    def _loaded(self) -> list[Row]:
        if self._rows is None:
            self._rows = self.provider.rows(self.ctx)
            self.ctx.rng("upstream").shuffle(self._rows)
        return self._rows

    @property
    def exhausted(self) -> bool:
        """Every row was handed out."""
        return self._rows is not None and self._next >= len(self._rows)

    @property
    def size(self) -> int:
        """How many rows the provider has (0 before the first `take`)."""
        return len(self._rows or [])

    def take(self, count: int) -> list[Row]:
        """The next `count` rows (fewer when the provider runs out)."""
        rows = self._loaded()[self._next:self._next + count]
        self._next += len(rows)
        return rows


@dataclass(frozen=True)
class TableRows:
    """The named columns of every row of `source` (e.g. Alpaca's instruction, input and output)."""

    source: str
    columns: Sequence[str]

    def rows(self, ctx: BuildContext) -> list[Row]:
        return ctx.source(self.source).select(list(dict.fromkeys(self.columns))).to_pylist()


def _option_refers_to_others(choices: pa.ChunkedArray) -> pa.Array:
    """Per row: does any of its options match REFERS_TO_OTHER_OPTIONS (one vectorized pass, not 60k)."""
    choices = choices.combine_chunks()
    matches = pc.match_substring_regex(pc.list_flatten(choices), REFERS_TO_OTHER_OPTIONS)
    per_row = np.zeros(len(choices), dtype=bool)
    np.logical_or.at(per_row, pc.list_parent_indices(choices).to_numpy(), matches.to_numpy(zero_copy_only=False))
    return pa.array(per_row)


def mmlu_group(row: Row) -> str:
    """The split group of an MMLU row: `mmlu:passage:<hash>` when it asks about a shared passage, else its row.

    Questions about one passage ("This question refers to the following information.", the history
    subjects) would otherwise straddle train and test.
    """
    question = row["question"]
    if not question.startswith(PASSAGE_HEADER):
        return group_key("mmlu", row["row_key"])
    passage = question.rsplit("\n", 1)[0]
    return "mmlu:passage:" + text_digest(passage)


@dataclass(frozen=True)
class MmluQuestions:
    """MMLU rows (optionally one subject), each question once (the first row wins), whose options can each
    stand alone as a response; each row carries its split `group` (see `mmlu_group`)."""

    subject: str | None = None
    source: str = "mmlu"

    def rows(self, ctx: BuildContext) -> list[Row]:
        table = ctx.source(self.source).select(list(MMLU_COLUMNS))
        table = table.append_column("first", pa.array(first_occurrences(table["question"].to_pylist())))
        if self.subject is not None:
            table = table.filter(pc.equal(table["subject"], self.subject))
        for row in table.filter(pc.invert(table["first"])).drop_columns(["first"]).to_pylist():
            ctx.reject("repeats the question of an earlier row", row)
        table = table.filter(table["first"]).drop_columns(["first"])
        refers = _option_refers_to_others(table["choices"])
        for row in table.filter(refers).to_pylist():
            ctx.reject("an option refers to the other options", row)
        return [{**row, "group": mmlu_group(row)} for row in table.filter(pc.invert(refers)).to_pylist()]


@dataclass(frozen=True)
class MathProblems:
    """MATH problems with their reference solutions, optionally only some difficulty levels."""

    levels: Sequence[str] | None = None
    source: str = "math"

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = ctx.source(self.source).select(list(MATH_COLUMNS)).to_pylist()
        return [r for r in rows if self.levels is None or r["level"] in self.levels]


@dataclass(frozen=True)
class AttributedQuotes:
    """Each distinct quote once (the upstream repeats many), keyed by its first row, if it has exactly one
    known author: a quote listed under two authors has no single right answer."""

    source: str = "quotes"

    def rows(self, ctx: BuildContext) -> list[Row]:
        first_rows: dict[str, Row] = {}
        authors_of: dict[str, set[str]] = defaultdict(set)
        for row in ctx.source(self.source).select(["row_key", "quote", "author"]).to_pylist():
            quote, author = row["quote"].strip(), (row["author"] or "").strip()
            if quote and author:
                first_rows.setdefault(text_key(quote), {"row_key": row["row_key"], "quote": quote, "author": author})
                authors_of[text_key(quote)].add(author)
        for key in [key for key, authors in authors_of.items() if len(authors) > 1]:
            ctx.reject("quote attributed to several authors upstream",
                       first_rows.pop(key) | {"authors": sorted(authors_of[key])})
        return list(first_rows.values())
