"""`genies validate`: check a version for the defects the original GENIES release shipped with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from builders.cli.common import (
    Artifacts,
    console,
    err_console,
    json_target,
    open_version,
    summary_table,
    write_json,
)

if TYPE_CHECKING:
    from builders.export import Version
    from builders.validation import Check, ValidationReport
    from builders.validation.data import LoadedVersion


def _run_with_progress(version: Version, checks: list[str] | None, against: Version | None) -> ValidationReport:
    from builders.validation import select_checks, validate_version

    total = len(select_checks(checks, with_reference=against is not None))
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("loading version", total=total)

        finished = iter(range(total + 1))

        def started(check: Check) -> None:
            progress.update(task, description=f"checking {check.name}", completed=next(finished))

        report = validate_version(version, checks, on_check=started, against=against)
        progress.update(task, completed=total)
    return report


def validate_command(
    version: Annotated[str, typer.Argument(help="Version directory, dataset/version, or a version under ./artifacts.")],
    json_file: Annotated[Path | None, typer.Option("--json", help="Write per-check, per-distribution results as JSON.")] = None,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write a FILE.md or FILE.html report with plots.")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any error-level check fails.")] = False,
    checks: Annotated[str | None, typer.Option(help="Comma-separated checks to run (default: all; docs/validation.md lists them, a wrong name gets suggestions).")] = None,
    against: Annotated[str | None, typer.Option("--against", help="Compare with this reference version (e.g. an imported release): the fidelity check and a side-by-side table per distribution.")] = None,
    artifacts: Artifacts = None,
) -> None:
    """Check a version for leakage, position and length cues, constant prompts or answers, debris and more.

    Example: [bold]genies validate genies/1.0.0 --json report.json --report report.md --strict[/]

    Example: [bold]genies validate genies/1.0.0 --against genies-release/1.0.0[/] (fidelity to the original)
    """
    from builders.validation.report import report_template, summary_rows, write_report

    json_target(json_file)
    selected = [c for c in checks.split(",") if c.strip()] if checks else None
    if report_file is not None:
        report_template(report_file)
    report = _run_with_progress(open_version(version, artifacts), selected,
                                open_version(against, artifacts) if against else None)
    if json_file is not None:
        write_json(json_file, report.to_dict())
    if report_file is not None:
        write_report(report, report_file)
    console.print(summary_table(
        f"Validation of {report.loaded.version.path} ({report.loaded.frame.height} examples, {report.seconds:.1f} s)",
        ["check", "severity", "status", "failing distributions / shifts", "count"], summary_rows(report),
    ))
    if report.loaded.reference is not None:
        _print_fidelity(report.loaded, report.loaded.reference)
    for written in (json_file, report_file):
        if written is not None:
            console.print(f"wrote {written}")
    console.print(f"{len(report.errors)} error check(s) failed, {len(report.warnings)} warning(s), "
                  f"{len(report.infos)} note(s)")
    if strict and report.errors:
        err_console.print("[bold red]error:[/] error-level checks failed: "
                          + ", ".join(r.check.name for r in report.errors))
        err_console.print("[yellow]hint:[/] rebuild or `genies repair` the version, then validate again; "
                          "--json FILE lists example ids per distribution")
        raise typer.Exit(1)


def _print_fidelity(loaded: LoadedVersion, reference: LoadedVersion) -> None:
    """The side-by-side summary, NEW / REFERENCE per measure (every rule's accuracy: --json or --report)."""
    from builders.validation.fidelity import (
        SUMMARY_COLUMNS,
        compare_versions,
        summary_row,
    )

    console.print(summary_table(f"Against {reference.version.path} (NEW / REFERENCE)", SUMMARY_COLUMNS,
                                [summary_row(c) for c in compare_versions(loaded)]))


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
