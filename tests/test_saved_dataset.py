"""`save_split` writes every file byte for byte as `datasets.Dataset(...).save_to_disk` does (DESIGN §3.2)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from builders.catalog import load_catalog
from builders.export import Version
from builders.release import import_release
from builders.saved_dataset import DATA_FILE, save_split
from builders.schema import RECORD_SCHEMA, Provenance, Record, records_to_table


def _records(n: int) -> list[Record]:
    """Records with nested `meta`, missing optional columns and non-ASCII text."""
    return [
        Record(
            distribution="toy",
            prompt=f"Frage {i}: wie heißt das?",
            responses=[f"right {i}", f"wrong {i}", "ünïcode"][: 2 + i % 2],
            preferred=i % 2,
            group=f"toy:{i // 3}",
            provenance=Provenance(source="toy", revision="r1", row_key=str(i), llm_requests=("a", "b")[: i % 3]),
            instruction=None if i % 4 else f"instruction {i}",
            meta={"i": i, "nested": {"list": [i, None, {"deep": "x" * (i % 5)}]}},
        )
        for i in range(n)
    ]


def _save_to_disk(table: pa.Table, path: Path, fingerprint: str) -> None:
    datasets.Dataset(table, fingerprint=fingerprint).save_to_disk(str(path), num_shards=1)


def _assert_same_files(table: pa.Table, tmp_path: Path, fingerprint: str = "0123456789abcdef") -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    save_split(table, ours, fingerprint)
    _save_to_disk(table, theirs, fingerprint)
    expected = sorted(p.name for p in theirs.iterdir())
    assert sorted(p.name for p in ours.iterdir()) == expected == [DATA_FILE, "dataset_info.json", "state.json"]
    for name in expected:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    assert datasets.load_from_disk(str(ours)).data.table.equals(datasets.load_from_disk(str(theirs)).data.table)


@pytest.mark.parametrize("rows", [0, 1, 7, 2500])
def test_record_tables_match_save_to_disk(tmp_path, rows):
    """Empty, small, and several record batches (save_to_disk writes at most 1000 rows per batch)."""
    _assert_same_files(records_to_table(_records(rows)), tmp_path)


def test_small_row_groups_and_chunked_input_match(tmp_path, monkeypatch):
    """With `datasets`' row-group size lowered, big rows make both writers pick fewer rows per batch; the
    input's own chunks do not change the file."""
    monkeypatch.setattr(datasets.config, "MAX_ROW_GROUP_SIZE", "2KB")
    table = pa.concat_tables([records_to_table(_records(50)), records_to_table(_records(31))])
    assert table.column("id").num_chunks == 2
    _assert_same_files(table, tmp_path / "chunked")
    prompts = table.column("prompt").combine_chunks()
    misaligned = table.set_column(2, "prompt", pa.chunked_array([prompts.slice(0, 13), prompts.slice(13)]))
    _assert_same_files(misaligned, tmp_path / "misaligned")


def test_other_schemas_match(tmp_path):
    """The shift catalog's table, and a schema carrying `datasets`' own feature metadata."""
    _assert_same_files(load_catalog().shifts_table(), tmp_path / "shifts")
    features = datasets.Features({"label": datasets.ClassLabel(names=["no", "yes"]), "text": datasets.Value("string")})
    labelled = datasets.Dataset.from_dict({"label": [1, 0], "text": ["a", "b"]}, features=features).data.table
    _assert_same_files(labelled, tmp_path / "labelled")
    loaded = datasets.load_from_disk(str(tmp_path / "labelled" / "ours"))
    assert loaded.features["label"].names == ["no", "yes"]


def test_files_to_embed_are_embedded_as_save_to_disk_does(tmp_path):
    """A column of local files (here an `Image` by path) is written with the file's bytes in it."""
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"not really a png, never decoded")
    features = datasets.Features({"picture": datasets.Image(), "caption": datasets.Value("string")})
    table = datasets.Dataset.from_dict({"picture": [{"path": str(picture), "bytes": None}], "caption": ["c"]},
                                       features=features).data.table
    _assert_same_files(table, tmp_path / "embedded")
    with pa.memory_map(str(tmp_path / "embedded" / "ours" / DATA_FILE)) as source:
        written = pa.ipc.open_stream(source).read_all()
    assert written.column("picture")[0]["bytes"].as_py() == picture.read_bytes()


def test_fingerprint_is_recorded(tmp_path):
    save_split(RECORD_SCHEMA.empty_table(), tmp_path, "feedbeeffeedbeef")
    assert json.loads((tmp_path / "state.json").read_text())["_fingerprint"] == "feedbeeffeedbeef"
    assert datasets.load_from_disk(str(tmp_path)).num_rows == 0


def test_imported_release_splits_match_save_to_disk(release_sample, tmp_path):
    """Every split of an imported release sample, rewritten by save_to_disk with its recorded fingerprint."""
    version = Version.open(import_release(release_sample, tmp_path / "out", "1.0.0").result.path)
    split_dirs = sorted(p.parent for p in version.path.rglob(DATA_FILE))
    assert len(split_dirs) > 100
    for index, folder in enumerate(split_dirs):
        fingerprint = json.loads((folder / "state.json").read_text())["_fingerprint"]
        with pa.memory_map(str(folder / DATA_FILE)) as source:
            table = pa.ipc.open_stream(source).read_all()
        theirs = tmp_path / "theirs" / str(index)
        _save_to_disk(table.replace_schema_metadata(None), theirs, fingerprint)
        for name in (DATA_FILE, "dataset_info.json", "state.json"):
            assert (folder / name).read_bytes() == (theirs / name).read_bytes(), f"{folder} {name}"
