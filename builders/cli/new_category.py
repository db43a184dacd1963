"""`genies new-category NAME`: write a working plugin category to start from (docs/adding-a-category.md)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from builders.catalog import load_catalog
from builders.cli.common import console, summary_table
from builders.discovery import plugin_catalog_dirs
from builders.errors import GeniesError
from builders.templating import render

NAME = re.compile(r"[a-z][a-z0-9_]{1,40}")


def _files(name: str) -> dict[str, tuple[str, str]]:
    """Relative path -> (scaffold template, what the file is for)."""
    return {
        f"{name}.py": ("scaffold/module.py.j2", "the module: registers the catalog, templates and builders"),
        f"templates/{name}/prompt.j2": ("scaffold/prompt.j2.j2", "the prompt template (jinja2, strict)"),
        "catalog/categories.toml": ("scaffold/categories.toml.j2", "the category and its label"),
        "catalog/distributions.toml": ("scaffold/distributions.toml.j2", "what each distribution tests"),
        "catalog/shifts.toml": ("scaffold/shifts.toml.j2", "the shift source -> target"),
        f"data/{name}_source.jsonl": ("scaffold/source.jsonl.j2", "example items to replace"),
        f"data/{name}_target.jsonl": ("scaffold/target.jsonl.j2", "example items to replace"),
        f"test_{name}.py": ("scaffold/test_category.py.j2", "a test building both distributions"),
    }


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise GeniesError(f"category name {name!r} is not a lowercase identifier",
                          "use letters, digits and underscores, starting with a letter, e.g. `legal_reasoning`")
    if name in load_catalog(plugin_catalog_dirs()).categories:
        raise GeniesError(f"category {name!r} already exists", "pick another name (`genies list` shows them all)")


def _check_description(description: str) -> str:
    """One printable line: it goes into TOML (escaped as a JSON string) and a Python docstring."""
    if not description.strip() or not description.isprintable():
        raise GeniesError(f"--description {description!r} must be one non-empty line of printable text",
                          "drop newlines and control characters")
    return description


def _in_docstring(text: str) -> str:
    """`text` safe inside a triple-quoted docstring: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def new_category_command(
    name: Annotated[str, typer.Argument(help="Category name: a lowercase identifier.")],
    directory: Annotated[Path, typer.Option("--dir", help="Folder to create the plugin in.")] = Path("plugins"),
    description: Annotated[str, typer.Option(help="One line saying what the category's shifts test.")] = (
        "train on one kind of question, test on another"
    ),
) -> None:
    """Write a new category as a plugin folder that builds and validates as it is.

    It holds a module with two distributions read from JSONL files, a prompt template, the catalog
    entries (category, distributions, shift) and a test; replace the example items and the builder.

    Example: [bold]genies new-category legal_reasoning --dir plugins[/]
    """
    _check_name(name)
    _check_description(description)
    target = directory / name
    if target.exists():
        raise GeniesError(f"{target} already exists", "choose another --dir or remove the folder")
    module_path = (target / f"{name}.py").as_posix()
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=directory))
    try:
        for relative, (template, _) in _files(name).items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(template, category=name, description=description,
                                   description_in_docstring=_in_docstring(description), module_path=module_path),
                            encoding="utf-8")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    console.print(summary_table(f"New category {name} in {target}", ["file", "purpose"],
                                [(relative, purpose) for relative, (_, purpose) in _files(name).items()]))
    console.print(f"next: GENIES_PLUGINS={module_path} genies build --category {name} --version 0.1.0, "
                  f"then `genies validate`; python -m pytest {target / f'test_{name}.py'}")


def register(app: typer.Typer) -> None:
    app.command("new-category")(new_category_command)
