"""Safe names, plan before spending, one writer per version, no stale temporary folders, clear path errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError
from builders.export import TMP_PREFIX, check_name, resolve_version
from builders.pipeline import BuildOptions, BuildRequest, run_build
from builders.registry import Builder

runner = CliRunner()
FAKE = "crt_2"  # a catalog distribution whose builder the `fake_builder` fixture replaces


def build(out: Path, *args: str):
    return runner.invoke(app, ["build", "crt_1", "--limit", "3", "--out", str(out), *args])


@pytest.mark.parametrize("name", ["../../x", "/abs", "", "with space", "new\nline", "-rf", ".hidden", "a" * 101,
                                  "a/b", "é"])
def test_bad_names_are_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    out = tmp_path / "art"
    for option in ("--dataset", "--version"):
        result = build(out, option, name)
        assert isinstance(result.exception, GeniesError), (option, name, result.output)
        assert f"invalid {option}" in result.exception.message
    assert not any(tmp_path.rglob("manifest.json"))


@pytest.mark.parametrize("name", ["1.0.0", "0.1.0+abcd1234", "my_data-set", "v" * 100, "_x", "+y"])
def test_good_names_pass(name: str) -> None:
    assert check_name(name, "--version") == name


def test_a_300_character_version_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = build(tmp_path, "--version", "v" * 300)
    assert isinstance(result.exception, GeniesError) and "300 characters" in result.exception.message
    assert isinstance(runner.invoke(app, ["validate", "v" * 300]).exception, GeniesError)


def test_out_pointing_at_a_file_is_a_clear_error(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    result = build(afile, "--version", "1")
    assert isinstance(result.exception, GeniesError) and "is a file" in result.exception.message
    result = build(afile / "below", "--version", "1")
    assert isinstance(result.exception, GeniesError) and str(afile) in result.exception.message


def test_json_into_a_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "art"
    assert build(out, "--version", "1").exit_code == 0
    afile = tmp_path / "file"
    afile.write_text("x")
    result = runner.invoke(app, ["validate", str(out / "genies" / "1"), "--json", str(afile / "r.json")])
    assert isinstance(result.exception, GeniesError) and str(afile) in result.exception.message
    version = str(out / "genies" / "1")
    result = runner.invoke(app, ["diff", version, version, "--json", str(tmp_path)])
    assert isinstance(result.exception, GeniesError) and "is a folder" in result.exception.message


def test_a_conflicting_version_is_refused_before_any_builder_runs(fake_builder, tmp_path: Path) -> None:
    calls = []

    def counting(ctx):
        calls.append(ctx.distribution)
        yield from ()

    run_build(BuildRequest(names=["crt_1"], options=BuildOptions(limit=3), out=tmp_path, version="1"))
    fake_builder(counting)
    with pytest.raises(GeniesError, match=r"already exists with different content: .*seed 0 -> 1"):
        run_build(BuildRequest(names=["crt_1", FAKE], options=BuildOptions(limit=3, seed=1), out=tmp_path,
                               version="1"))
    assert calls == []


@pytest.fixture
def fake_builder():
    """Install `fn` as the builder of FAKE for one test."""
    from builders import discovery
    from builders.registry import BUILDERS

    def install(fn) -> None:
        BUILDERS.remove(FAKE)
        BUILDERS.add(FAKE, Builder(FAKE, fn, False, (), __name__), __name__)

    discovery.discover()
    with BUILDERS.snapshot():
        yield install


def test_a_second_writer_of_the_same_version_gets_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "genies").mkdir()
    lock = tmp_path / "genies" / ".1.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import filelock, time; l = filelock.FileLock({str(lock)!r}); l.acquire(); "
                               "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = build(tmp_path, "--version", "1")
        assert isinstance(result.exception, GeniesError)
        assert "another genies process is writing" in result.exception.message
        assert not (tmp_path / "genies" / "1").exists()
    finally:
        holder.kill()
        holder.wait()
    assert build(tmp_path, "--version", "1").exit_code == 0


def test_stale_tmp_folders_are_never_versions_and_the_next_build_removes_them(tmp_path: Path) -> None:
    assert build(tmp_path, "--version", "1").exit_code == 0
    stale = tmp_path / "genies" / f"{TMP_PREFIX}2-deadbeef"
    (tmp_path / "genies" / "1").rename(stale)
    with pytest.raises(GeniesError) as listed:
        resolve_version("nope", tmp_path)
    assert TMP_PREFIX not in (listed.value.hint or "")
    result = runner.invoke(app, ["validate", str(stale)])
    assert isinstance(result.exception, GeniesError) and "unfinished export" in result.exception.message
    assert build(tmp_path, "--version", "3").exit_code == 0
    assert not stale.exists()
