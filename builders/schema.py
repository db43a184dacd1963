"""The canonical record schema (DESIGN §3.1), defined once: a pyarrow schema, a typed record, the pairwise view.

Every stage of the pipeline produces or consumes `Record`s or tables with `RECORD_SCHEMA`; nothing else
defines columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from builders.text import keys_repeat, response_key

PROMPT_FIELDS = ("instruction", "input")  # the task's words inside a prompt; a prompt format (templates/prompts/) reads only these

PROVENANCE_TYPE = pa.struct(
    [
        pa.field("source", pa.string()),
        pa.field("revision", pa.string()),
        pa.field("row_key", pa.string()),
        pa.field("llm_model", pa.string()),
        pa.field("llm_requests", pa.list_(pa.string())),
    ]
)

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("distribution", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("responses", pa.list_(pa.string()), nullable=False),
        pa.field("preferred", pa.int32(), nullable=False),
        pa.field("scores", pa.list_(pa.float32()), nullable=False),
        pa.field("instruction", pa.string()),
        pa.field("input", pa.string()),
        pa.field("template", pa.string()),
        pa.field("group", pa.string()),
        pa.field("meta", pa.string()),
        pa.field("provenance", PROVENANCE_TYPE),
    ]
)

PAIRWISE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("distribution", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("chosen", pa.string()),
        pa.field("rejected", pa.string()),
    ]
)

MIN_RESPONSES, MAX_RESPONSES = 2, 4


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same bytes.

    One shared encoder: `json.dumps` with options builds a new encoder on every call, which is a third
    of the cost of encoding a record's small `meta`.
    """
    return _CANONICAL.encode(value)


def content_id(distribution: str, prompt: str, responses: list[str], preferred: int) -> str:
    """Stable id of an example's content.

    The order of the dispreferred responses does not change the id, so shuffling response order
    (which every build and repair does) keeps ids comparable across versions. Every text is hashed with
    its length in front, so no two different contents can produce the same byte stream.
    """
    others = sorted(r for i, r in enumerate(responses) if i != preferred)
    parts = []
    for text in (distribution, prompt, responses[preferred], *others):  # a loop: a call per text costs more
        data = text.encode("utf-8")
        parts.append(len(data).to_bytes(8, "big"))
        parts.append(data)
    return hashlib.sha256(b"".join(parts)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from: upstream source, its pinned revision, the upstream row, LLM calls used."""

    source: str
    revision: str | None = None
    row_key: str | None = None
    llm_model: str | None = None
    llm_requests: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "row_key": self.row_key,
            "llm_model": self.llm_model,
            "llm_requests": list(self.llm_requests),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Provenance":
        d = d or {}
        return cls(
            source=d.get("source") or "",
            revision=d.get("revision"),
            row_key=d.get("row_key"),
            llm_model=d.get("llm_model"),
            llm_requests=tuple(d.get("llm_requests") or ()),
        )


@dataclass(slots=True)
class Record:
    """One preference example. `id` and `scores` are derived from the content, never set by hand."""

    distribution: str
    prompt: str
    responses: list[str]
    preferred: int
    group: str
    provenance: Provenance
    template: str = ""
    instruction: str | None = None
    input: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _memo: tuple[tuple[Any, ...], dict[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)

    def _content(self) -> tuple[Any, ...]:
        return (self.distribution, self.prompt, self.preferred, *self.responses)

    def _derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value derived from the content, computed once while the content is unchanged.

        A record's id and its problems are asked for several times on its way through a build (sorting,
        splitting, balancing, validating, writing); hashing and checking every text each time cost more
        than the rest of the pipeline. The memo is keyed by the content itself, so an edited field (tests
        and builders do edit records) recomputes it; comparing the key is cheap because its strings are
        the same objects.
        """
        content = self._content()
        if self._memo is None or self._memo[0] != content:
            self._memo = (content, {})
        values = self._memo[1]
        if name not in values:
            values[name] = compute()
        return values[name]

    @property
    def id(self) -> str:
        return self._derived("id", lambda: content_id(self.distribution, self.prompt, self.responses, self.preferred))

    @property
    def scores(self) -> list[float]:
        return [1.0 if i == self.preferred else 0.0 for i in range(len(self.responses))]

    def problems(self) -> list[str]:
        """Reasons this record violates the schema's invariants (empty when it is valid).

        Checked once per content: a builder's check and the pipeline's check of the same record agree.
        """
        return list(self._derived("problems", self._find_problems))

    def _find_problems(self) -> tuple[str, ...]:
        found = []
        n = len(self.responses)
        if not MIN_RESPONSES <= n <= MAX_RESPONSES:
            found.append(f"has {n} responses, expected {MIN_RESPONSES}-{MAX_RESPONSES}")
        if not 0 <= self.preferred < n:
            found.append(f"preferred index {self.preferred} out of range for {n} responses")
        keys = [response_key(r) for r in self.responses]  # once per response: the two checks share them
        if not all(keys):
            found.append("has an empty response")
        if keys_repeat(keys):
            found.append("has duplicate responses")
        if not self.prompt.strip():
            found.append("has an empty prompt")
        return tuple(found)

    def with_order(self, order: list[int]) -> "Record":
        """The same example with responses permuted: new position i holds old response order[i]."""
        responses = [self.responses[i] for i in order]
        permuted = Record(
            distribution=self.distribution,
            prompt=self.prompt,
            responses=responses,
            preferred=order.index(self.preferred),
            group=self.group,
            provenance=self.provenance,
            template=self.template,
            instruction=self.instruction,
            input=self.input,
            meta=self.meta,
        )
        if self._memo is not None and self._memo[0] == self._content():
            # the id ignores the order of the responses, and the problems do not depend on it either
            permuted._memo = (permuted._content(), dict(self._memo[1]))
        return permuted

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "distribution": self.distribution,
            "prompt": self.prompt,
            "responses": list(self.responses),
            "preferred": self.preferred,
            "scores": self.scores,
            "instruction": self.instruction,
            "input": self.input,
            "template": self.template,
            "group": self.group,
            "meta": canonical_json(self.meta),
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Record":
        return cls(
            distribution=row["distribution"],
            prompt=row["prompt"],
            responses=list(row["responses"]),
            preferred=int(row["preferred"]),
            group=row.get("group") or "",
            provenance=Provenance.from_dict(row.get("provenance")),
            template=row.get("template") or "",
            instruction=row.get("instruction"),
            input=row.get("input"),
            meta=json.loads(row["meta"]) if row.get("meta") else {},
        )


def _scores_column(responses: pa.ListArray, preferred: list[int]) -> pa.ListArray:
    """The one-hot `scores` lists, built from the responses' offsets: 1.0 at each preferred position."""
    offsets = responses.offsets.to_numpy()
    values = np.zeros(int(offsets[-1] - offsets[0]), dtype=np.float32)
    values[offsets[:-1] - offsets[0] + np.asarray(preferred, dtype=np.int64)] = 1.0
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), pa.array(values, pa.float32()))


def table_from_columns(columns: dict[str, list[Any]], provenance: dict[str, list[Any]]) -> pa.Table:
    """A table with exactly `RECORD_SCHEMA` from one plain list per column, each converted in one call.

    `columns` holds every column but `scores` (derived here from `responses` and `preferred`) and
    `provenance`, with ids already hashed and `meta` already encoded (`canonical_json`); `provenance` holds
    one list per provenance field. The import builds these lists straight from release examples, every
    other producer from `Record`s (`records_to_table`); both give the same bytes for the same content.
    """
    fields = list(PROVENANCE_TYPE)
    arrays = {name: pa.array(values, RECORD_SCHEMA.field(name).type) for name, values in columns.items()}
    arrays["scores"] = _scores_column(arrays["responses"], columns["preferred"])
    arrays["provenance"] = pa.StructArray.from_arrays(
        [pa.array(provenance[f.name], f.type) for f in fields], fields=fields)
    return pa.Table.from_arrays([arrays[name] for name in RECORD_SCHEMA.names], schema=RECORD_SCHEMA)


def records_to_table(records: list[Record]) -> pa.Table:
    """Records as a table with exactly `RECORD_SCHEMA`, built column by column.

    Each column is converted in one call, every id is hashed once and `meta` is encoded by one shared
    encoder: per-record dictionaries (`to_row`) cost more than the data itself on a 64k-record release.
    The bytes are those of `Table.from_pylist` over `to_row()`, which the tests compare.
    """
    columns: dict[str, list[Any]] = {
        "id": [r.id for r in records],
        "distribution": [r.distribution for r in records],
        "prompt": [r.prompt for r in records],
        "responses": [r.responses for r in records],
        "preferred": [r.preferred for r in records],
        "instruction": [r.instruction for r in records],
        "input": [r.input for r in records],
        "template": [r.template for r in records],
        "group": [r.group for r in records],
        "meta": [_CANONICAL.encode(r.meta) for r in records],
    }
    provenance: dict[str, list[Any]] = {
        "source": [r.provenance.source for r in records],
        "revision": [r.provenance.revision for r in records],
        "row_key": [r.provenance.row_key for r in records],
        "llm_model": [r.provenance.llm_model for r in records],
        "llm_requests": [list(r.provenance.llm_requests) for r in records],
    }
    return table_from_columns(columns, provenance)


def table_to_records(table: pa.Table) -> list[Record]:
    return [Record.from_row(row) for row in table.to_pylist()]


def pairwise_view(table: pa.Table) -> pa.Table:
    """One row per (preferred, dispreferred) pair: what TRL's reward trainer and RewardBench read."""
    ids, dists, prompts, chosen, rejected = [], [], [], [], []
    columns = table.select(["id", "distribution", "prompt", "responses", "preferred"]).to_pydict()
    for rid, dist, prompt, responses, preferred in zip(*columns.values()):
        for i, response in enumerate(responses):
            if i == preferred:
                continue
            ids.append(rid)
            dists.append(dist)
            prompts.append(prompt)
            chosen.append(responses[preferred])
            rejected.append(response)
    return pa.Table.from_arrays(
        [pa.array(ids, pa.string()), pa.array(dists, pa.string()), pa.array(prompts, pa.string()),
         pa.array(chosen, pa.string()), pa.array(rejected, pa.string())],
        schema=PAIRWISE_SCHEMA,
    )
