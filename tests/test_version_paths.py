"""Every command that reads a version says which directory it read, and --out / GENIES_ARTIFACTS resolve
the same way for all of them: `genies/1.0.0` under another root is another build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError

runner = CliRunner()


def _cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def two_roots(tmp_path, monkeypatch) -> Path:
    """genies/1.0.0 built twice with different seeds: under ./art and under the default ./artifacts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENIES_ARTIFACTS", raising=False)
    _cli("build", "crt_1", "--limit", "3", "--out", "art", "--version", "1.0.0")
    _cli("build", "crt_1", "--limit", "3", "--seed", "1", "--version", "1.0.0")
    return tmp_path


def _content(path: Path) -> str:
    return json.loads((path / "manifest.json").read_text())["content_sha256"]


def test_publish_reads_the_root_it_is_given_and_says_so(two_roots) -> None:
    built = two_roots / "art" / "genies" / "1.0.0"
    result = _cli("publish", "genies/1.0.0", "--repo", "lab/genies", "--dry-run", "hub", "--out", "art")
    assert f"reading {built.resolve()}" in result.output
    staged = json.loads((two_roots / "hub" / "manifest.json").read_text())
    assert staged["content_sha256"] == _content(built) != _content(two_roots / "artifacts" / "genies" / "1.0.0")


@pytest.mark.parametrize("command", [["validate", "--checks", "schema"], ["diff", "genies/1.0.0"],
                                     ["export", "--format", "jsonl", "--out", "exported"]])
def test_genies_artifacts_is_the_root_of_every_reading_command(two_roots, monkeypatch, command) -> None:
    monkeypatch.setenv("GENIES_ARTIFACTS", "art")
    result = _cli(command[0], "genies/1.0.0", *command[1:])
    assert f"reading {(two_roots / 'art' / 'genies' / '1.0.0').resolve()}" in result.output
    assert "artifacts/genies" not in result.output


def test_an_ambiguous_version_lists_the_choices(two_roots) -> None:
    _cli("build", "crt_1", "--limit", "3", "--seed", "2", "--out", ".", "--version", "1.0.0")
    result = runner.invoke(app, ["validate", "genies/1.0.0"])
    assert isinstance(result.exception, GeniesError)
    assert str((two_roots / "genies" / "1.0.0").resolve()) in result.exception.message
    assert str((two_roots / "artifacts" / "genies" / "1.0.0").resolve()) in result.exception.message
    _cli("build", "crt_1", "--limit", "3", "--dataset", "other", "--version", "1.0.0")
    bare = runner.invoke(app, ["eval", "1.0.0"])
    assert isinstance(bare.exception, GeniesError) and "genies/1.0.0" in bare.exception.hint
    assert "other/1.0.0" in bare.exception.hint
