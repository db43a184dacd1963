"""Small exported versions for the validate and diff tests: clean examples, and helpers to plant defects.

Clean examples are built to pass every check: distinct random-word prompts that contain their instruction,
two responses of equal length (no length cue), preferred position alternating (balanced), distinct groups.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa

from builders.catalog import SHIFTS_SCHEMA
from builders.export import DistributionExport, export_version
from builders.schema import Provenance, Record, records_to_table

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "ze") for b in
         ("bar", "cen", "dol", "fim", "gas", "hup", "jor", "kel", "lun", "mip", "nor", "pax")]


def phrase(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def clean_record(dist: str, i: int, *, upstream: str = "up", seed: int = 0) -> Record:
    rng = random.Random(f"{dist}:{i}:{seed}")
    instruction = f"{phrase(rng)}?"
    good, bad = phrase(rng, 6), phrase(rng, 6)
    bad = bad[: len(good)].ljust(len(good), "x")
    responses = [good, bad] if i % 2 == 0 else [bad, good]
    return Record(
        distribution=dist,
        prompt=f"### Instruction:\n{instruction}\n\n### Response:\n",
        responses=responses,
        preferred=i % 2,
        group=f"{upstream}:{dist}:{i}",
        provenance=Provenance(source=upstream, row_key=str(i)),
        instruction=instruction,
        meta={"n": i},
    )


def clean_splits(dist: str, train: int = 12, test: int = 6, **kwargs) -> dict[str, list[Record]]:
    records = [clean_record(dist, i, **kwargs) for i in range(train + test)]
    return {"train": records[:train], "test": records[train:]}


def shift(source: str, target: str, reference: str | None = None) -> dict:
    return {"source": source, "target": target, "category": "skill", "label": "extreme",
            "target_reference": reference, "benchmarks": []}


def write_version(
    root: Path,
    version: str,
    distributions: dict[str, dict[str, list[Record] | pa.Table]],
    shifts: list[dict] = (),
    notes: dict[str, dict] | None = None,
    sources: dict[str, list[str]] | None = None,
) -> Path:
    """Export `distributions` ({name: {split: records or table}}) as `root/test/<version>`."""
    exports = [
        DistributionExport(
            name,
            {s: rows if isinstance(rows, pa.Table) else records_to_table(sorted(rows, key=lambda r: r.id))
             for s, rows in splits.items()},
            sources={s: {"revision": "test", "license": "cc-by-4.0"} for s in (sources or {}).get(name, ["up"])},
            notes=(notes or {}).get(name, {}),
        )
        for name, splits in distributions.items()
    ]
    table = pa.Table.from_pylist(list(shifts), schema=SHIFTS_SCHEMA)
    return export_version(root, "test", version, exports, table).path


def tampered(records: list[Record], column: str, row: int, value) -> pa.Table:
    """The records as a table with one cell replaced: defects a `Record` cannot express."""
    rows = records_to_table(sorted(records, key=lambda r: r.id)).to_pylist()
    rows[row][column] = value
    return pa.Table.from_pylist(rows, schema=records_to_table(records).schema)
