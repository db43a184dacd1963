"""`genies build`: build distributions and export them as one immutable version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from builders.cli.common import console, err_console, print_json, summary_table
from builders.export import DEFAULT_ROOT

if TYPE_CHECKING:
    from builders.pipeline import BuildOptions, BuildReport, DistributionResult


def _llm_engine(offline: bool):
    """The LLM engine when one is configured (OPENAI_BASE_URL / OPENAI_API_KEY), else None."""
    from builders.llm import engine_from_env

    return engine_from_env(offline=offline)


def _dry_run(names: list[str], options: BuildOptions, offline: bool) -> None:
    """Per LLM distribution: requests, tokens and cost at the requested size; nothing is sent or written."""
    from builders.llm import engine_from_env
    from builders.recipes.plan import estimate_build

    with engine_from_env(offline=offline, dry_run=True) as engine:
        estimates = estimate_build(names, options, engine)
        rows = [(e.name, e.requests, e.cached, f"{e.tokens_in:,}", f"{e.tokens_out:,}",
                 "?" if e.cost_usd is None else f"${e.cost_usd:,.4f}", e.status) for e in estimates]
        title = f"Dry run at {options.sizes[0]} train / {options.sizes[1]} test rows, model {engine.model}: nothing sent"
        console.print(engine.summary_table())
        console.print(summary_table(title, ["distribution", "requests", "cached", "est. tokens in",
                                            "est. tokens out", "est. cost", "status"], rows))
    if not estimates:
        console.print("no LLM distribution among the selection: nothing would be sent")


def _results_table(report: BuildReport):
    rows = [
        (r.name, r.rows("train"), r.rows("test"), ", ".join(r.sources), r.label)
        for r in sorted(report.results, key=lambda r: r.name)
    ]
    built = len(report.with_status("built"))
    title = f"Build {report.dataset} {report.version}: {built} of {len(report.results)} distributions built"
    return summary_table(title, ["distribution", "train", "test", "sources", "status"], rows)


def _report_json(report: BuildReport) -> dict:
    """The build summary as plain data, for scripts (`--json`)."""
    return {
        "dataset": report.dataset,
        "version": report.version,
        "path": str(report.path),
        "outcome": "noop" if report.noop else report.export.status,
        "build_fingerprint": report.fingerprint,
        "distributions": [
            {"name": r.name, "status": r.status, "reason": r.reason, "train": r.rows("train"),
             "test": r.rows("test"), "sources": r.sources}
            for r in sorted(report.results, key=lambda r: r.name)
        ],
    }


def _print_failures(results: list[DistributionResult]) -> None:
    from builders.pipeline import FAILED

    for result in results:
        if result.status == FAILED and result.detail:
            err_console.print(f"[bold red]{result.name} failed:[/]\n{result.detail}", markup=True, highlight=False)


def _print_notes(report: BuildReport) -> None:
    """What builders said about partial work, and how many candidates were rejected."""
    for result in report.results:
        for note in result.context.notes if result.context else ():
            console.print(f"[dim]note[/] {result.name}: {note}")
    rejected = sum(len(r.context.rejects) for r in report.results if r.context)
    if rejected and report.path:
        console.print(f"{rejected:,} candidate records rejected, with reasons: {report.path / 'rejects.jsonl'}")


def _print_outcome(report: BuildReport, version_given: bool) -> None:
    from builders.pipeline import NEEDS_SOURCE

    if not version_given:
        console.print(f"version [bold]{report.version}[/] (derived from the build fingerprint; --version names it)")
    if report.noop:
        console.print(f"[green]nothing to do:[/] {report.path} already holds this build (same fingerprint)")
    elif report.export.status == "unchanged":
        console.print(f"[green]unchanged:[/] {report.path} already holds identical data")
    else:
        rate = report.total_rows / report.seconds if report.seconds else 0.0
        console.print(f"[green]wrote[/] {report.path} ({report.total_rows:,} rows in {report.seconds:.1f} s, {rate:,.0f} rows/s)")
    skipped = report.with_status("skipped")
    if skipped:
        console.print(f"{len(skipped)} skipped (see status); --strict turns a skip into an error")
    if any(r.skip_kind == NEEDS_SOURCE for r in skipped):
        console.print("sources come from --mirror DIR (or GENIES_MIRROR) or the cache: `genies sources pull NAME`")


def build_command(
    names: Annotated[list[str] | None, typer.Argument(help="Distributions to build (default: everything buildable).")] = None,
    category: Annotated[str | None, typer.Option(help="Also build every distribution of this category's shifts.")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Also build every distribution of this suite, e.g. genies.")] = None,
    mirror: Annotated[str | None, typer.Option(help="Directory with raw upstream files (default: $GENIES_MIRROR).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Raw-table cache (default: $GENIES_CACHE or ~/.cache/genies).")] = None,
    fetch: Annotated[bool, typer.Option(help="Download sources missing from the mirror and cache.")] = False,
    offline: Annotated[bool, typer.Option(help="LLM answers from the cache only; never contact a server.")] = False,
    out: Annotated[Path, typer.Option(help="Artifacts root.")] = DEFAULT_ROOT,
    dataset: Annotated[str, typer.Option(help="Dataset name (a folder under --out).")] = "genies",
    version: Annotated[str | None, typer.Option(help="Version to write (default: <package>+<fingerprint[:8]>).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice (splits, order, generators).")] = 0,
    train_size: Annotated[int, typer.Option(help="Train rows per distribution, or what the upstream allows.")] = 600,
    test_size: Annotated[int, typer.Option(help="Test rows per distribution, or what the upstream allows.")] = 250,
    limit: Annotated[int | None, typer.Option(help="Cap every split at N rows (quick builds).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail if any selected distribution is skipped.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Estimate the LLM requests, tokens and cost; send and write nothing.")] = False,
) -> None:
    """Build distributions and export them as one immutable version.

    Procedural distributions need nothing. Source-based ones read raw files from --mirror, GENIES_MIRROR
    or the source cache (`genies sources pull`; --fetch downloads what is missing). LLM-based ones need
    OPENAI_BASE_URL. What cannot be built is skipped, and the table says exactly what it needs.
    Rebuilding an existing version with the same fingerprint does nothing. --dry-run prints what the LLM
    distributions would ask for at this size (requests, tokens, cost) and builds nothing.

    Example: [bold]genies build --benchmark genies --mirror ../shared/sources --version 1.0.0[/]
    Example: [bold]genies build alpaca_easy cooking --limit 20 --dry-run[/]
    """
    from builders.catalog import load_catalog
    from builders.pipeline import BuildFailed, BuildOptions, BuildRequest, run_build, select_distributions
    from builders.registry import plugin_catalog_dirs

    catalog = load_catalog(plugin_catalog_dirs())
    options = BuildOptions(
        seed=seed, train_size=train_size, test_size=test_size, limit=limit,
        mirror=mirror, cache_dir=cache_dir, fetch=fetch, offline=offline,
    )
    selected = select_distributions(catalog, names or [], category, benchmark)
    if dry_run:
        _dry_run(selected, options, offline)
        return
    request = BuildRequest(
        names=selected, options=options, out=out, dataset=dataset, version=version, strict=strict,
        llm=_llm_engine(offline), catalog=catalog,
    )
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        task = progress.add_task("building", total=len(request.names))
        try:
            report = run_build(
                request,
                on_start=lambda name: progress.update(task, description=name),
                on_done=lambda result: progress.advance(task),
            )
        except BuildFailed as exc:
            progress.stop()
            console.print(_results_table(exc.report))
            _print_failures(exc.report.results)
            raise
    if as_json:
        print_json(_report_json(report))
        return
    console.print(_results_table(report))
    if request.llm is not None and request.llm.stats.by_step:
        console.print(request.llm.summary_table())
    _print_notes(report)
    _print_outcome(report, version_given=version is not None)


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
