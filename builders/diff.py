"""`genies diff A B`: what changed between two versions, by example id.

Ids are content hashes that ignore the order of the dispreferred responses, so (an id that occurs twice in a
distribution is matched occurrence by occurrence, so removing one of two exact duplicates is a removal):

- an id in both versions, same split, same preferred position: **unchanged**;
- the same id in another split: **moved** (the split changed);
- the same id, same split, the preferred answer at another position: **reordered** (response order changed);
- an id only in A and an id only in B with the same item key (the `group`, else the normalized prompt)
  in the same split: **changed** (the example's content was edited); one pair per key;
- the rest of the ids only in A: **removed**; only in B: **added**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from builders.export import Version
from builders.validation.data import (
    LoadedVersion,
    distribution_stats,
    load_version,
    splits_of,
)

MANIFEST_KEYS = ("format", "dataset", "version", "content_sha256", "build_fingerprint", "seed", "templates",
                 "llm_models", "sources")
SHIFT_KEY = ("source", "target")
EXAMPLE_KINDS = ("added", "removed", "changed", "moved", "reordered", "unchanged")
MAX_EXAMPLES = 5


@dataclass
class DistributionDiff:
    name: str
    status: str  # added, removed, changed, unchanged
    rows_a: dict[str, int]
    rows_b: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)
    stats_a: dict[str, Any] = field(default_factory=dict)
    stats_b: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "rows": {"a": self.rows_a, "b": self.rows_b}, "examples": self.counts,
                "example_ids": self.examples, "schema_changes": self.schema_changes,
                "stats": {"a": self.stats_a, "b": self.stats_b}}


@dataclass
class VersionDiff:
    a: Path
    b: Path
    manifest: dict[str, dict[str, Any]]
    distributions: list[DistributionDiff]
    shifts: dict[str, list[Any]]

    @property
    def identical(self) -> bool:
        return all(d.status == "unchanged" for d in self.distributions) and not any(self.shifts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"a": str(self.a), "b": str(self.b), "identical": self.identical, "manifest": self.manifest,
                "distributions": {d.name: d.to_dict() for d in self.distributions}, "shifts": self.shifts}


def manifest_changes(a: dict, b: dict) -> dict[str, dict[str, Any]]:
    return {k: {"a": a.get(k), "b": b.get(k)} for k in MANIFEST_KEYS if a.get(k) != b.get(k)}


def _shift_rows(loaded: LoadedVersion) -> dict[tuple[str, str], dict]:
    return {tuple(s[k] for k in SHIFT_KEY): s for s in loaded.shifts()}


def shift_changes(a: LoadedVersion, b: LoadedVersion) -> dict[str, list[Any]]:
    """Shifts added, removed, and changed (same source->target, other category/reference/benchmarks)."""
    rows_a, rows_b = _shift_rows(a), _shift_rows(b)
    changed = [
        {"shift": f"{s}->{t}", "a": rows_a[(s, t)], "b": rows_b[(s, t)]}
        for s, t in sorted(rows_a.keys() & rows_b.keys()) if rows_a[(s, t)] != rows_b[(s, t)]
    ]
    return {
        "added": [f"{s}->{t}" for s, t in sorted(rows_b.keys() - rows_a.keys())],
        "removed": [f"{s}->{t}" for s, t in sorted(rows_a.keys() - rows_b.keys())],
        "changed": changed,
    }


def split_schemas(version: Version, name: str) -> dict[str, pa.Schema]:
    return {split: version.table(name, split).schema for split in splits_of(version, name)
            if (version.path / "distributions" / name / split).is_dir()}


def schema_changes(a: Version, b: Version, name: str) -> list[str]:
    """Columns added, removed or retyped between the two versions' splits of a distribution."""
    before, after = split_schemas(a, name), split_schemas(b, name)
    changes = [f"split {s} added" for s in sorted(after.keys() - before.keys())]
    changes += [f"split {s} removed" for s in sorted(before.keys() - after.keys())]
    for split in sorted(before.keys() & after.keys()):
        old, new = before[split], after[split]
        changes += [f"{split}: column {c} added" for c in new.names if c not in old.names]
        changes += [f"{split}: column {c} removed" for c in old.names if c not in new.names]
        changes += [f"{split}: column {c} {old.field(c).type} -> {new.field(c).type}"
                    for c in old.names if c in new.names and not old.field(c).type.equals(new.field(c).type)]
    return changes


def _example_keys(loaded: LoadedVersion) -> pl.DataFrame:
    key = pl.when(pl.col("group").fill_null("") != "").then(pl.col("group")).otherwise(pl.col("prompt_norm"))
    occurrence = pl.int_range(pl.len()).over("dist", "id")
    return loaded.frame.select("dist", "id", "split", "preferred", key=key, occurrence=occurrence)


def classify_examples(a: LoadedVersion, b: LoadedVersion) -> pl.DataFrame:
    """One row per example with its kind (see the module docstring): ids of either version, except that a
    changed example appears once, under its new id."""
    joined = _example_keys(a).join(_example_keys(b), on=["dist", "id", "occurrence"], how="full", coalesce=True,
                                   suffix="_b")
    kind = (
        pl.when(pl.col("split").is_null()).then(pl.lit("added"))
        .when(pl.col("split_b").is_null()).then(pl.lit("removed"))
        .when(pl.col("split") != pl.col("split_b")).then(pl.lit("moved"))
        .when(pl.col("preferred") != pl.col("preferred_b")).then(pl.lit("reordered"))
        .otherwise(pl.lit("unchanged"))
    )
    joined = joined.with_columns(
        kind=kind,
        item=pl.coalesce("key", "key_b"),
        side=pl.coalesce("split", "split_b"),
    )
    return _mark_changed(joined)


def _mark_changed(joined: pl.DataFrame) -> pl.DataFrame:
    """Pair removed and added ids of the same item and split (the n-th removed with the n-th added); a
    pair becomes one `changed` row carrying the new id."""
    rank = pl.int_range(pl.len()).over("dist", "item", "side", "kind")
    candidates = pl.col("kind").is_in(["added", "removed"])
    joined = joined.with_columns(pair=pl.when(candidates).then(rank))
    paired = (
        joined.filter(candidates)
        .group_by("dist", "item", "side", "pair")
        .agg(pl.col("kind").n_unique().alias("kinds"))
        .filter(pl.col("kinds") == 2)
        .select("dist", "item", "side", "pair", is_changed=pl.lit(True))
    )
    joined = joined.join(paired, on=["dist", "item", "side", "pair"], how="left", nulls_equal=False)
    is_changed = pl.col("is_changed").fill_null(False)
    return joined.filter(~(is_changed & (pl.col("kind") == "removed"))).with_columns(
        kind=pl.when(is_changed).then(pl.lit("changed")).otherwise(pl.col("kind"))
    )


def _rows(loaded: LoadedVersion, name: str) -> dict[str, int]:
    split_rows = loaded.frame.filter(pl.col("dist") == name).group_by("split").len()
    return dict(sorted(split_rows.iter_rows()))


def _distribution_diff(name: str, a: LoadedVersion, b: LoadedVersion, kinds: pl.DataFrame,
                       stats: dict[str, dict[str, dict]]) -> DistributionDiff:
    mine = kinds.filter(pl.col("dist") == name)
    counts = {k: 0 for k in EXAMPLE_KINDS} | dict(mine.group_by("kind").len().iter_rows())
    examples = {k: ids[:MAX_EXAMPLES] for k, ids in mine.group_by("kind").agg(pl.col("id").sort()).iter_rows()
                if k != "unchanged"}
    in_a, in_b = name in a.distributions, name in b.distributions
    changes = schema_changes(a.version, b.version, name) if in_a and in_b else []
    if not in_a or not in_b:
        status = "added" if in_b else "removed"
    else:
        status = "changed" if changes or any(counts[k] for k in EXAMPLE_KINDS if k != "unchanged") else "unchanged"
    return DistributionDiff(name, status, _rows(a, name), _rows(b, name), counts, examples, changes,
                            stats["a"].get(name, {}), stats["b"].get(name, {}))


def diff_versions(ref_a: str | Path | Version, ref_b: str | Path | Version) -> VersionDiff:
    a, b = load_version(ref_a), load_version(ref_b)
    kinds = classify_examples(a, b)
    stats = {side: {row.pop("dist"): row for row in distribution_stats(v.frame).to_dicts()}
             for side, v in (("a", a), ("b", b))}
    names = sorted(set(a.distributions) | set(b.distributions))
    return VersionDiff(
        a.version.path, b.version.path, manifest_changes(a.manifest, b.manifest),
        [_distribution_diff(n, a, b, kinds, stats) for n in names], shift_changes(a, b),
    )
