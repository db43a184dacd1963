"""`genies verify`: check a version's files against its manifest (sha256, rows, nothing extra or missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.common import console, err_console, print_json, summary_table


def verify_command(
    version: Annotated[str, typer.Argument(help="Version directory, dataset/version, or a version under --out.")],
    out: Annotated[Path | None, typer.Option(help="Artifacts root to look the version up under (default: $GENIES_ARTIFACTS or ./artifacts).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
) -> None:
    """Check every file of a version against its manifest.json; exit 1 naming each file that differs.

    Each Arrow file's sha256 and row count, each split's rows, the other files' sha256, no extra or missing
    file, and the manifest's own content hash. validate, diff, publish, export, site, eval, repair and
    build run the same check first and refuse a version that fails it.

    Example: [bold]genies verify genies/1.0.0[/]
    """
    from builders.export import resolve_version
    from builders.verify import verify_version

    report = verify_version(resolve_version(version, out))
    if as_json:
        print_json(report.to_dict())
    elif report.problems:
        console.print(summary_table(f"Verification of {report.path}: {len(report.problems)} problem(s)",
                                    ["file", "problem"], [(p.path, p.what) for p in report.problems]))
    else:
        console.print(f"[green]ok:[/] {report.path}: {report.files_checked} files match manifest.json")
    if not report.ok:
        err_console.print(f"[bold red]error:[/] {report.path} does not match its manifest.json")
        err_console.print("[yellow]hint:[/] rebuild or re-import the version, or restore it from where it "
                          "was published")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
