"""The request cache: one SQLite file (WAL) mapping the hash of a full request to its answer or error.

The key covers everything that can change an answer (model, base URL, messages, every generation
parameter, sample index, template hash) and nothing that cannot (API key, concurrency, rate limits),
so a model's answer is never served for another model and throughput settings never invalidate the
cache. Each answer is committed as soon as it arrives: a killed run loses only the requests in flight.
Deterministic request errors (400, 404, 413, 422) are cached as errors so a rerun does not pay for them
again; transient failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builders.errors import GeniesError
from builders.schema import canonical_json

Outcome = Literal["answer", "error"]
CACHE_FILE_NAME = "llm-cache.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    outcome TEXT NOT NULL CHECK (outcome IN ('answer', 'error')),
    request TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(request: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the request: equal requests give equal keys on every machine."""
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


def cache_file(path: Path) -> Path:
    """`path` itself when it names a file, else the default file name inside the directory `path`."""
    path = Path(path).expanduser()
    return path / CACHE_FILE_NAME if path.is_dir() or not path.suffix else path


@dataclass(frozen=True)
class CacheEntry:
    outcome: Outcome
    body: dict[str, Any]


class RequestCache:
    """Thread-safe SQLite request cache. The first answer stored under a key is the one kept."""

    def __init__(self, path: Path) -> None:
        self.path = cache_file(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise GeniesError(
                f"cannot open the LLM request cache {self.path}: {exc}",
                "point GENIES_LLM_CACHE (or --cache) at a writable file or directory",
            ) from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            row = self._db.execute("SELECT outcome, body FROM requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else CacheEntry(row[0], json.loads(row[1]))

    def put(self, key: str, request: Mapping[str, Any], outcome: Outcome, body: Mapping[str, Any]) -> None:
        """Commit one entry now (autocommit), so it survives the process being killed right after."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO requests (key, outcome, request, body, created) VALUES (?, ?, ?, ?, ?)",
                (key, outcome, canonical_json(request), canonical_json(body), time.time()),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT outcome, COUNT(*) FROM requests GROUP BY outcome").fetchall()
        return {"answer": 0, "error": 0, **dict(rows)}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
