"""A version's LLM answers as data: exported beside the version, replayed into the request cache.

`build` writes `llm_requests/requests.parquet` with one row per request key the build looked up (the
answers its rows and rejects came from, and the re-ask chains that led there): the full keyed request
(model, base URL without credentials or query, messages, parameters, template hash, structured-output
mode), the outcome and the answer body. `--replay SOURCE` loads such a file into the local cache before a
build, so `--offline` then rebuilds the version byte for byte with nothing sent and no API key.

Integrity: a row's key must be the hash of its request (recomputed), its `body_sha256` the hash of its
body, and the file's sha256 the one in the version's `manifest.json`. Any mismatch refuses the replay.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq

from builders.errors import GeniesError
from builders.llm.cache import RequestCache, request_key

EXPORT_DIR = "llm_requests"
EXPORT_FILE = f"{EXPORT_DIR}/requests.parquet"
HUB_CONFIG = "llm_requests"
HUB_FILE = f"data/{HUB_CONFIG}/train-00000-of-00001.parquet"
SCHEMA = pa.schema([
    pa.field("key", pa.string()),
    pa.field("outcome", pa.string()),
    pa.field("request", pa.string()),
    pa.field("body", pa.string()),
    pa.field("body_sha256", pa.string()),
])


def public_base_url(url: str) -> str:
    """The base URL without user, password, query or fragment: what may be stored, hashed and published."""
    parts = urlsplit(url.rstrip("/"))
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")) if parts.scheme else url.rstrip("/")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def export_requests(cache: RequestCache, keys: Iterable[str]) -> tuple[bytes, int]:
    """Parquet bytes of the cached entries under `keys`, sorted by key (identical builds give identical
    bytes), and their number of rows."""
    rows = []
    for key in sorted(set(keys)):
        entry = cache.raw(key)
        if entry is not None:
            outcome, request, body = entry
            rows.append({"key": key, "outcome": outcome, "request": request, "body": body,
                         "body_sha256": _sha256(body)})
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer, compression="zstd", use_dictionary=False,
                   write_statistics=False)
    return buffer.getvalue(), len(rows)


@dataclass(frozen=True)
class ReplaySource:
    """A requests file and the sha256 its manifest promises (None when the source has no manifest)."""

    path: Path
    expected_sha256: str | None


def locate(source: str, download_dir: Path) -> ReplaySource:
    """A version directory, a Hub-layout directory (`publish --dry-run`), or `ORG/NAME@revision` on the Hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        for candidate in (path / EXPORT_FILE, path / HUB_FILE):
            if candidate.exists():
                return ReplaySource(candidate, _promised_sha256(path))
        raise GeniesError(f"{path} holds no LLM answers ({EXPORT_FILE} or {HUB_FILE})",
                          "point --replay at a version built with LLM distributions, or at its published copy")
    if "/" in source and not path.exists():
        return _download(source, download_dir)
    raise GeniesError(f"--replay {source!r} is neither a directory nor ORG/NAME@revision",
                      "give a version directory, a `publish --dry-run` directory, or a Hub dataset ORG/NAME@REV")


def _promised_sha256(root: Path) -> str | None:
    manifest = root / "manifest.json"
    if not manifest.exists():
        return None
    return (json.loads(manifest.read_text()).get("llm_requests") or {}).get("sha256")


def _download(source: str, download_dir: Path) -> ReplaySource:
    from huggingface_hub import snapshot_download

    repo_id, _, revision = source.partition("@")
    try:
        root = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision or None,
                                      allow_patterns=[HUB_FILE, "manifest.json"], local_dir=download_dir))
    except Exception as exc:
        raise GeniesError(f"could not download the LLM answers of {source} ({type(exc).__name__}: {exc})",
                          "check the name and revision, HF_ENDPOINT and HF_TOKEN") from None
    if not (root / HUB_FILE).exists():
        raise GeniesError(f"{source} has no {HUB_FILE}", "it was published without LLM answers")
    return ReplaySource(root / HUB_FILE, _promised_sha256(root))


def read_checked(source: ReplaySource) -> pa.Table:
    """The rows of a requests file, refused when the file, a key or an answer does not match its hash."""
    data = source.path.read_bytes()
    if source.expected_sha256 and hashlib.sha256(data).hexdigest() != source.expected_sha256:
        raise GeniesError(f"{source.path} does not match the sha256 in its manifest.json: it was changed",
                          "replay from an untouched copy of the version")
    table = pq.read_table(io.BytesIO(data))
    for row in table.to_pylist():
        if request_key(json.loads(row["request"])) != row["key"]:
            raise GeniesError(f"LLM request {row['key']} in {source.path} does not hash to its key: its request was changed",
                              "replay from an untouched copy of the version")
        if _sha256(row["body"]) != row["body_sha256"]:
            raise GeniesError(f"the answer of LLM request {row['key']} in {source.path} was changed",
                              "replay from an untouched copy of the version")
    return table


def replay_into(cache: RequestCache, table: pa.Table) -> int:
    """Commit every row to the cache, replacing a local answer under the same key (the replayed one made the
    version); returns how many rows were loaded."""
    rows = table.to_pylist()
    cache.put_raw((row["key"], row["outcome"], row["request"], row["body"]) for row in rows)
    return len(rows)


def server_of(table: pa.Table) -> tuple[str, str]:
    """The (base URL, model) most of the replayed requests went to: the engine settings of the rebuild."""
    pairs = Counter((r["base_url"], r["model"]) for r in map(json.loads, table.column("request").to_pylist()))
    if not pairs:
        raise GeniesError("the replayed LLM answers are empty", "replay a version that used the LLM")
    return pairs.most_common(1)[0][0]
