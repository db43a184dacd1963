"""Reading a source's files into one Arrow table per file, through `datasets.load_dataset`.

Each file becomes its own split of a `load_dataset` call, so normalizers know which file a row came
from (MMLU's subject and Anthropic's behaviour are file names). Files not in UTF-8 (the quotes file is
cp1252) are transcoded first, because the generic JSON loader ignores `encoding` for JSON arrays. MATH
(one small JSON per problem) is read directly into a single part with a `_file` column: 12,500
`load_dataset` splits would take minutes for no benefit. A JSON Lines file that does not parse is read
line by line so that one broken line costs one row, counted with its reason, not the whole source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.errors import GeniesError
from builders.sources.mirror import MirrorFiles
from builders.sources.spec import SourceSpec

_FILES_PER_CALL = 32


@dataclass(frozen=True)
class Part:
    """The rows of one upstream file, as read (before normalization)."""

    relpath: str
    table: pa.Table


@dataclass
class Rejects:
    """Rows dropped while reading or normalizing, with the reason for each (never dropped silently)."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)
    max_examples: int = 20

    def add(self, where: str, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"where": where, "reason": reason})

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "reasons": dict(sorted(self.reasons.items())), "examples": self.examples}


class SourceFormatError(GeniesError):
    """An upstream file that cannot be read as the spec says (wrong encoding, not CSV/JSON, ...)."""


def read_parts(spec: SourceSpec, files: MirrorFiles, rejects: Rejects, scratch: Path) -> list[Part]:
    """Read every file of a source into a `Part`; malformed JSON Lines rows go to `rejects`.

    The tables may be memory-mapped from `scratch`, which must outlive them.
    """
    from datasets.exceptions import DatasetGenerationError

    if spec.format == "json_files":
        return [_read_json_documents(spec, files)]
    paths = [_as_utf8(spec, files.root / relpath, scratch / f"utf8-{i}") for i, relpath in enumerate(files.relpaths)]
    try:
        tables = _load_with_datasets(spec, paths, scratch)
    except DatasetGenerationError as exc:
        if spec.format != "json":
            raise SourceFormatError(
                f"source {spec.name!r}: cannot read {files.root}/{spec.folder} as {spec.format}: {_root_cause(exc)}",
                "check that the mirror holds the original upstream files",
            ) from exc
        tables = [_read_json_lines(spec, path, relpath, rejects, exc) for path, relpath in zip(paths, files.relpaths)]
    return [Part(relpath, table) for relpath, table in zip(files.relpaths, tables)]


def _load_with_datasets(spec: SourceSpec, paths: list[Path], scratch: Path) -> list[pa.Table]:
    """One table per file; `_FILES_PER_CALL` files per `load_dataset` call, since its cost grows with splits squared."""
    import datasets

    options = dict(spec.options)
    if "features" in options:
        options["features"] = datasets.Features({k: datasets.Value(v) for k, v in options["features"].items()})
    tables = []
    with _quiet_progress():
        for start in range(0, len(paths), _FILES_PER_CALL):
            batch = paths[start : start + _FILES_PER_CALL]
            data_files = {f"part{i}": str(path) for i, path in enumerate(batch)}
            loaded = datasets.load_dataset(spec.format, data_files=data_files, cache_dir=str(scratch / "hf"), **options)
            tables.extend(loaded[f"part{i}"].data.table for i in range(len(batch)))
    return tables


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """`load_dataset` prints a progress bar per split; ours are enough."""
    import datasets.utils as ds_utils
    from datasets.utils import logging as ds_logging

    was_enabled = not ds_utils.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    ds_utils.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(verbosity)
        if was_enabled:
            ds_utils.enable_progress_bars()


def _as_utf8(spec: SourceSpec, path: Path, copy_stem: Path) -> Path:
    """The file itself when it is UTF-8, else a UTF-8 copy at `copy_stem` decoded with the spec's encoding."""
    if spec.encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        return path
    try:
        text = path.read_bytes().decode(spec.encoding)
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"source {spec.name!r}: {path} is not valid {spec.encoding} ({exc.reason} at byte {exc.start})",
            "the mirror file differs from the upstream one; restore the original file",
        ) from exc
    copy = copy_stem.with_suffix(path.suffix)
    copy.write_text(text, encoding="utf-8")
    return copy


def _read_json_lines(spec: SourceSpec, path: Path, relpath: str, rejects: Rejects, error: Exception) -> pa.Table:
    """Fallback for a JSON Lines file the fast reader refused: keep the good lines, count the bad."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"source {spec.name!r}: {relpath} is not UTF-8 text",
            "set `encoding` in its spec, or restore the original file",
        ) from exc
    if lines and lines[0].lstrip().startswith("["):
        raise SourceFormatError(
            f"source {spec.name!r}: cannot read the JSON array in {relpath}: {_root_cause(error)}",
            "restore the original file",
        ) from error
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            rejects.add(f"{relpath}:{number}", f"invalid JSON line ({exc.msg})")
            continue
        if not isinstance(row, dict):
            rejects.add(f"{relpath}:{number}", "JSON line is not an object")
            continue
        rows.append(row)
    if not rows and lines:
        raise SourceFormatError(
            f"source {spec.name!r}: no readable JSON rows in {relpath}", "restore the original file"
        )
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceFormatError(f"source {spec.name!r}: rows of {relpath} have inconsistent types: {exc}") from exc


def _read_json_documents(spec: SourceSpec, files: MirrorFiles) -> Part:
    """One JSON object per file, gathered into a single part; `_file` holds each object's relative path."""
    documents = []
    for relpath in files.relpaths:
        path = os.path.join(files.root, relpath)
        try:
            with open(path, "rb") as handle:
                document = json.loads(handle.read().decode(spec.encoding))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceFormatError(
                f"source {spec.name!r}: {path} is not a {spec.encoding} JSON document: {exc}"
            ) from exc
        if not isinstance(document, dict):
            raise SourceFormatError(
                f"source {spec.name!r}: {path} holds a JSON {type(document).__name__}, not an object"
            )
        documents.append({**document, "_file": relpath})
    return Part(spec.folder, pa.Table.from_pylist(documents))


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
