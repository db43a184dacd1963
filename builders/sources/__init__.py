"""Source builders: raw upstream datasets, pinned and checksummed, loaded offline from mirrors or a cache.

    loaded = load_source("mmlu", mirror="../shared/sources")
    loaded.table       # pyarrow Table in the documented raw schema (docs/sources.md), row_key first
    loaded.revision    # "sha256:<digest of the pinned files>" (unpinned sources: of the files read)
    loaded.spec.license

Order of lookup: a mirror that holds the source (`mirror=` or `GENIES_MIRROR`, then the cache's own
download mirror) is read, verified and normalized, unless the cache already has the table for exactly
that content; with no mirror the cache answers (for an unpinned source, with its latest load); only
then, and never when a mirror was named or `offline` is set, are the upstream files fetched.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from builders.sources.cache import CacheEntry, cache_root, latest_entry
from builders.sources.fetch import MIRROR_HINT, fetch_upstream
from builders.sources.mirror import (
    ChecksumMismatch,
    MirrorFiles,
    SourceUnavailable,
    collect_files,
    holding_mirror,
    lock_checksums,
    mirror_dirs,
    missing_files,
)
from builders.sources.normalizers import NORMALIZERS, normalize
from builders.sources.reading import Rejects, SourceFormatError, read_parts
from builders.sources.spec import SourceSpec, list_sources, source_spec

__all__ = [
    "ChecksumMismatch",
    "LoadedSource",
    "SourceFormatError",
    "SourceSpec",
    "SourceUnavailable",
    "cached_entry",
    "list_sources",
    "load_source",
    "lock_checksums",
    "mirror_dirs",
    "raw_schema",
    "source_available",
    "source_spec",
    "verify_source",
]

# What reading or normalizing an empty or wrongly shaped file raises from `datasets`, pyarrow or a normalizer.
_UNREADABLE = (StopIteration, ValueError, TypeError, AttributeError, KeyError, IndexError, pa.ArrowException)
OFFLINE_ENVS = ("GENIES_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
DOWNLOAD_MIRROR = "mirror"


@dataclass
class LoadedSource:
    """A normalized raw table and where it came from."""

    spec: SourceSpec
    table: pa.Table
    revision: str
    origin: str
    verified: bool
    rejects: dict[str, Any] = field(default_factory=dict)
    cache_path: Path | None = None

    @property
    def rows_per_split(self) -> dict[str, int]:
        """Rows per upstream split (`all` for sources without a split column)."""
        return rows_per_split(self.table)


def rows_per_split(table: pa.Table) -> dict[str, int]:
    if "split" not in table.column_names:
        return {"all": table.num_rows}
    counts = pc.value_counts(table["split"]).to_pylist()
    return {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: c["values"])}


def raw_schema(name: str) -> pa.Schema:
    """The documented schema of source `name`'s raw table."""
    return NORMALIZERS[source_spec(name).normalizer].schema


def _offline_by_env() -> bool:
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in OFFLINE_ENVS)


def cached_entry(spec: SourceSpec, cache_dir: str | Path | None = None) -> CacheEntry | None:
    """The cache entry a mirror-less load would use: the pinned content's, or the latest load of an unpinned source."""
    root = cache_root(cache_dir)
    if spec.pinned:
        entry = CacheEntry.for_revision(root, spec, spec.revision)
        return entry if entry.exists() else None
    return latest_entry(root, spec)


def source_available(
    name: str, mirror: str | Path | Iterable[str | Path] | None = None, cache_dir: str | Path | None = None
) -> bool:
    """Whether `load_source` would succeed without the network: a mirror or the cache holds the source."""
    spec = source_spec(name)
    root = cache_root(cache_dir)
    holder = holding_mirror(spec, [*mirror_dirs(mirror), root / DOWNLOAD_MIRROR])
    in_mirror = holder is not None and not missing_files(spec, holder)
    return in_mirror or cached_entry(spec, root) is not None


def load_source(
    name: str,
    mirror: str | Path | Iterable[str | Path] | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
) -> LoadedSource:
    """The normalized raw table of source `name` (see the module docstring for where it comes from)."""
    try:
        return _load(source_spec(name), mirror, cache_dir, offline)
    except SourceUnavailable as exc:
        exc.source = exc.source or name
        raise


def _load(
    spec: SourceSpec, mirror: str | Path | Iterable[str | Path] | None, cache_dir: str | Path | None, offline: bool
) -> LoadedSource:
    root = cache_root(cache_dir)
    mirrors = mirror_dirs(mirror)
    holder = holding_mirror(spec, [*mirrors, root / DOWNLOAD_MIRROR])
    if holder is None:
        entry = cached_entry(spec, root)
        if entry is not None:
            return _from_cache(spec, entry)
        _refuse_network(spec, mirrors, offline)
        fetch_upstream(spec, root / DOWNLOAD_MIRROR)
        holder = root / DOWNLOAD_MIRROR
    if spec.pinned and (entry := cached_entry(spec, root)) is not None:
        return _from_cache(spec, entry)
    files = collect_files(spec, holder)
    entry = CacheEntry.for_revision(root, spec, files.revision)
    return _from_cache(spec, entry) if entry.exists() else _build(spec, files, entry)


def _refuse_network(spec: SourceSpec, mirrors: list[Path], offline: bool) -> None:
    if mirrors:
        raise SourceUnavailable(
            f"source {spec.name!r}: no mirror holds its folder {spec.folder}/ "
            f"(searched {', '.join(map(str, mirrors))})",
            f"add the upstream files under <mirror>/{spec.folder}/ (layout in docs/sources.md), or run "
            f"`genies sources pull {spec.name}` without --mirror on a machine with network access",
        )
    if offline or _offline_by_env():
        raise SourceUnavailable(f"source {spec.name!r} is not cached and offline mode forbids fetching it", MIRROR_HINT)


def _from_cache(spec: SourceSpec, entry: CacheEntry, origin: str = "cache") -> LoadedSource:
    table, meta = entry.read()
    return LoadedSource(spec, table, meta["revision"], origin, meta["verified"], meta["rejects"], entry.table_path)


def _build(spec: SourceSpec, files: MirrorFiles, entry: CacheEntry) -> LoadedSource:
    """Read, normalize and cache a source from verified mirror files; return the cached table."""
    started = time.perf_counter()
    rejects = Rejects()
    with tempfile.TemporaryDirectory(prefix=f"genies-{spec.name}-") as scratch:
        try:
            table = normalize(spec.normalizer, read_parts(spec, files, rejects, Path(scratch)), rejects)
        except _UNREADABLE as exc:  # an empty or wrongly shaped upstream file (unpinned sources have no checksum)
            raise SourceFormatError(
                f"source {spec.name!r}: cannot read {', '.join(files.relpaths)} in mirror {files.root} "
                f"({type(exc).__name__}: {exc or 'the file is empty'})",
                "the file is empty or not in the upstream layout (docs/sources.md): restore the original file",
            ) from exc
        entry.write(table, _cache_meta(spec, files, table, rejects, time.perf_counter() - started))
    return _from_cache(spec, entry, origin=f"mirror {files.root}")


def _cache_meta(
    spec: SourceSpec, files: MirrorFiles, table: pa.Table, rejects: Rejects, seconds: float
) -> dict[str, Any]:
    return {
        "name": spec.name,
        "revision": files.revision,
        "verified": files.verified,
        "normalizer": f"{spec.normalizer}:{spec.normalizer_version}",
        "license": spec.license,
        "files": len(files.relpaths),
        "mirror": str(files.root),
        "rows": table.num_rows,
        "rows_per_split": rows_per_split(table),
        "rejects": rejects.to_dict(),
        "build_seconds": round(seconds, 3),
    }


def verify_source(name: str, mirror: str | Path | Iterable[str | Path] | None = None) -> MirrorFiles:
    """Check a source's files in the first mirror holding them against the recorded checksums."""
    spec = source_spec(name)
    mirrors = mirror_dirs(mirror)
    holder = holding_mirror(spec, mirrors)
    if holder is None:
        raise SourceUnavailable(f"source {spec.name!r}: no mirror holds its folder {spec.folder}/", MIRROR_HINT)
    return collect_files(spec, holder)
