"""Source specs: one TOML file per raw upstream in `sources/`, read into `SourceSpec`.

A spec says what the upstream is (title, license, citation, homepage), where it lives (Hub id, URL,
revision, and the base that `genies sources pull` fetches from), how to read it (format, encoding, the
files' paths inside a mirror, extra `datasets.load_dataset` options) and which normalizer turns it into
the documented raw table. The sha256 of every file lives beside the spec in `<name>.sha256`, in the
format `sha256sum -c` reads, so a mirror can be checked with standard tools too.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from builders.errors import GeniesError, check_name
from builders.resources import SOURCES_DIR

READ_FORMATS = ("csv", "json", "text", "parquet", "json_files")


@dataclass(frozen=True)
class Upstream:
    """Where the data comes from on a machine with network access."""

    hub_id: str = ""
    hub_config: str = ""
    url: str = ""
    revision: str = ""
    fetch: str = ""
    note: str = ""


@dataclass(frozen=True)
class SourceSpec:
    """One raw upstream: identity, license, location and how to read and normalize it."""

    name: str
    title: str
    license: str
    citation: str
    homepage: str
    normalizer: str
    normalizer_version: int
    format: str
    mirror_path: tuple[str, ...]
    encoding: str = "utf-8"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    upstream: Upstream = Upstream()
    checksums: dict[str, str] = field(default_factory=dict, hash=False)
    spec_path: Path | None = None

    @property
    def folder(self) -> str:
        """The top folder of this source inside a mirror (e.g. `mmlu`)."""
        return self.mirror_path[0].split("/", 1)[0]

    @property
    def pinned(self) -> bool:
        """True when the content is pinned by recorded checksums (an upstream revision alone cannot be verified)."""
        return bool(self.checksums)

    @cached_property
    def revision(self) -> str:
        """`sha256:` + a digest over the recorded checksums; empty for an unpinned source."""
        return "sha256:" + checksum_digest(self.checksums) if self.checksums else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "license": self.license,
            "homepage": self.homepage,
            "citation": self.citation,
            "revision": self.revision or None,
            "pinned": self.pinned,
            "upstream_revision": self.upstream.revision or None,
            "files": len(self.checksums) or None,
            "hub_id": self.upstream.hub_id or None,
            "url": self.upstream.url or None,
            "mirror_path": list(self.mirror_path),
        }


def checksum_digest(checksums: dict[str, str]) -> str:
    """One digest for a set of files: sha256 over the sorted `sha256  path` lines."""
    lines = "".join(f"{digest}  {path}\n" for path, digest in sorted(checksums.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def parse_checksum_file(path: Path) -> dict[str, str]:
    """Read a `sha256sum` file (`<hex>  <relative path>` per line) into {path: hex}."""
    checksums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, relpath = line.partition("  ")
        if not sep or len(digest) != 64:
            raise GeniesError(
                f"{path}:{number}: not a `sha256  path` line: {line!r}", "regenerate it with `genies sources lock`"
            )
        checksums[relpath.strip()] = digest.lower()
    return checksums


def format_checksum_file(checksums: dict[str, str]) -> str:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(checksums.items()))


def read_spec(path: Path) -> SourceSpec:
    """Parse one spec file; a missing or wrong field is an error naming the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        read = data["read"]
        name = data["name"]
        checksum_file = path.with_suffix(".sha256")
        spec = SourceSpec(
            name=name,
            title=data["title"],
            license=data["license"],
            citation=data.get("citation", "").strip(),
            homepage=data.get("homepage", ""),
            normalizer=data.get("normalizer", name),
            normalizer_version=int(data.get("normalizer_version", 1)),
            format=read["format"],
            mirror_path=tuple(read["mirror_path"]),
            encoding=read.get("encoding", "utf-8"),
            options=dict(read.get("options", {})),
            upstream=Upstream(**data.get("upstream", {})),
            checksums=parse_checksum_file(checksum_file) if checksum_file.exists() else {},
            spec_path=path,
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise GeniesError(f"source spec {path} is invalid: {exc!r}", "see docs/sources.md for the spec format") from exc
    if spec.format not in READ_FORMATS:
        raise GeniesError(
            f"source spec {path}: unknown format {spec.format!r}", f"use one of {', '.join(READ_FORMATS)}"
        )
    if path.stem != spec.name:
        raise GeniesError(f"source spec {path} declares name {spec.name!r}", f"name the file {spec.name}.toml")
    return spec


@cache
def _specs(directory: Path) -> dict[str, SourceSpec]:
    return {spec.name: spec for spec in map(read_spec, sorted(directory.glob("*.toml")))}


def list_sources(directory: Path = SOURCES_DIR) -> list[SourceSpec]:
    """Every source spec, sorted by name (for the dataset card, the manifest and `genies sources list`)."""
    return list(_specs(Path(directory)).values())


def source_spec(name: str, directory: Path = SOURCES_DIR) -> SourceSpec:
    """The spec of source `name`; an unknown name is an error suggesting the closest ones."""
    specs = _specs(Path(directory))
    return specs[check_name(name, specs, "source")]
