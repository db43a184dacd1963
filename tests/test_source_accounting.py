"""Rows a source reader drops are counted per source; a mirror lacking a needed file is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import discovery
from builders.cli import app
from builders.errors import GeniesError
from builders.export import Version
from builders.registry import BUILDERS, Builder
from tests.validation_versions import clean_record

FAKE = "crt_2"  # a catalog distribution whose builder is replaced for these tests
runner = CliRunner()


@pytest.fixture
def reading(request):
    """FAKE's builder reads the source `request.param` and yields 12 clean records."""

    def build(ctx):
        ctx.source(request.param)
        yield from (clean_record(FAKE, i) for i in range(12))

    discovery.discover()
    with BUILDERS.snapshot():
        BUILDERS.remove(FAKE)
        BUILDERS.add(FAKE, Builder(FAKE, build, False, (), __name__), __name__)
        yield request.param


def _build(tmp_path: Path, mirror: Path, *args: str):
    return runner.invoke(app, ["build", FAKE, "--limit", "3", "--mirror", str(mirror), "--cache-dir",
                               str(tmp_path / "cache"), "--out", str(tmp_path / "art"), "--version", "1", *args],
                         env={"COLUMNS": "300"})


@pytest.mark.parametrize("reading", ["alpaca_cleaned"], indirect=True)
def test_a_malformed_source_line_is_counted_in_the_table_and_the_manifest(reading, tmp_path: Path) -> None:
    row = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    folder = tmp_path / "mirror" / "alpaca_cleaned"
    folder.mkdir(parents=True)
    lines = [json.dumps(row), "{broken", json.dumps({**row, "instruction": "Name a fruit."})]
    (folder / "alpaca_data_cleaned.json").write_text("\n".join(lines) + "\n")
    result = _build(tmp_path, tmp_path / "mirror", "--json")
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)["distributions"]
    assert summary["source_rows_dropped"] == {"alpaca_cleaned": 1}
    assert Version.open(tmp_path / "art" / "genies" / "1").manifest["source_rows_dropped"] == {"alpaca_cleaned": 1}
    again = _build(tmp_path, tmp_path / "mirror")
    assert "nothing to do" in again.output and "alpaca_cleaned (1 rows dropped)" in again.output


@pytest.mark.parametrize("reading", ["quotes"], indirect=True)
def test_a_mirror_lacking_a_pinned_file_is_a_skip_naming_it_and_an_error_with_strict(reading, tmp_path: Path) -> None:
    (tmp_path / "mirror" / "quotes").mkdir(parents=True)
    reason = f"needs source quotes: mirror lacks {tmp_path / 'mirror' / 'quotes' / 'quotes.json'}"
    for args in ((), ("--strict",)):
        result = _build(tmp_path, tmp_path / "mirror", *args)
        assert isinstance(result.exception, GeniesError) and f"skipped (1): {reason}" in result.output
    assert "--strict" in result.exception.message
