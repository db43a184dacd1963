"""The Hub repository a version becomes: Parquet per config and split, `manifest.json`, and a card.

Layout (what `load_dataset(repo, config)` reads through the card's `configs:`):

    data/<distribution>/{train,test}-00000-of-00001.parquet   one config per distribution
    data/pairs/{train,test}-00000-of-00001.parquet            the pairwise view of every distribution
    data/shifts/train-00000-of-00001.parquet                  the shift catalog (one split)
    data/llm_requests/train-00000-of-00001.parquet            the LLM answers the version was made from, the
                                                              version's own file unchanged (not a viewer config)
    manifest.json                                             the version's build manifest, unchanged
    README.md                                                 the dataset card (see `card.py`)

Why the Parquet bytes are deterministic: the rows come from the version's immutable Arrow files in their
stored order, the schema carries only the `datasets` features as metadata, and the writer options are
fixed. Identical versions therefore give identical files, which is what makes a republish a no-op.
Content-defined chunking keeps unchanged pages byte-identical between versions, so the Hub's Xet storage
deduplicates them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from builders.errors import GeniesError
from builders.export import MANIFEST, Version
from builders.schema import PAIRWISE_SCHEMA, pairwise_view

SPLITS = ("train", "test")
PAIRS_CONFIG = "pairs"
SHIFTS_CONFIG = "shifts"
RESERVED_CONFIGS = (PAIRS_CONFIG, SHIFTS_CONFIG)
DATA_DIR = "data"
CARD = "README.md"


@dataclass(frozen=True)
class StagedFile:
    """One Parquet file of the repository and what the card says about it."""

    config: str
    split: str
    path: str
    rows: int
    arrow_bytes: int
    parquet_bytes: int
    features: Features


@dataclass
class StagedRepository:
    """A repository written to a local folder, ready to be pushed or inspected."""

    root: Path
    repo_id: str
    version: Version
    data: list[StagedFile] = field(default_factory=list)

    @property
    def configs(self) -> list[str]:
        return sorted({f.config for f in self.data})

    def files(self) -> list[str]:
        """Every path of the repository (relative, POSIX), README included once it is written."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def sha256(self, path: str) -> str:
        return hashlib.sha256((self.root / path).read_bytes()).hexdigest()


def data_file_path(config: str, split: str) -> str:
    return f"{DATA_DIR}/{config}/{split}-00000-of-00001.parquet"


def data_files_pattern(config: str, split: str) -> str:
    """The glob the card's `configs:` entry uses, so a future resharding needs no card change."""
    return f"{DATA_DIR}/{config}/{split}-*.parquet"


@lru_cache(maxsize=16)
def _features_of(schema: pa.Schema) -> tuple[Features, pa.Schema]:
    """The `datasets` features of a schema and the schema carrying them as metadata (cached: every
    distribution shares the record schema, and deriving features is slow)."""
    features = Features.from_arrow_schema(schema)
    return features, features.arrow_schema


def write_parquet(table: pa.Table, path: Path) -> Features:
    """Write `table` with fixed options and the `datasets` features as schema metadata; return the features."""
    features, schema = _features_of(table.schema.remove_metadata())
    table = table.cast(schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_content_defined_chunking=True, write_page_index=True)
    return features


def _check_config_names(version: Version) -> None:
    clashes = sorted(set(version.distributions) & set(RESERVED_CONFIGS))
    if clashes:
        raise GeniesError(
            f"distribution name(s) {', '.join(clashes)} clash with the reserved Hub configs {RESERVED_CONFIGS}",
            "rename the distribution in the build before publishing",
        )
    if not version.distributions:
        raise GeniesError(f"version {version.path} has no distributions", "build or import a version first")


def _pairs(version: Version, split: str) -> pa.Table:
    tables = [pairwise_view(version.table(name, split)) for name in version.distributions]
    return pa.concat_tables(tables) if tables else PAIRWISE_SCHEMA.empty_table()


def config_tables(version: Version) -> Iterator[tuple[str, str, Callable[[], pa.Table]]]:
    """(config, split, loader) for every file of the repository, in a fixed order; loaders are lazy."""
    for name in version.distributions:
        for split in SPLITS:
            yield name, split, lambda name=name, split=split: version.table(name, split)
    for split in SPLITS:
        yield PAIRS_CONFIG, split, lambda split=split: _pairs(version, split)
    yield SHIFTS_CONFIG, "train", version.shifts


def stage_repository(
    version: Version,
    repo_id: str,
    root: Path,
    on_file: Callable[[str], None] | None = None,
) -> StagedRepository:
    """Write every data file and `manifest.json` of the repository under `root` (the card comes later)."""
    _check_config_names(version)
    staged = StagedRepository(Path(root), repo_id, version)
    for config, split, load in config_tables(version):
        table = load()
        relpath = data_file_path(config, split)
        features = write_parquet(table, staged.root / relpath)
        staged.data.append(StagedFile(
            config, split, relpath, table.num_rows, table.nbytes, (staged.root / relpath).stat().st_size, features,
        ))
        if on_file is not None:
            on_file(relpath)
    _stage_llm_requests(version, staged.root, on_file)
    (staged.root / MANIFEST).write_bytes((version.path / MANIFEST).read_bytes())
    return staged


def _stage_llm_requests(version: Version, root: Path, on_file: Callable[[str], None] | None) -> None:
    """The version's LLM answers, byte for byte (so their sha256 is the manifest's and `--replay` can check
    it). Left out of the card's `configs:`, so the dataset viewer does not show them by default."""
    from builders.llm.replay import EXPORT_FILE, HUB_FILE

    source = version.path / EXPORT_FILE
    if not source.exists():
        return
    (root / HUB_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / HUB_FILE).write_bytes(source.read_bytes())
    if on_file is not None:
        on_file(HUB_FILE)
