"""The raw-table cache: normalized tables as uncompressed Arrow IPC files, memory-mapped on load.

An entry is keyed by source name, content revision (the digest of the pinned checksums, or of the files
read for an unpinned source) and normalizer version, so new upstream content or a changed normalizer
never reads a stale table. Each
entry is written to a temporary file and renamed into place: a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.errors import GeniesError
from builders.sources.spec import SourceSpec

CACHE_ENV = "GENIES_CACHE"
CACHE_FORMAT = 1


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`--cache-dir`, else `GENIES_CACHE`, else `~/.cache/genies/sources`."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "genies" / "sources"
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class CacheEntry:
    """Where one normalized table lives in the cache."""

    root: Path
    name: str
    key: str

    @classmethod
    def for_revision(cls, root: Path, spec: SourceSpec, revision: str) -> CacheEntry:
        material = f"{spec.name}\0{revision}\0{spec.normalizer}:{spec.normalizer_version}\0{CACHE_FORMAT}"
        return cls(root, spec.name, hashlib.sha256(material.encode("utf-8")).hexdigest()[:20])

    @property
    def table_path(self) -> Path:
        return self.root / self.name / f"{self.key}.arrow"

    @property
    def meta_path(self) -> Path:
        return self.root / self.name / f"{self.key}.json"

    def exists(self) -> bool:
        return self.table_path.is_file() and self.meta_path.is_file()

    def meta(self) -> dict[str, Any]:
        """What was recorded when the table was built: revision, rows per split, rejects, ..."""
        return json.loads(self.meta_path.read_text(encoding="utf-8"))

    def read(self) -> tuple[pa.Table, dict[str, Any]]:
        """The cached table and its metadata; a damaged entry (a truncated table, a broken JSON file) is a
        clear error that says how to rebuild it."""
        try:
            with pa.memory_map(str(self.table_path)) as source:
                table = pa.ipc.open_file(source).read_all()
            return table, self.meta()
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GeniesError(
                f"the source cache entry {self.table_path} of {self.name!r} is damaged ({exc})",
                f"delete the folder {self.table_path.parent} (or run `genies sources pull {self.name}` after "
                "deleting it) and the source is read again from the mirror or upstream",
            ) from exc

    def write(self, table: pa.Table, meta: dict[str, Any]) -> None:
        directory = self.table_path.parent
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".arrow.tmp", delete=False) as handle:
            tmp_table = Path(handle.name)
        with pa.OSFile(str(tmp_table), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp_meta = tmp_table.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp_table, self.table_path)
        os.replace(tmp_meta, self.meta_path)


def latest_entry(root: Path, spec: SourceSpec) -> CacheEntry | None:
    """The most recently written entry of an unpinned source (what its last load produced)."""
    candidates = sorted((root / spec.name).glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for meta_path in candidates:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        entry = CacheEntry(root, spec.name, meta_path.stem)
        if meta.get("normalizer") == f"{spec.normalizer}:{spec.normalizer_version}" and entry.exists():
            return entry
    return None
