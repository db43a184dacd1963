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
from collections.abc import Iterable, Mapping
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
);
CREATE TABLE IF NOT EXISTS structured_modes (
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (base_url, model)
);
CREATE TABLE IF NOT EXISTS batch_requests (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    base_url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'collected')),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_keys (
    batch_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (batch_id, key)
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
            self._db.executescript(_SCHEMA)
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

    def put_many(self, entries: Iterable[tuple[str, Mapping[str, Any], Outcome, Mapping[str, Any]]]) -> None:
        """`put` for many (key, request, outcome, body) entries in one transaction (a batch's answers)."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO requests (key, outcome, request, body, created) VALUES (?, ?, ?, ?, ?)",
                [(key, outcome, canonical_json(request), canonical_json(body), now)
                 for key, request, outcome, body in entries])

    def raw(self, key: str) -> tuple[str, str, str] | None:
        """(outcome, request JSON, body JSON) exactly as stored, for exporting a version's answers."""
        with self._lock:
            row = self._db.execute("SELECT outcome, request, body FROM requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def put_raw(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Commit (key, outcome, request JSON, body JSON) rows in one transaction, replacing what a key held:
        replayed answers are the ones a published version was made from."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO requests (key, outcome, request, body, created) VALUES (?, ?, ?, ?, ?)",
                [(key, outcome, request, body, time.time()) for key, outcome, request, body in rows],
            )

    def structured_mode(self, base_url: str, model: str) -> str | None:
        """The structured-output mode this server and model were found to accept, if ever probed."""
        with self._lock:
            row = self._db.execute("SELECT mode FROM structured_modes WHERE base_url = ? AND model = ?",
                                   (base_url, model)).fetchone()
        return None if row is None else row[0]

    def remember_structured_mode(self, base_url: str, model: str, mode: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO structured_modes (base_url, model, mode, created) "
                             "VALUES (?, ?, ?, ?)", (base_url, model, mode, time.time()))

    def structured_mode_in_requests(self, base_url: str, model: str) -> str | None:
        """The mode the most recent cached structured request to this server and model used: how an offline
        run, or one whose cache was filled by a replay, knows the mode without probing."""
        with self._lock:
            row = self._db.execute(
                "SELECT json_extract(request, '$.structured') FROM requests "
                "WHERE json_extract(request, '$.base_url') = ? AND json_extract(request, '$.model') = ? "
                "AND json_extract(request, '$.structured') IS NOT NULL ORDER BY created DESC LIMIT 1",
                (base_url, model)).fetchone()
        return None if row is None else row[0]

    def put_pending(self, requests: Mapping[str, Mapping[str, Any]], *, batch_id: str | None = None,
                    base_url: str = "") -> None:
        """Remember the keyed requests written out as batch lines (so their answers can be committed under
        their keys), and with `batch_id` the batch that carries them, all in one transaction: a killed
        run finds the batch again instead of paying for it twice."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO batch_requests (key, request, created) VALUES (?, ?, ?)",
                                 [(key, canonical_json(request), now) for key, request in requests.items()])
            if batch_id is not None:
                self._db.execute("INSERT INTO batches (id, base_url, status, created) VALUES (?, ?, 'open', ?)",
                                 (batch_id, base_url, now))
                self._db.executemany("INSERT INTO batch_keys (batch_id, key) VALUES (?, ?)",
                                     [(batch_id, key) for key in requests])

    def pending_request(self, key: str) -> dict[str, Any] | None:
        """The keyed request a batch line with custom_id `key` was written for, if this cache wrote it."""
        with self._lock:
            row = self._db.execute("SELECT request FROM batch_requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def open_batches(self, base_url: str) -> dict[str, set[str]]:
        """Batches submitted to `base_url` whose output was not collected yet, with the keys each carries."""
        with self._lock:
            rows = self._db.execute(
                "SELECT b.id, k.key FROM batches b JOIN batch_keys k ON k.batch_id = b.id "
                "WHERE b.status = 'open' AND b.base_url = ? ORDER BY b.created", (base_url,)).fetchall()
        batches: dict[str, set[str]] = {}
        for batch_id, key in rows:
            batches.setdefault(batch_id, set()).add(key)
        return batches

    def close_batch(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET status = 'collected' WHERE id = ?", (batch_id,))

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
