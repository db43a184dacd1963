import json

import datasets
import pytest

from builders.catalog import load_catalog
from builders.errors import GeniesError
from builders.export import DistributionExport, Version, export_version
from builders.schema import (
    RECORD_SCHEMA,
    Provenance,
    Record,
    pairwise_view,
    records_to_table,
)
from builders.splits import balance_positions, group_split


def make_records(n: int, dist: str = "toy") -> list[Record]:
    return [
        Record(
            distribution=dist,
            prompt=f"Question {i}?",
            responses=[f"right {i}", f"wrong {i}", f"also wrong {i}"],
            preferred=0,
            group=f"toy:{i // 2}",
            provenance=Provenance(source="toy", revision="r1", row_key=str(i)),
            meta={"i": i},
        )
        for i in range(n)
    ]


def test_id_is_content_hash_independent_of_dispreferred_order():
    r = make_records(1)[0]
    shuffled = r.with_order([2, 0, 1])
    assert shuffled.preferred == 1 and shuffled.responses[1] == "right 0"
    assert shuffled.id == r.id
    assert r.id != make_records(2)[1].id
    assert r.scores == [1.0, 0.0, 0.0]


def test_record_problems():
    r = make_records(1)[0]
    assert r.problems() == []
    r.responses = ["same", "same"]
    assert "has duplicate responses" in r.problems()


def test_table_roundtrip_and_pairwise():
    records = make_records(3)
    table = records_to_table(records)
    assert table.schema == RECORD_SCHEMA
    pairs = pairwise_view(table)
    assert pairs.num_rows == 6
    assert set(pairs.column("chosen").to_pylist()) == {"right 0", "right 1", "right 2"}


def test_group_split_keeps_groups_whole_and_positions_balanced():
    records = make_records(600)
    splits = group_split(records, seed=1, train_size=300, test_size=100)
    train_groups = {r.group for r in splits["train"]}
    test_groups = {r.group for r in splits["test"]}
    assert not train_groups & test_groups
    assert len(splits["train"]) == 300 and len(splits["test"]) == 100
    balanced = balance_positions(splits["train"], seed=1)
    counts = [sum(r.preferred == k for r in balanced) for k in range(3)]
    assert max(counts) - min(counts) <= 1
    assert {r.id for r in balanced} == {r.id for r in splits["train"]}


def _export(tmp_path, records, version="1.0.0"):
    splits = group_split(records, seed=0, train_size=20, test_size=10)
    dist = DistributionExport("toy", splits, sources={"toy": {"revision": "r1", "license": "MIT"}})
    return export_version(tmp_path, "ds", version, [dist], load_catalog().shifts_table(), seed=0)


def test_export_atomic_immutable_and_loadable(tmp_path):
    result = _export(tmp_path, make_records(40))
    assert result.status == "written"
    loaded = datasets.load_from_disk(str(result.path / "distributions" / "toy"))
    assert set(loaded) == {"train", "test"}
    assert set(loaded["train"].column_names) == set(RECORD_SCHEMA.names)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["distributions"]["toy"]["licenses"] == ["MIT"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert (result.path / "README.md").read_text().startswith("# ds 1.0.0")
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".tmp")]

    again = _export(tmp_path, make_records(40))
    assert again.status == "unchanged"
    with pytest.raises(GeniesError, match="already exists with different content"):
        _export(tmp_path, make_records(41)[1:])


def test_identical_input_gives_byte_identical_files(tmp_path):
    a = _export(tmp_path / "a", make_records(40))
    b = _export(tmp_path / "b", make_records(40))
    assert a.manifest["files"] == b.manifest["files"]
    assert a.manifest["content_sha256"] == b.manifest["content_sha256"]
    version = Version.open(a.path)
    assert version.distributions == ["toy"]
    assert version.table("toy", "train").num_rows == a.manifest["distributions"]["toy"]["splits"]["train"]
    assert version.shifts().num_rows == len(load_catalog().shifts)
