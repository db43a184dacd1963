"""Inputs that used to end in a raw traceback now end in a GeniesError naming the path and what to do."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError
from builders.release import import_release
from builders.sources import load_source

ALPACA = ("alpaca_cleaned", "alpaca_data_cleaned.json")  # an unpinned source: no checksum guards its file


def _mirror(tmp_path: Path, content: str) -> Path:
    folder = tmp_path / "mirror" / ALPACA[0]
    folder.mkdir(parents=True)
    (folder / ALPACA[1]).write_text(content)
    return tmp_path / "mirror"


@pytest.mark.parametrize("content", ["", "[]", '[{"instruction": "x", "input": "", "output": ["a list"]}]'])
def test_an_empty_or_wrongly_typed_unpinned_source_file_is_named(tmp_path: Path, content: str) -> None:
    mirror = _mirror(tmp_path, content)
    with pytest.raises(GeniesError) as error:
        load_source(ALPACA[0], mirror=mirror, cache_dir=tmp_path / "cache", offline=True)
    assert f"{ALPACA[0]}/{ALPACA[1]}" in error.value.message and str(mirror) in error.value.message
    assert "restore the original file" in (error.value.hint or "")


def test_a_truncated_source_cache_table_says_how_to_clear_it(tmp_path: Path) -> None:
    row = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    mirror = _mirror(tmp_path, json.dumps([row, {**row, "instruction": "Name a fruit."}]))
    loaded = load_source(ALPACA[0], mirror=mirror, cache_dir=tmp_path / "cache", offline=True)
    assert loaded.table.num_rows == 2 and loaded.cache_path is not None
    loaded_path = loaded.cache_path
    data = loaded_path.read_bytes()
    del loaded  # its table is memory-mapped from the file truncated below
    loaded_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GeniesError) as error:
        load_source(ALPACA[0], mirror=mirror, cache_dir=tmp_path / "cache", offline=True)
    assert str(loaded_path) in error.value.message and "damaged" in error.value.message
    assert f"delete the folder {loaded_path.parent}" in (error.value.hint or "")


def test_a_deeply_nested_release_file_is_a_reported_problem(tmp_path: Path) -> None:
    folder = tmp_path / "release" / "distributions" / "deep"
    folder.mkdir(parents=True)
    (folder / "train.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "test.json").write_text(json.dumps([{"prompt": "Q?", "responses": {"yes": 1.0, "no": 0.0}}]))
    report = import_release(tmp_path / "release", tmp_path / "out", "1")
    assert [(p.path, p.reason.split(" (")[0]) for p in report.malformed] == [
        ("deep/train.json", "unreadable file: nested too deeply to read")]


def test_a_description_with_quotes_gives_valid_toml_and_python(tmp_path: Path) -> None:
    description = 'says "hi" and """ ends \\ here'
    result = CliRunner().invoke(app, ["new-category", "quoted_cat", "--dir", str(tmp_path), "--description",
                                      description])
    assert result.exit_code == 0, result.output
    categories = tomllib.loads((tmp_path / "quoted_cat" / "catalog" / "categories.toml").read_text())
    assert categories["category"][0]["description"] == description
    module = ast.parse((tmp_path / "quoted_cat" / "quoted_cat.py").read_text())
    assert description in (ast.get_docstring(module) or "")


def test_a_description_on_several_lines_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["new-category", "multi_cat", "--dir", str(tmp_path), "--description", "a\nb"])
    assert isinstance(result.exception, GeniesError) and not (tmp_path / "multi_cat").exists()
