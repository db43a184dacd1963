"""Group-aware deterministic splits and balanced response order.

A group key (e.g. `arc:Mercury_7220990`) lands on the same side of the split in *every* distribution of a
build, because its side depends only on the key and the seed. Distributions built from the same upstream
therefore never leak a question from one's train split into another's test split, which is what keeps
the two sides of a shift apart.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable

from builders.schema import Record
from builders.text import text_key

SPLITS = ("train", "test")


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) determined by `parts` alone: the same on every machine and Python."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def seeded_rng(*parts: object) -> random.Random:
    """A private RNG for one purpose; never the global one, so unrelated code cannot shift its stream."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_of(group: str, seed: int, test_fraction: float) -> str:
    return "test" if unit_hash("split", seed, group) < test_fraction else "train"


def dedupe_by_prompt(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Keep one record per prompt (the smallest id; prompts compare by `text_key`); return (kept, dropped)."""
    best: dict[str, Record] = {}
    dropped: list[Record] = []
    for record in sorted(records, key=lambda r: r.id):
        key = text_key(record.prompt)
        if key in best:
            dropped.append(record)
        else:
            best[key] = record
    return list(best.values()), dropped


def group_split(
    records: Iterable[Record], seed: int, train_size: int, test_size: int
) -> dict[str, list[Record]]:
    """Assign whole groups to train or test, then keep the first `size` rows of each side.

    Rows are taken in the order of their group's hash, so which rows survive a size cap is stable and
    groups stay whole where the cap allows.
    """
    test_fraction = test_size / (train_size + test_size) if (train_size + test_size) else 0.0
    sides: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        sides[split_of(record.group, seed, test_fraction)].append(record)
    sizes = {"train": train_size, "test": test_size}
    return {
        split: sorted(sides[split], key=lambda r: (unit_hash("take", seed, r.group), r.id))[: sizes[split]]
        for split in SPLITS
    }


def balance_positions(records: Iterable[Record], seed: int) -> list[Record]:
    """Shuffle response order so the preferred position is spread evenly over the slots.

    Records with k responses are visited in a seeded order and the preferred answer is put in slot
    i mod k for the i-th of them; the other responses are shuffled by a per-record RNG.
    """
    by_size: dict[int, list[tuple[str, Record]]] = defaultdict(list)
    keyed = sorted(((r.id, r) for r in records), key=lambda item: unit_hash("order", seed, item[0]))
    for rid, record in keyed:
        by_size[len(record.responses)].append((rid, record))
    balanced = []
    for k, group in by_size.items():
        for i, (rid, record) in enumerate(group):
            others = [j for j in range(k) if j != record.preferred]
            seeded_rng("shuffle", seed, rid).shuffle(others)
            slot = i % k
            balanced.append((rid, record.with_order(others[:slot] + [record.preferred] + others[slot:])))
    return [record for _, record in sorted(balanced, key=lambda item: item[0])]
