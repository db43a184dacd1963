"""Every option a command accepts is mentioned in its docs page or in the README command table, and the
top-level help has an example: the documentation a researcher reads says what the code does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from builders.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "build": "building.md", "list": "building.md", "verify": "validation.md", "validate": "validation.md",
    "diff": "validation.md", "repair": "validation.md", "import-release": "validation.md",
    "eval": "evaluation.md", "export": "evaluation.md", "metrics": "evaluation.md", "publish": "publishing.md",
    "site": "site.md", "new-category": "adding-a-category.md", "sources": "sources.md", "llm": "llm-engine.md",
}


def _commands(command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def _options(command) -> list[str]:
    """The long names a user types (a boolean's generated --no-X counts with its --X)."""
    return [name for p in command.params if getattr(p, "param_type_name", "") == "option"
            for name in p.opts if name.startswith("--") and name != "--help"]


def _readme_rows(path: tuple[str, ...]) -> str:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `genies ") and f"genies {' '.join(path)}" in line]
    return "\n".join(rows)


COMMANDS = sorted(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_is_documented(path, command) -> None:
    page = (ROOT / "docs" / PAGES[path[0]]).read_text()
    where = page + _readme_rows(path)
    missing = [o for o in _options(command) if not re.search(re.escape(o) + r"(?![\w-])", where)]
    assert not missing, f"genies {' '.join(path)}: {missing} in neither docs/{PAGES[path[0]]} nor the README table"


def test_the_top_level_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output
