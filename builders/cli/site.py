"""`genies site`: a static site for browsing a version in a web browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import (
    Artifacts,
    console,
    err_console,
    open_version,
    summary_table,
)


def site_command(
    version: Annotated[str, typer.Argument(help="Version directory, dataset/version, or a version under ./artifacts.")],
    out: Annotated[Path, typer.Option(help="Folder to write the site into (new, empty, or an earlier site, which is replaced).")],
    eval_dir: Annotated[Path | None, typer.Option("--eval", help="The --out folder of `genies eval` for this version: its means, per-shift rows and plots.")] = None,
    validation: Annotated[Path | None, typer.Option(help="A `genies validate --json` file for this version (default: validate now).")] = None,
    artifacts: Artifacts = None,
) -> None:
    """Write a self-contained static site: shifts, distributions, paged and searchable examples, findings, eval.

    It opens from file:// with no server and no network. Example: [bold]genies site genies/1.0.0 --out site --eval eval-results/genies/1.0.0/bow[/]
    """
    from builders.catalog import load_catalog
    from builders.discovery import plugin_catalog_dirs
    from builders.folders import refuse_foreign_folder
    from builders.site import COMMAND, MARKER, build_site, read_eval, read_validation
    from builders.validation import validate_version

    opened = open_version(version, artifacts)
    refuse_foreign_folder(out, MARKER, COMMAND)
    evaluation = read_eval(eval_dir, opened) if eval_dir is not None else None
    if validation is not None:
        report = read_validation(validation, opened)
    else:
        with err_console.status("validating the version (pass --validation FILE to reuse a report)"):
            report = validate_version(opened).to_dict()
    with err_console.status("writing pages and example chunks"):
        result = build_site(opened, out, load_catalog(plugin_catalog_dirs()), validation=report, evaluation=evaluation)
    console.print(summary_table(f"Site for {opened.path}", ["what", "value"], [
        ("folder", result.path), ("pages", result.pages), ("files", result.files),
        ("size", f"{result.bytes / 1e6:.1f} MB"), ("examples", result.examples), ("seconds", f"{result.seconds:.1f}"),
    ]))
    console.print(f"open {(result.path / 'index.html').resolve().as_uri()}")


def register(app: typer.Typer) -> None:
    app.command("site")(site_command)
