import hashlib
import json
import shutil
from pathlib import Path

import datasets
import pytest

from builders.errors import GeniesError
from builders.release import RELEASE_SOURCE, examples_to_table, import_release
from builders.schema import RECORD_SCHEMA, Provenance, Record, records_to_table
from builders.text import content_group_key

# sha256 over the sha256 of every file under distributions/ of an import of the release sample (data files,
# dataset_info.json, state.json, dataset_dict.json): the import's output bytes, pinned before it was
# rewritten column-wise (issue 25), so a speed change cannot change them unnoticed.
SAMPLE_IMPORT_GOLDEN = "e6dae6ec5b854f5406581e5cde7eb705d18cd9534f3657dd9e975b4549d1993c"


def _raw_counts(root: Path) -> dict[str, int]:
    counts = {}
    for folder in sorted((root / "distributions").iterdir()):
        counts[folder.name] = sum(
            len(json.loads((folder / f"{split}.json").read_text())) for split in ("train", "test")
        )
    return counts


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from tests.conftest import RELEASE_SAMPLE

    if not (RELEASE_SAMPLE / "distributions").is_dir():
        pytest.skip(f"needs the GENIES release sample at {RELEASE_SAMPLE}")
    return import_release(RELEASE_SAMPLE, tmp_path_factory.mktemp("imported"), "1.0.0")


def test_sample_imports_every_distribution_and_example(release_sample, imported):
    report = imported
    raw = _raw_counts(release_sample)
    assert len(report.distributions) == len(raw) == 66
    assert {n: sum(s.values()) for n, s in report.distributions.items()} == raw
    assert report.malformed == []
    stray = {p.path for p in report.stray}
    assert {"personality_traits/test copy.json", "truthful_qa/.meta_data.json.swp", "alpaca_mmlu/hps/",
            "gender_bias/extra.json", "unhelpful_alpaca/train-copy.json"} <= stray
    assert report.not_in_catalog == [], "the catalog holds every original distribution, including the four no shift uses"

    version = report.result.path
    for name in raw:
        loaded = datasets.load_from_disk(str(version / "distributions" / name))
        assert set(loaded) == {"train", "test"}
        assert loaded["train"].column_names == RECORD_SCHEMA.names


def test_import_is_faithful_to_response_order_and_fields(release_sample, imported):
    report = imported
    arc = datasets.load_from_disk(str(report.result.path / "distributions" / "arc_easy"))["train"]
    first = json.loads((release_sample / "distributions/arc_easy/train.json").read_text())[0]
    assert arc[0]["responses"] == list(first["responses"])
    assert arc[0]["preferred"] == 0
    assert arc[0]["instruction"] == first["instruction"]
    assert arc[0]["prompt"] == first["prompt"]
    assert json.loads(arc[0]["meta"]) == {"prompt_format": first["prompt_format"]}
    assert arc[0]["provenance"]["row_key"] == "arc_easy/train/0"
    manifest = json.loads((report.result.path / "manifest.json").read_text())
    assert manifest["distributions"]["arc_easy"]["notes"]["release_metadata"]["id"] == "arc_easy"


def test_import_of_the_sample_is_byte_identical_to_its_golden_hash(imported):
    manifest = imported.result.manifest
    files = {p: e["sha256"] for p, e in manifest["files"].items() if p.startswith("distributions/")}
    files.update({p: h for p, h in manifest["other_files"].items() if p.startswith("distributions/")})
    assert len(files) == 66 * 7
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    assert digest == SAMPLE_IMPORT_GOLDEN


def test_columns_are_those_of_the_records_they_stand_for():
    """The column-wise import writes what `Record`s of the same examples write: optional columns only when
    they are strings, the rest in `meta`, the group from the first item field, the template from the format."""
    examples = [
        (0, {"prompt": "Q: ünïcode?", "responses": {"b": 0.0, "a": 1.0, "c": 0.5}, "instruction": "Ünïcode?",
             "input": 7, "prompt_format": "Q: {instruction}", "extra": {"nested": [1, None]}}),
        (3, {"prompt": "P", "responses": {"yes": 1, "no": 0}, "input": "context"}),
    ]
    table = examples_to_table(examples, "toy", "test", "sha256:x")
    provenance = [Provenance(RELEASE_SOURCE, "sha256:x", f"toy/test/{i}") for i in (0, 3)]
    records = [
        Record("toy", "Q: ünïcode?", ["b", "a", "c"], 1, content_group_key(RELEASE_SOURCE, "instruction", "Ünïcode?"),
               provenance[0], template=table.column("template")[0].as_py(), instruction="Ünïcode?",
               meta={"input": 7, "prompt_format": "Q: {instruction}", "extra": {"nested": [1, None]}}),
        Record("toy", "P", ["yes", "no"], 0, content_group_key(RELEASE_SOURCE, "prompt", "P"), provenance[1],
               template="release/toy", input="context"),
    ]
    assert table.column("template")[0].as_py().startswith("release/toy@")
    assert table.equals(records_to_table(records))
    assert examples_to_table([], "toy", "test", "x").equals(records_to_table([]))


def test_release_shift_files_are_compared_with_catalog(imported):
    diff = imported.shifts_diff
    assert diff["release_entries"] == 69 and diff["release_unique"] == 56
    assert diff["only_in_release"] == [] and diff["only_in_catalog"] == []
    assert {"shift": "alpaca_short->alpaca_long", "field": "label (GENIES.json)",
            "release": "extreme", "catalog": "probing"} in diff["differences"]


def test_reimport_is_noop_and_changed_content_is_refused(release_sample, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(release_sample, copy)
    assert import_release(copy, tmp_path / "out", "1.0.0").result.status == "written"
    assert import_release(copy, tmp_path / "out", "1.0.0").result.status == "unchanged"
    path = copy / "distributions/arc_easy/train.json"
    path.chmod(0o644)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data[1:]))
    with pytest.raises(GeniesError, match="different content"):
        import_release(copy, tmp_path / "out", "1.0.0")


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_malformed_files_and_examples_are_reported_and_skipped(tmp_path):
    good = {"prompt": "Q?", "responses": {"yes": 1.0, "no": 0.0}}
    root = tmp_path / "release" / "distributions"
    _write(root / "ok/train.json", [good, {"prompt": "Q2?", "responses": {"a": 1.0, "b": 1.0}},
                                     {"responses": {"a": 1.0, "b": 0.0}}, "text", good,
                                     {"prompt": "Q4?", "responses": {"a": True, "b": 0}},
                                     {"prompt": "Q5?", "responses": {"a": "1", "b": 0}},
                                     {"prompt": "Q6?", "responses": {"a": 0, "b": 1}}])
    _write(root / "ok/test.json", '[{"prompt": "Q3?", "responses": {"same": 1.0, "same": 0.0}}]')
    _write(root / "broken/train.json", "[{not json")
    (root / "latin1").mkdir()
    (root / "latin1/train.json").write_bytes('[{"prompt": "caf\xe9", "responses": {}}]'.encode("latin-1"))
    report = import_release(tmp_path / "release", tmp_path / "out", "1")

    by_place = {(p.path, p.index): p.reason for p in report.malformed}
    assert by_place[("ok/train.json", 1)].startswith("not exactly one preferred")
    assert by_place[("ok/train.json", 2)].startswith("missing prompt")
    assert by_place[("ok/train.json", 3)].startswith("not an object")
    assert by_place[("ok/test.json", 0)].startswith("duplicate response text")
    assert by_place[("ok/train.json", 5)].startswith("bad scores") and by_place[("ok/train.json", 6)].startswith("bad scores")
    assert by_place[("broken/train.json", None)].startswith("unreadable file: invalid JSON")
    assert by_place[("latin1/train.json", None)].startswith("unreadable file: not UTF-8")
    assert by_place[("latin1/test.json", None)].startswith("missing split file")
    assert by_place[("broken/test.json", None)].startswith("missing split file")
    assert report.distributions["ok"] == {"train": 3, "test": 0}
    assert report.examples_skipped == 6
    manifest = json.loads((report.result.path / "manifest.json").read_text())
    assert len(manifest["import"]["malformed"]) == 10


def test_not_a_release_gives_clear_error(tmp_path):
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(GeniesError, match="does not look like a GENIES release"):
        import_release(tmp_path / "empty", tmp_path / "out", "1")
