"""Local mirrors: directories holding upstream files in the layout of `../shared/sources`.

`--mirror DIR` or `GENIES_MIRROR` (several directories separated by `os.pathsep`) name them; the first
one that holds a source's folder wins. Files are checked against the sha256 recorded beside the spec, so
a mirror can never silently feed different data into a build.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from builders.errors import GeniesError
from builders.sources.spec import SourceSpec, checksum_digest

MIRROR_ENV = "GENIES_MIRROR"


class SourceUnavailable(GeniesError):
    """A source that cannot be loaded here: no mirror holds it, a file is missing, or the network failed.

    `source` names it (set by `load_source` when the raiser did not), so a build can say what it waits for.
    """

    def __init__(self, message: str, hint: str | None = None, source: str | None = None,
                 missing_file: str | None = None) -> None:
        super().__init__(message, hint)
        self.source = source
        self.missing_file = missing_file  # a pinned file the mirror lacks, as <mirror>/<relative path>


class ChecksumMismatch(GeniesError):
    """A mirrored file whose content differs from the checksum recorded in the spec."""


def mirror_dirs(mirror: str | Path | Iterable[str | Path] | None = None) -> list[Path]:
    """The mirror directories to search: the argument if given, else `GENIES_MIRROR`; each may list several."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "")
    if isinstance(mirror, (str, Path)):
        mirror = [mirror]
    dirs = [Path(part).expanduser() for m in mirror for part in str(m).split(os.pathsep) if part.strip()]
    for directory in dirs:
        if not directory.is_dir():
            raise SourceUnavailable(
                f"mirror directory {directory} does not exist",
                f"fix --mirror or {MIRROR_ENV} (several directories are separated by {os.pathsep!r})",
            )
    return dirs


def holding_mirror(spec: SourceSpec, mirrors: Iterable[Path]) -> Path | None:
    """The first mirror that has this source's folder (e.g. `mmlu/`), or None."""
    return next((m for m in mirrors if (m / spec.folder).is_dir()), None)


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _sha256_unchanged_file(path: str) -> str:
    """sha256 of a file, hashed once per process while its size and mtime stay the same.

    An unpinned source's revision is the digest of its files, so every load must know it; a build
    that reads SHP for three distributions should not hash a gigabyte three times.
    """
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


@dataclass(frozen=True)
class MirrorFiles:
    """The files of one source found in one mirror, with the checksum-derived revision."""

    root: Path
    relpaths: tuple[str, ...]
    revision: str
    verified: bool


def find_files(spec: SourceSpec, root: Path) -> list[str]:
    """Relative paths of the files matching the spec's `mirror_path` patterns, sorted."""
    found = {
        p
        for pattern in spec.mirror_path
        for p in glob.glob(pattern, root_dir=root)
        if os.path.isfile(os.path.join(root, p))
    }
    return sorted(p.replace(os.sep, "/") for p in found)


def collect_files(spec: SourceSpec, root: Path) -> MirrorFiles:
    """Find and checksum a source's files in `root`; missing, extra or altered files are errors."""
    relpaths = find_files(spec, root)
    if spec.checksums:
        _check_file_set(spec, root, relpaths)
        for relpath in relpaths:
            _verify(spec, root, relpath)
        return MirrorFiles(root, tuple(relpaths), spec.revision, verified=True)
    if not relpaths:
        raise SourceUnavailable(
            f"source {spec.name!r}: mirror {root} has no files matching {', '.join(spec.mirror_path)}",
            f"lay the upstream files out as docs/sources.md describes for {spec.name}",
            source=spec.name, missing_file=str(root / spec.mirror_path[0]),
        )
    observed = {p: _sha256_unchanged_file(os.path.join(root, p)) for p in relpaths}
    return MirrorFiles(root, tuple(relpaths), "sha256:" + checksum_digest(observed), verified=False)


def missing_files(spec: SourceSpec, root: Path) -> list[str]:
    """The pinned files of `spec` that mirror `root` lacks (existence only: nothing is hashed)."""
    return sorted(p for p in spec.checksums if not (root / p).is_file())


def _check_file_set(spec: SourceSpec, root: Path, relpaths: list[str]) -> None:
    missing = sorted(set(spec.checksums) - set(relpaths))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SourceUnavailable(
            f"source {spec.name!r}: mirror {root} lacks {missing[0]}{more}",
            "copy the complete upstream folder into the mirror, or point --mirror/GENIES_MIRROR at one that has it",
            source=spec.name, missing_file=f"{root / missing[0]}{more}",
        )
    extra = sorted(set(relpaths) - set(spec.checksums))
    if extra:
        raise ChecksumMismatch(
            f"source {spec.name!r}: mirror {root} has {len(extra)} file(s) the spec does not pin, e.g. {extra[0]}",
            "remove them, or if the upstream really added files run `genies sources lock` and review the diff",
        )


def _verify(spec: SourceSpec, root: Path, relpath: str) -> None:
    actual = sha256_file(os.path.join(root, relpath))
    expected = spec.checksums[relpath]
    if actual != expected:
        raise ChecksumMismatch(
            f"source {spec.name!r}: checksum mismatch for {root / relpath}: expected sha256 {expected}, got {actual}",
            "the mirror holds a different version of the upstream file; restore the original file",
        )


def lock_checksums(spec: SourceSpec, root: Path) -> dict[str, str]:
    """Checksums of the spec's files as found in `root` (what `genies sources lock` writes)."""
    relpaths = find_files(spec, root)
    if not relpaths:
        raise SourceUnavailable(f"source {spec.name!r}: no files matching {', '.join(spec.mirror_path)} in {root}")
    return {p: sha256_file(os.path.join(root, p)) for p in relpaths}
