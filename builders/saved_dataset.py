"""One split written exactly as `datasets.Dataset(table, fingerprint=f).save_to_disk(path, num_shards=1)`
writes it, without building a `Dataset` first.

Why: a version holds a hundred and more splits, and `Dataset(...)` plus `save_to_disk` spend about 30 ms
of fixed CPU on each (feature conversion and checks, a deep copy of the info, a shard selection, progress
bookkeeping) before and around the one thing that matters, the Arrow writer. That fixed cost was as much
as the rest of an import of the full release.

What is written is the contract of DESIGN §3.2 (`load_from_disk` reads it), so every byte comes from the
same public `datasets` objects `save_to_disk` uses: the Arrow file from `ArrowWriter` with the features of
the table's schema, fed in the same batches; `dataset_info.json` from `asdict(DatasetInfo(features=...))`;
`state.json` with the keys and values of a fresh, unformatted dataset. tests/test_saved_dataset.py checks
byte identity against `save_to_disk` itself, so a `datasets` upgrade that changes its layout fails there.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from datasets import Features

DATA_FILE = "data-00000-of-00001.arrow"  # save_to_disk's name of shard 0 of 1
STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"




def _batch_size(table: pa.Table) -> int:
    """Rows per written record batch, chosen as `save_to_disk` chooses it (at most 1000, fewer for big rows)."""
    from datasets import config
    from datasets.arrow_writer import get_writer_batch_size_from_data_size

    if table.nbytes == 0:
        return int(config.DEFAULT_MAX_BATCH_SIZE)
    return min(int(config.DEFAULT_MAX_BATCH_SIZE), get_writer_batch_size_from_data_size(table.num_rows, table.nbytes))


def _state(fingerprint: str) -> dict[str, Any]:
    """The state `save_to_disk` records for a dataset with no format set, no split and one shard."""
    return {
        "_data_files": [{"filename": DATA_FILE}],
        "_fingerprint": fingerprint,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }


def _info(features: Features) -> dict[str, Any]:
    """`DatasetInfo` as `save_to_disk` dumps it: only the first level of keys sorted (nested feature fields
    keep their order)."""
    from datasets import DatasetInfo
    from datasets.utils.py_utils import asdict

    info = asdict(DatasetInfo(features=features))
    return {key: info[key] for key in sorted(info)}


@dataclass(frozen=True)
class _Layout:
    """What the writing of a split needs from its schema, worked out once per schema (see `_layout`)."""

    features: Features
    info_json: str  # dataset_info.json
    embed: bool  # whether a column can hold files to embed (images, audio...)
    schema: pa.Schema  # the schema the writer casts every batch to


@functools.lru_cache(maxsize=16)
def _layout(serialized_schema: bytes) -> _Layout:
    """The features of a schema and what follows from them, computed once per schema: a version's record
    splits all share one, and converting it is most of `datasets`' fixed cost.

    Keyed by the serialized schema, metadata and nullability included, since both change the features.
    `save_to_disk` always asks the writer to embed local files; where no column can hold one, embedding
    returns the same arrays, so the writer is spared another conversion of the features per split."""
    from datasets import Features
    from datasets.features.features import require_storage_embed

    features = Features.from_arrow_schema(pa.ipc.read_schema(pa.py_buffer(serialized_schema)))
    return _Layout(features, json.dumps(_info(features), indent=2), require_storage_embed(features),
                   pa.schema(features.type))


def save_split(table: pa.Table, path: Path, fingerprint: str) -> None:
    """Write `table` to the folder `path` as `Dataset(table, fingerprint=fingerprint).save_to_disk(path,
    num_shards=1)` would, byte for byte.

    Like `Dataset(...)`, the table is first cast to the features' schema (which differs from a record
    table's in nullability only), here by pyarrow in one call, so the writer's own per-batch cast finds
    nothing left to convert."""
    from datasets.arrow_writer import ArrowWriter
    from datasets.table import table_iter

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    layout = _layout(table.schema.serialize().to_pybytes())
    batch = _batch_size(table)
    with ArrowWriter(features=layout.features, path=str(path / DATA_FILE), embed_local_files=layout.embed) as writer:
        for rows in table_iter(table.cast(layout.schema), batch):
            writer.write_table(rows)
        writer.finalize()
    (path / STATE_FILE).write_text(json.dumps(_state(fingerprint), indent=2, sort_keys=True), encoding="utf-8")
    (path / INFO_FILE).write_text(layout.info_json, encoding="utf-8")
