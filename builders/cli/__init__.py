"""The `genies` command line.

Each command lives in its own module in this package and exposes `register(app)`; every module found
here is registered, so adding a command is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from builders.cli.common import err_console, fit_consoles_to_this_run
from builders.errors import GeniesError

app = typer.Typer(
    name="genies",
    help="Build, repair, validate, publish and evaluate GENIES reward-model distribution-shift benchmarks.\n\n"
         "Example: [bold]genies build --benchmark genies --mirror ../shared/sources --version 1.0.0[/] then "
         "[bold]genies eval genies/1.0.0 --shifts genies[/]",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_SKIP = {"common"}


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)


_register_commands()


@app.callback()
def _root() -> None:
    """Build, repair, validate, publish and evaluate GENIES reward-model distribution-shift benchmarks."""
    fit_consoles_to_this_run()


def main() -> None:
    """Console-script entry point: expected failures print a message and a hint, never a traceback."""
    try:
        app()
    except GeniesError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {exc.hint}")
        sys.exit(2)
