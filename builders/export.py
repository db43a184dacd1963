"""Versioned, immutable Arrow artifacts (DESIGN §3.2).

Layout of `<root>/<dataset>/<version>/`:

    distributions/<name>/      a DatasetDict as `save_to_disk` saves it (splits train, test; builders.saved_dataset)
    shifts/                    the shift catalog as a Dataset
    manifest.json              files with sha256 and rows, fingerprints, sources, templates, packages...
    README.md                  the dataset card, rendered from templates/card/README.md.j2
    (extra files such as rejects.jsonl or changelog.json, when the producer has them)

Why the data files are byte-identical for identical input: rows are written in a fixed order (sorted by
id by the pipeline), the schema is fixed (`RECORD_SCHEMA`), every split is written as one shard, the
dataset fingerprint is derived from the content instead of being random, and nothing time- or
machine-dependent goes into a data file. `manifest.json` records the command line and package versions,
so it is not part of the content hash; `content_sha256` covers the data files only.

A version is written to a hidden temporary directory next to its final place and renamed into place in
one step, so no reader ever sees a half-written version. Such `.tmp-*` folders are never versions: a
build killed mid-export leaves one, and the next write of the same dataset removes it.

Dataset and version names are folder names, so they follow one pattern (`NAME_RULE`): letters, digits
and `._+-`, not starting with `-` or `.`, at most 100 characters; the version's folder must resolve
inside the artifacts root. Reading a version verifies it against its manifest first (`builders.verify`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from filelock import FileLock, Timeout

from builders.errors import GeniesError
from builders.saved_dataset import save_split
from builders.schema import RECORD_SCHEMA, Record, records_to_table
from builders.templating import render
from builders.verify import (
    CARD,
    MANIFEST,
    content_hash,
    read_manifest,
    sha256_file,
    verify_version,
)

if TYPE_CHECKING:
    import datasets

ARTIFACTS_ENV = "GENIES_ARTIFACTS"
TMP_PREFIX = ".tmp-"
NAME_RULE = "letters, digits and ._+- only, not starting with - or ., at most 100 characters"
_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,99}")
FORMAT = "genies-artifact/1"
_LOCKS: dict[str, FileLock] = {}
_PACKAGES = ("genies-builder", "datasets", "pyarrow", "polars", "jinja2", "openai", "huggingface_hub")


@dataclass
class DistributionExport:
    """One distribution's splits plus what the manifest and card should say about it."""

    name: str
    splits: Mapping[str, list[Record] | pa.Table]
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {revision, license}
    templates: list[str] = field(default_factory=list)
    llm_models: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    dedupe_sources: list[str] = field(default_factory=list)  # read to remove duplicates, not a row's source


@dataclass
class ExportResult:
    path: Path
    status: str  # "written" or "unchanged"
    manifest: dict[str, Any]


def check_name(value: str, option: str) -> str:
    """A dataset or version name that is safe as one folder name (see `NAME_RULE`), else a clear error."""
    if not _NAME.fullmatch(value or ""):
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        raise GeniesError(f"invalid {option} {shown!r}: {NAME_RULE}", "use something like 1.0.0 or my-dataset")
    return value


def make_dir(path: Path, what: str) -> Path:
    """`mkdir -p` with a clear error when a part of the path is a file or cannot be created."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise GeniesError(f"{what} {path} cannot be a folder: {exc.filename or path} is a file",
                          f"pass a folder for the {what}, or move the file away") from exc
    except OSError as exc:
        raise GeniesError(f"cannot create the {what} {path}: {exc.strerror}",
                          "pass a folder you can write to") from exc
    return Path(path)


def version_dir(root: Path, dataset: str, version: str) -> Path:
    """Where `dataset`/`version` lives under `root`: names checked, and the result inside `root`."""
    check_name(dataset, "--dataset")
    check_name(version, "--version")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GeniesError(f"--out {root} is a file, not a folder", "pass a folder (it is created if missing)")
    final = root / dataset / version
    if not final.resolve().is_relative_to(root.resolve()):
        raise GeniesError(f"{final} resolves outside --out {root}", "a dataset folder must not link elsewhere")
    return final


def version_lock(root: Path, dataset: str, version: str) -> FileLock:
    """The lock that serializes writers of one version (`.<version>.lock` beside it); reentrant in a process,
    so a build that holds it may export under it."""
    path = (make_dir(Path(root) / dataset, "--out") / f".{version}.lock").resolve()
    lock = _LOCKS.get(str(path))
    if lock is None:
        lock = _LOCKS[str(path)] = FileLock(str(path))
    return lock


@contextmanager
def writing_version(root: Path, dataset: str, version: str) -> Iterator[Path]:
    """Hold the version's lock (refusing at once if another process holds it) and remove stale temporary
    folders of the dataset; yields the version's final path."""
    final = version_dir(root, dataset, version)
    lock = version_lock(root, dataset, version)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise GeniesError(
            f"another genies process is writing {final} (lock {lock.lock_file} is held)",
            "wait for it to finish, or choose another --version",
        ) from exc
    try:
        if final.exists() and not (final / MANIFEST).is_file():
            raise GeniesError(f"{final} exists but holds no {MANIFEST}, so it is not a version",
                              "choose another --version, or remove that folder")
        remove_stale_tmp(final.parent)
        yield final
    finally:
        lock.release()


def remove_stale_tmp(dataset_dir: Path) -> list[Path]:
    """Remove `.tmp-<version>-*` folders left by a killed export, except those of a version another process
    is writing now (its lock is held); returns what was removed."""
    removed = []
    for tmp in sorted(dataset_dir.glob(f"{TMP_PREFIX}*")):
        version = tmp.name[len(TMP_PREFIX):].rsplit("-", 1)[0]
        if not tmp.is_dir() or not _NAME.fullmatch(version):
            continue
        lock = version_lock(dataset_dir.parent, dataset_dir.name, version)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
        finally:
            lock.release()
    return removed


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            continue
    return found


def _as_table(split: list[Record] | pa.Table) -> pa.Table:
    table = split if isinstance(split, pa.Table) else records_to_table(split)
    return table.cast(RECORD_SCHEMA) if table.schema != RECORD_SCHEMA else table


def _table_fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def _save_dataset(table: pa.Table, path: Path, tag: str) -> None:
    """Write a split as `Dataset(table, fingerprint=...).save_to_disk` does, with a content fingerprint."""
    ids = table.column("id").to_pylist() if "id" in table.column_names else [str(table.num_rows)]
    save_split(table, path, _table_fingerprint(tag, str(table.schema), *ids))


def _write_distribution(dist: DistributionExport, directory: Path) -> None:
    for split_name, split in dist.splits.items():
        _save_dataset(_as_table(split), directory / split_name, f"{dist.name}/{split_name}")
    (directory / "dataset_dict.json").write_text(json.dumps({"splits": list(dist.splits)}))


def _data_files(version_dir: Path) -> dict[str, dict[str, Any]]:
    """Every Arrow file of the version with its sha256 and row count, by path relative to the version."""
    files = {}
    for path in sorted(version_dir.rglob("*.arrow")):
        with pa.memory_map(str(path)) as source:
            rows = pa.ipc.open_stream(source).read_all().num_rows
        files[path.relative_to(version_dir).as_posix()] = {"sha256": sha256_file(path), "rows": rows}
    return files


def _distribution_summary(dist: DistributionExport) -> dict[str, Any]:
    return {
        "splits": {name: len(s) for name, s in dist.splits.items()},
        "sources": sorted(dist.sources),
        **({"dedupe_sources": sorted(dist.dedupe_sources)} if dist.dedupe_sources else {}),
        "licenses": sorted({s["license"] for s in dist.sources.values() if s.get("license")}),
        "templates": sorted(dist.templates),
        "llm_models": sorted(dist.llm_models),
        **({"notes": dist.notes} if dist.notes else {}),
    }


def _manifest(
    dataset: str,
    version: str,
    dists: list[DistributionExport],
    files: dict[str, dict[str, Any]],
    content: str,
    build_fingerprint: str | None,
    seed: int | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    sources: dict[str, dict[str, str]] = {}
    for d in dists:
        sources.update(d.sources)
    return {
        "format": FORMAT,
        "dataset": dataset,
        "version": version,
        "content_sha256": content,
        "build_fingerprint": build_fingerprint or content,
        "seed": seed,
        "distributions": {d.name: _distribution_summary(d) for d in sorted(dists, key=lambda d: d.name)},
        "sources": dict(sorted(sources.items())),
        "templates": sorted({t for d in dists for t in d.templates}),
        "llm_models": sorted({m for d in dists for m in d.llm_models}),
        "files": files,
        "packages": package_versions(),
        "command": " ".join(["genies", *sys.argv[1:]]) if sys.argv else "",
        **dict(extra),
    }


def _refuse_changed(final: Path, existing: dict[str, Any], files: dict[str, dict[str, Any]]) -> GeniesError:
    old = existing.get("files", {})
    changed = sorted(p for p in set(old) | set(files) if old.get(p, {}).get("sha256") != files.get(p, {}).get("sha256"))
    listed = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    return GeniesError(
        f"version {final} already exists with different content (changed: {listed or 'extra files'})",
        "versions are immutable: choose a new --version, or delete the old one if it was never published",
    )


def export_version(
    root: Path,
    dataset: str,
    version: str,
    distributions: list[DistributionExport],
    shifts: pa.Table,
    *,
    build_fingerprint: str | None = None,
    seed: int | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    card_context: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Write a version atomically; a no-op if identical content exists, an error if different content does.

    The version's lock is held throughout, and an existing version is verified before it is compared."""
    extra_files = dict(extra_files or {})
    with writing_version(root, dataset, version) as final:
        tmp = final.parent / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
        try:
            for dist in distributions:
                _write_distribution(dist, tmp / "distributions" / dist.name)
            _save_dataset(shifts, tmp / "shifts", "shifts")
            for rel, data in extra_files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            files = _data_files(tmp)
            content = content_hash(files, extra_files)
            if (final / MANIFEST).exists():
                existing = Version.open(final).manifest
                if existing.get("content_sha256") == content:
                    return ExportResult(final, "unchanged", existing)
                raise _refuse_changed(final, existing, files)
            manifest = _manifest(dataset, version, distributions, files, content, build_fingerprint, seed,
                                 {**(manifest_extra or {}), "other_files": _other_files(tmp)})
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            card = render("card/README.md.j2", manifest=manifest, shifts=shifts.to_pylist(), **(card_context or {}))
            (tmp / CARD).write_text(card)
            os.rename(tmp, final)
            return ExportResult(final, "written", manifest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _other_files(version_dir: Path) -> dict[str, str]:
    """sha256 of every file that is not Arrow data (datasets metadata, rejects, changelog, LLM answers), so
    `genies verify` covers every file but the manifest and the card rendered from it."""
    return {p.relative_to(version_dir).as_posix(): sha256_file(p)
            for p in sorted(version_dir.rglob("*")) if p.is_file() and p.suffix != ".arrow"}


def _has_manifest(path: Path) -> bool:
    try:
        return (path / MANIFEST).is_file()
    except OSError:  # a name too long for the file system, or a path through a file
        return False


def artifacts_root(given: str | Path | None = None) -> Path:
    """The artifacts root every command writes versions under and looks them up in: `given` (--out of
    build, import-release, repair and publish, --artifacts of the other reading commands), else
    $GENIES_ARTIFACTS read now, else ./artifacts."""
    return Path(given) if given else Path(os.environ.get(ARTIFACTS_ENV) or "artifacts")


def _refuse_ambiguous(ref: str | Path, places: list[Path]) -> None:
    """A relative `dataset/version` that names a version both from here and under the root is ambiguous."""
    found = list(dict.fromkeys(p.resolve() for p in places if _has_manifest(p)))
    if len(found) > 1:
        raise GeniesError(f"{ref!r} names several versions: {', '.join(str(p) for p in found)}",
                          "pass the full path of the one you mean (or --out/--artifacts for the root)")


def resolve_version(ref: str | Path, root: Path | None = None) -> Path:
    """Find a version directory from a path, `dataset/version`, or a bare version under the artifacts root."""
    root = artifacts_root(root)
    candidate = Path(ref)
    if not candidate.is_absolute():
        _refuse_ambiguous(ref, [candidate, root / candidate])
    for path in (candidate, root / candidate):
        if _has_manifest(path):
            if path.name.startswith(TMP_PREFIX):
                raise GeniesError(f"{path} is an unfinished export (a killed build left it), not a version",
                                  "the next build of this dataset removes it; pass a finished version")
            return path
    matches = sorted(p.parent for p in root.glob(f"*/{ref}/{MANIFEST}")
                     if not p.parent.name.startswith(".")) if root.is_dir() and _NAME.fullmatch(str(ref)) else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise GeniesError(
            f"version {ref!r} exists in several datasets: {', '.join(str(m) for m in matches)}",
            "pass dataset/version (one of " + ", ".join(m.relative_to(root).as_posix() for m in matches)
            + ") or the full path",
        )
    known = sorted(p.parent.relative_to(root).as_posix() for p in root.glob(f"*/*/{MANIFEST}")
                   if not p.parent.name.startswith(".")) if root.is_dir() else []
    hint = f"known versions under {root}: {', '.join(known)}" if known else "pass the path of a version directory"
    raise GeniesError(f"no version {ref!r} found (looked for {candidate}/{MANIFEST} and under {root})", hint)


@dataclass
class Version:
    """A read-only view of an exported version."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, ref: str | Path, root: Path | None = None, verify: bool = True) -> "Version":
        """The version `ref` names, verified against its manifest unless `verify` is off (only `genies
        verify` itself turns it off, to list every problem instead of refusing at the first)."""
        path = resolve_version(ref, root)
        if verify:
            verify_version(path).raise_if_failed()
        return cls(path, read_manifest(path))

    @property
    def distributions(self) -> list[str]:
        return sorted(self.manifest.get("distributions", {}))

    def load(self, name: str) -> datasets.DatasetDict:
        import datasets

        return datasets.load_from_disk(str(self.path / "distributions" / name))

    def table(self, name: str, split: str) -> pa.Table:
        """A split as a pyarrow table, memory-mapped (cheap even for large versions)."""
        files = sorted((self.path / "distributions" / name / split).glob("*.arrow"))
        tables = []
        for f in files:
            with pa.memory_map(str(f)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        return pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()

    def shifts(self) -> pa.Table:
        files = sorted((self.path / "shifts").glob("*.arrow"))
        with pa.memory_map(str(files[0])) as source:
            return pa.ipc.open_stream(source).read_all()
