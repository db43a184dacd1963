"""`genies verify` and the refusal of tampered, truncated or incomplete versions by every command that reads one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError
from builders.export import Version
from builders.verify import verify_version
from tests.validation_versions import clean_splits, write_version

TRAIN = "distributions/alpha/train/data-00000-of-00001.arrow"
runner = CliRunner()


@pytest.fixture
def version(tmp_path: Path) -> Path:
    return write_version(tmp_path / "art", "1.0.0", {"alpha": clean_splits("alpha"), "beta": clean_splits("beta")})


def rewrite_meta(version: Path, rel: str = TRAIN) -> None:
    """Change one row's `meta` in place, keeping the schema: the tampering of the issue."""
    path = version / rel
    table = pa.ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()  # a copy: the file is rewritten
    meta = table.column("meta").to_pylist()
    meta[0] = json.dumps({"tampered": True})
    table = table.set_column(table.schema.get_field_index("meta"), table.schema.field("meta"), pa.array(meta, pa.string()))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def refused(result, *named: str) -> bool:
    """The command stopped with a GeniesError naming every one of `named` (no traceback for the user)."""
    return isinstance(result.exception, GeniesError) and all(n in result.exception.message for n in named)


def test_a_fresh_version_verifies(version: Path) -> None:
    result = invoke("verify", str(version), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == [] and report["files_checked"] >= 12


def test_verify_finds_a_version_by_name_under_out(version: Path) -> None:
    result = invoke("verify", "test/1.0.0", "--out", str(version.parent.parent))
    assert result.exit_code == 0 and "files match manifest.json" in result.output


def test_a_rewritten_row_is_named_by_verify_and_refused_by_every_reader(version: Path, tmp_path: Path) -> None:
    clean = write_version(tmp_path / "other", "1.0.0", {"alpha": clean_splits("alpha"), "beta": clean_splits("beta")})
    rewrite_meta(version)
    result = invoke("verify", str(version), "--json")
    assert result.exit_code == 1
    assert [p["path"] for p in json.loads(result.stdout)["problems"]] == [TRAIN]
    assert refused(invoke("validate", str(version), "--strict"), TRAIN)
    assert refused(invoke("diff", str(clean), str(version)), TRAIN)
    assert refused(invoke("publish", str(version), "--repo", "org/x", "--dry-run", str(tmp_path / "pub")), TRAIN)
    assert not (tmp_path / "pub").exists()
    assert refused(invoke("export", str(version), "--format", "jsonl", "--out", str(tmp_path / "exp")), TRAIN)


def test_a_deleted_split_file_is_refused_not_published_empty(version: Path, tmp_path: Path) -> None:
    (version / TRAIN).unlink()
    report = verify_version(version)
    assert {(p.path, p.what) for p in report.problems} >= {
        (TRAIN, "missing"), ("distributions/alpha/train", "0 rows in its files, the manifest says 12")}
    assert refused(invoke("publish", str(version), "--repo", "org/x", "--dry-run", str(tmp_path / "pub")), TRAIN)


def test_a_truncated_file_is_named(version: Path) -> None:
    data = (version / TRAIN).read_bytes()
    (version / TRAIN).write_bytes(data[: len(data) // 2])
    problems = [(p.path, p.what.split(" (")[0]) for p in verify_version(version).problems]
    assert problems == [(TRAIN, "sha256 differs from the manifest"), (TRAIN, "not a readable Arrow file"),
                        ("distributions/alpha/train", "0 rows in its files, the manifest says 12")]


def test_extra_and_missing_files_are_named(version: Path) -> None:
    (version / "distributions/alpha/extra.arrow").write_bytes((version / TRAIN).read_bytes())
    (version / "notes.txt").write_text("hello")
    (version / "shifts/state.json").unlink()
    problems = {p.path: p.what for p in verify_version(version).problems}
    assert problems["distributions/alpha/extra.arrow"] == "extra Arrow file the manifest does not list"
    assert problems["notes.txt"] == "extra file the manifest does not list"
    assert problems["shifts/state.json"] == "missing"


def test_a_manifest_edited_to_match_a_tampered_file_fails_its_content_hash(version: Path) -> None:
    from builders.export import sha256_file

    rewrite_meta(version)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["files"][TRAIN]["sha256"] = sha256_file(version / TRAIN)
    (version / "manifest.json").write_text(json.dumps(manifest))
    assert [p.path for p in verify_version(version).problems] == ["manifest.json"]


@pytest.mark.parametrize("command", ["validate", "diff", "publish", "verify"])
def test_a_corrupt_manifest_is_a_clear_error(version: Path, tmp_path: Path, command: str) -> None:
    (version / "manifest.json").write_text('{"files": {')
    args = {"validate": [str(version)], "diff": [str(version), str(version)], "verify": [str(version)],
            "publish": [str(version), "--repo", "org/x", "--dry-run", str(tmp_path / "pub")]}[command]
    assert refused(invoke(command, *args), str(version / "manifest.json"), "not valid JSON")


def test_a_corrupt_manifest_stops_a_build_of_that_version(tmp_path: Path) -> None:
    out = tmp_path / "art"
    args = ["build", "crt_1", "--limit", "4", "--out", str(out), "--version", "1"]
    assert invoke(*args).exit_code == 0
    (out / "genies" / "1" / "manifest.json").write_text("[1, 2")
    assert refused(invoke(*args), "manifest.json", "not valid JSON")


def test_the_no_op_check_of_build_refuses_a_tampered_version(tmp_path: Path) -> None:
    out = tmp_path / "art"
    args = ["build", "crt_1", "--limit", "4", "--out", str(out), "--version", "1"]
    assert invoke(*args).exit_code == 0
    rewrite_meta(out / "genies" / "1", "distributions/crt_1/test/data-00000-of-00001.arrow")
    result = invoke(*args)
    assert refused(result, "distributions/crt_1/test/data-00000-of-00001.arrow")
    assert "nothing to do" not in result.output


def test_verify_is_skipped_only_on_request(version: Path) -> None:
    rewrite_meta(version)
    assert Version.open(version, verify=False).distributions == ["alpha", "beta"]
    with pytest.raises(GeniesError, match="does not match its manifest"):
        Version.open(version)
