"""Shared CLI helpers: consoles, summary tables, JSON output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from builders.errors import GeniesError

if TYPE_CHECKING:
    from builders.export import Version

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fit_consoles_to_this_run() -> None:
    """Rich reads COLUMNS once, when a console is made, but one process (a test runner, a notebook) may run
    many commands: each takes the COLUMNS of its own run, or the terminal's width when it is unset."""
    columns = os.environ.get("COLUMNS", "")
    for each in (console, err_console):
        each._width = int(columns) if columns.isdigit() else None


def summary_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich markup), so it can be piped into jq or a file."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def json_target(path: Path | None) -> Path | None:
    """Check a `--json` path before any work: its folder is created, and a folder or a path under a file is
    a clear error now rather than after minutes of validating or comparing."""
    from builders.export import make_dir

    if path is not None:
        make_dir(path.parent, "--json folder")
        if path.is_dir():
            raise GeniesError(f"--json {path} is a folder", "pass --json a file path, e.g. report.json")
    return path


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` (parents created), with a clear error when the path cannot be a file."""
    json_target(path)
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    except OSError as exc:
        raise GeniesError(f"cannot write {path}: {exc.strerror}", "pass --json a file path you can write") from exc


Artifacts = Annotated[Path | None, typer.Option(
    "--artifacts", help="Artifacts root to look VERSION up under (default: $GENIES_ARTIFACTS or ./artifacts).")]


def announce_version(ref: str, root: Path | None = None) -> Path:
    """The directory of the version `ref` names under `root` (resolved like every command's,
    `artifacts_root`), said first: `genies/1.0.0` under another root is another build."""
    from builders.export import artifacts_root, resolve_version

    path = resolve_version(ref, artifacts_root(root))
    err_console.print(f"reading {path.resolve()}", highlight=False, soft_wrap=True)
    return path


def open_version(ref: str, root: Path | None = None) -> Version:
    """`announce_version`, then the version, verified against its manifest."""
    from builders.export import Version

    return Version.open(announce_version(ref, root))
