"""Versioned, immutable Arrow artifacts (DESIGN §3.2).

Layout of `<root>/<dataset>/<version>/`:

    distributions/<name>/      a DatasetDict saved with `save_to_disk` (splits train, test)
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
one step, so no reader ever sees a half-written version.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from builders.errors import GeniesError
from builders.schema import RECORD_SCHEMA, Record, canonical_json, records_to_table
from builders.templating import render

if TYPE_CHECKING:
    import datasets

DEFAULT_ROOT = Path(os.environ.get("GENIES_ARTIFACTS", "artifacts"))
MANIFEST = "manifest.json"
FORMAT = "genies-artifact/1"
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


@dataclass
class ExportResult:
    path: Path
    status: str  # "written" or "unchanged"
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    import datasets  # imported on use: it costs seconds, and readers of a version only need pyarrow

    datasets.disable_progress_bars()
    ids = table.column("id").to_pylist() if "id" in table.column_names else [str(table.num_rows)]
    fingerprint = _table_fingerprint(tag, str(table.schema), *ids)
    datasets.Dataset(table, fingerprint=fingerprint).save_to_disk(str(path), num_shards=1)


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


def content_hash(files: Mapping[str, Mapping[str, Any]], extra_files: Mapping[str, bytes]) -> str:
    entries = [(p, f["sha256"]) for p, f in sorted(files.items())]
    entries += [(p, hashlib.sha256(b).hexdigest()) for p, b in sorted(extra_files.items())]
    return hashlib.sha256(canonical_json(entries).encode("utf-8")).hexdigest()


def _distribution_summary(dist: DistributionExport) -> dict[str, Any]:
    return {
        "splits": {name: _as_table(s).num_rows for name, s in dist.splits.items()},
        "sources": sorted(dist.sources),
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
    """Write a version atomically; a no-op if identical content exists, an error if different content does."""
    if not version or "/" in version or version.startswith("."):
        raise GeniesError(f"invalid version {version!r}", "use something like 1.0.0")
    extra_files = dict(extra_files or {})
    final = Path(root) / dataset / version
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
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
            existing = json.loads((final / MANIFEST).read_text())
            if existing.get("content_sha256") == content:
                return ExportResult(final, "unchanged", existing)
            raise _refuse_changed(final, existing, files)
        manifest = _manifest(
            dataset, version, distributions, files, content, build_fingerprint, seed, manifest_extra or {}
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        card = render("card/README.md.j2", manifest=manifest, shifts=shifts.to_pylist(), **(card_context or {}))
        (tmp / "README.md").write_text(card)
        os.rename(tmp, final)
        return ExportResult(final, "written", manifest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_version(ref: str | Path, root: Path | None = None) -> Path:
    """Find a version directory from a path, `dataset/version`, or a bare version under the artifacts root."""
    root = Path(root or DEFAULT_ROOT)
    candidate = Path(ref)
    if (candidate / MANIFEST).exists():
        return candidate
    if (root / candidate / MANIFEST).exists():
        return root / candidate
    matches = sorted(p.parent for p in root.glob(f"*/{ref}/{MANIFEST}")) if root.exists() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise GeniesError(
            f"version {ref!r} exists in several datasets: {', '.join(str(m) for m in matches)}",
            "pass dataset/version or the full path",
        )
    known = sorted(p.parent.relative_to(root).as_posix() for p in root.glob(f"*/*/{MANIFEST}")) if root.exists() else []
    hint = f"known versions under {root}: {', '.join(known)}" if known else "pass the path of a version directory"
    raise GeniesError(f"no version {ref!r} found (looked for {candidate}/{MANIFEST} and under {root})", hint)


@dataclass
class Version:
    """A read-only view of an exported version."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, ref: str | Path, root: Path | None = None) -> "Version":
        path = resolve_version(ref, root)
        return cls(path, json.loads((path / MANIFEST).read_text()))

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
