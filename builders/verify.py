"""`genies verify`: is a version exactly what its manifest says it is?

Versions are immutable, but nothing stops a disk, a script or a person from changing a file afterwards.
Every command that reads a version (validate, diff, publish, export, site, eval, repair, and build's
no-op check) verifies it first and refuses one that fails, naming the files, so a tampered row is never
validated, compared or shipped as if it were the built data.

What is checked, against `manifest.json`:

- every Arrow file listed under `files` exists, has the recorded sha256 and the recorded row count;
- every split's row count in `distributions` equals the rows of its files (a deleted split is caught even
  if the manifest was edited to drop the file);
- no Arrow file exists that the manifest does not list;
- every other file (datasets metadata, rejects, changelog, LLM answers) matches `other_files`, and none is
  missing or extra (manifests written before `other_files` existed skip this part);
- `content_sha256` equals the hash recomputed from the listed files, so editing a file's hash in the
  manifest to match a tampered file is caught too.

The card (README.md) is rendered from the manifest after it is written, so it is the one file not covered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.errors import GeniesError
from builders.schema import canonical_json

MANIFEST = "manifest.json"
CARD = "README.md"
DATASETS_METADATA = frozenset({"dataset_dict.json", "dataset_info.json", "state.json"})
LISTED_PROBLEMS = 5  # how many files an error message names before "..."


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(files: Mapping[str, Mapping[str, Any]], extra_files: Mapping[str, bytes]) -> str:
    entries = [(p, f["sha256"]) for p, f in sorted(files.items())]
    entries += [(p, hashlib.sha256(b).hexdigest()) for p, b in sorted(extra_files.items())]
    return hashlib.sha256(canonical_json(entries).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Problem:
    """One file that is not what the manifest says (`path` is relative to the version)."""

    path: str
    what: str


@dataclass
class VerifyReport:
    """The outcome of `verify_version`: the files checked and every problem found."""

    path: Path
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, what: str) -> None:
        self.problems.append(Problem(path, what))

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "files_checked": self.files_checked,
                "problems": [{"path": p.path, "problem": p.what} for p in self.problems]}

    def raise_if_failed(self) -> None:
        """Refuse the version, naming the first few files, and say how to see them all."""
        if self.ok:
            return
        named = "; ".join(f"{p.path}: {p.what}" for p in self.problems[:LISTED_PROBLEMS])
        more = f" (and {len(self.problems) - LISTED_PROBLEMS} more)" if len(self.problems) > LISTED_PROBLEMS else ""
        raise GeniesError(
            f"version {self.path} does not match its manifest.json: {named}{more}",
            f"`genies verify {self.path}` lists every problem; rebuild or re-import the version "
            "(or restore it from where it was published) instead of using a changed copy",
        )


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """The manifest as a dict, or a clear error when it is unreadable, not JSON, or not an object."""
    path = Path(version_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GeniesError(f"{path} is unreadable or not valid JSON ({exc})",
                          "the version is damaged: rebuild or re-import it, or restore it from where it was "
                          "published") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise GeniesError(f"{path} is not a GENIES manifest (no 'files' object)",
                          "the version is damaged: rebuild or re-import it")
    return manifest


def arrow_rows(path: Path) -> int:
    """Rows of an Arrow stream file, counted batch by batch from a memory map (no table is built)."""
    with pa.memory_map(str(path)) as source:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(source))


def _on_disk(version_dir: Path) -> set[str]:
    return {p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*") if p.is_file()}


def _check_arrow(version_dir: Path, rel: str, entry: Any, report: VerifyReport) -> int | None:
    """Check one listed Arrow file; its row count when it could be read."""
    path = version_dir / rel
    if not path.is_file():
        report.add(rel, "missing")
        return None
    if not isinstance(entry, dict) or sha256_file(path) != entry.get("sha256"):
        report.add(rel, "sha256 differs from the manifest (the file was changed)")
    try:
        rows = arrow_rows(path)
    except (pa.ArrowInvalid, OSError) as exc:
        report.add(rel, f"not a readable Arrow file ({exc})")
        return None
    if isinstance(entry, dict) and rows != entry.get("rows"):
        report.add(rel, f"{rows} rows, the manifest says {entry.get('rows')}")
    return rows


def _check_split_counts(manifest: dict[str, Any], rows: dict[str, int], report: VerifyReport) -> None:
    """Each split's row count in `distributions` against the rows of the files under it."""
    for name, summary in sorted(manifest.get("distributions", {}).items()):
        for split, expected in sorted((summary or {}).get("splits", {}).items()):
            prefix = f"distributions/{name}/{split}/"
            found = sum(n for rel, n in rows.items() if rel.startswith(prefix))
            if found != expected:
                report.add(prefix.rstrip("/"), f"{found} rows in its files, the manifest says {expected}")


def _is_extra_file(rel: str) -> bool:
    """Files other than data, datasets metadata, manifest and card: rejects, changelog, LLM answers."""
    return rel not in (MANIFEST, CARD) and not rel.endswith(".arrow") and Path(rel).name not in DATASETS_METADATA


def _check_other_files(version_dir: Path, manifest: dict[str, Any], on_disk: set[str], report: VerifyReport) -> None:
    listed = manifest.get("other_files")
    if not isinstance(listed, dict):
        return
    present = {rel for rel in on_disk if rel not in (MANIFEST, CARD) and not rel.endswith(".arrow")}
    for rel in sorted(set(listed) - present):
        report.add(rel, "missing")
    for rel in sorted(present - set(listed)):
        report.add(rel, "extra file the manifest does not list")
    for rel in sorted(present & set(listed)):
        if sha256_file(version_dir / rel) != listed[rel]:
            report.add(rel, "sha256 differs from the manifest (the file was changed)")


def verify_version(version_dir: Path) -> VerifyReport:
    """Check every file of a version against its manifest (see the module docstring); never raises for a
    damaged version except when the manifest itself cannot be read."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    report = VerifyReport(version_dir)
    listed: dict[str, Any] = manifest["files"]
    on_disk = _on_disk(version_dir)
    rows = {}
    for rel, entry in sorted(listed.items()):
        counted = _check_arrow(version_dir, rel, entry, report)
        if counted is not None:
            rows[rel] = counted
    for rel in sorted(p for p in on_disk - set(listed) if p.endswith(".arrow")):
        report.add(rel, "extra Arrow file the manifest does not list")
    _check_split_counts(manifest, rows, report)
    _check_other_files(version_dir, manifest, on_disk, report)
    extras = {rel: (version_dir / rel).read_bytes() for rel in sorted(on_disk) if _is_extra_file(rel)}
    entries = {rel: e for rel, e in listed.items() if isinstance(e, dict) and isinstance(e.get("sha256"), str)}
    if content_hash(entries, extras) != manifest.get("content_sha256"):
        report.add(MANIFEST, "content_sha256 does not match the listed files (the manifest or a file was edited)")
    report.files_checked = len(on_disk)
    return report
