"""The canonical record schema (DESIGN §3.1), defined once: a pyarrow schema, a typed record, the pairwise view.

Every stage of the pipeline produces or consumes `Record`s or tables with `RECORD_SCHEMA`; nothing else
defines columns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

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


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_id(distribution: str, prompt: str, responses: list[str], preferred: int) -> str:
    """Stable id of an example's content.

    The order of the dispreferred responses does not change the id, so shuffling response order
    (which every build and repair does) keeps ids comparable across versions. Every text is hashed with
    its length in front, so no two different contents can produce the same byte stream.
    """
    others = sorted(r for i, r in enumerate(responses) if i != preferred)
    digest = hashlib.sha256()
    for text in (distribution, prompt, responses[preferred], *others):
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:32]


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

    @property
    def id(self) -> str:
        return content_id(self.distribution, self.prompt, self.responses, self.preferred)

    @property
    def scores(self) -> list[float]:
        return [1.0 if i == self.preferred else 0.0 for i in range(len(self.responses))]

    def problems(self) -> list[str]:
        """Reasons this record violates the schema's invariants (empty when it is valid)."""
        found = []
        n = len(self.responses)
        if not MIN_RESPONSES <= n <= MAX_RESPONSES:
            found.append(f"has {n} responses, expected {MIN_RESPONSES}-{MAX_RESPONSES}")
        if not 0 <= self.preferred < n:
            found.append(f"preferred index {self.preferred} out of range for {n} responses")
        if any(not r.strip() for r in self.responses):
            found.append("has an empty response")
        if len(set(self.responses)) != n:
            found.append("has duplicate responses")
        if not self.prompt.strip():
            found.append("has an empty prompt")
        return found

    def with_order(self, order: list[int]) -> "Record":
        """The same example with responses permuted: new position i holds old response order[i]."""
        responses = [self.responses[i] for i in order]
        return Record(
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


def records_to_table(records: list[Record]) -> pa.Table:
    """Records as a table with exactly `RECORD_SCHEMA`."""
    return pa.Table.from_pylist([r.to_row() for r in records], schema=RECORD_SCHEMA)


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
