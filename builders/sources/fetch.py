"""Fetching upstream files over the network into the cache's own mirror (`<cache>/mirror`).

A spec's `upstream.fetch` is the base (an `hf://datasets/<id>@<revision>/` path or an https URL) that
its mirror layout resolves against: `mmlu/dev/x.csv` is fetched from `<fetch>/dev/x.csv`. Files land in
a temporary folder that is renamed into place once complete, then go through the same checksum
verification as any mirror. Upstreams published only as archives have no `fetch` and need a mirror.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from builders.sources.mirror import SourceUnavailable
from builders.sources.spec import SourceSpec

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

MIRROR_HINT = (
    "put the upstream files in a mirror directory (layout in docs/sources.md) and pass --mirror DIR "
    "or set GENIES_MIRROR, or run `genies sources pull` once on a machine with network access"
)


def fetch_upstream(spec: SourceSpec, mirror_root: Path) -> None:
    """Download a source's files into `mirror_root/<folder>`; any failure is `SourceUnavailable`."""
    if not spec.upstream.fetch:
        where = spec.upstream.url or spec.upstream.hub_id or spec.homepage
        raise SourceUnavailable(
            f"source {spec.name!r} is published as an archive ({where}) and cannot be fetched file by file", MIRROR_HINT
        )
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(spec.upstream.fetch.rstrip("/"))
        with tempfile.TemporaryDirectory(
            dir=_ensure(mirror_root), prefix=f".{spec.folder}-", ignore_cleanup_errors=True
        ) as staging:
            for pattern in spec.mirror_path:
                _fetch_pattern(fs, base, pattern.split("/", 1)[1], Path(staging))
            target = mirror_root / spec.folder
            shutil.rmtree(target, ignore_errors=True)
            Path(staging).rename(target)
    except SourceUnavailable:
        raise
    except Exception as exc:
        raise SourceUnavailable(
            f"source {spec.name!r}: cannot fetch {spec.upstream.fetch} ({type(exc).__name__}: {exc})", MIRROR_HINT
        ) from exc


def _fetch_pattern(fs: AbstractFileSystem, base: str, pattern: str, staging: Path) -> None:
    remote = f"{base}/{pattern}"
    paths = fs.glob(remote) if glob.has_magic(pattern) else [remote]
    if not paths:
        raise SourceUnavailable(f"nothing upstream matches {remote}", MIRROR_HINT)
    for path in paths:
        local = staging / path[len(base) + 1 :]
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(local))


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
