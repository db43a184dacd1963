"""`genies build`: build distributions and export them as one immutable version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from builders.cli.common import console, err_console, print_json, summary_table
from builders.export import artifacts_root

PARTIAL_EXIT_CODE = 3

if TYPE_CHECKING:
    from builders.pipeline import BuildOptions, BuildReport, DistributionResult


def _llm_engine(offline: bool, structured: str | None, replay: str | None = None, mode: str | None = None):
    """The LLM engine when one is configured (OPENAI_BASE_URL / OPENAI_API_KEY) or answers are replayed,
    else None. Replayed answers are loaded into its cache first, and name the server and model: the cache
    keys hold both, so they must be those of the build being reproduced."""
    from builders.llm import engine_from_env

    if replay is None:
        return engine_from_env(offline=offline, structured=structured, mode=mode)
    import tempfile

    from builders.llm.replay import locate, read_checked, replay_into, server_of

    with tempfile.TemporaryDirectory(prefix="genies-replay-") as download:
        table = read_checked(locate(replay, Path(download)))
    base_url, model = server_of(table)
    engine = engine_from_env(offline=offline, structured=structured, base_url=base_url, model=model, replay=True,
                             mode=mode)
    loaded = replay_into(engine.cache, table)
    err_console.print(f"replay: {loaded:,} LLM answers from {replay} loaded into {engine.cache.path} "
                      f"(server {base_url}, model {model})")
    return engine


def _dry_run(names: list[str], options: BuildOptions, offline: bool, structured: str | None) -> None:
    """Per LLM distribution: requests, tokens and cost at the requested size; nothing is sent or written."""
    from builders.dry_run import estimate_build
    from builders.llm import engine_from_env
    from builders.llm.accounting import money

    with engine_from_env(offline=offline, dry_run=True, structured=structured) as engine:
        estimates = estimate_build(names, options, engine)
        rows = [(e.name, e.requests, e.cached, f"{e.tokens_in:,}", f"{e.tokens_out:,}", money(e.cost_usd),
                 money(e.batch_cost_usd), e.status) for e in estimates]
        title = f"Dry run at {options.sizes[0]} train / {options.sizes[1]} test rows, model {engine.model}: nothing sent"
        console.print(engine.summary_table())
        console.print(summary_table(title, ["distribution", "requests", "cached", "est. tokens in",
                                            "est. tokens out", "est. cost", "est. batch cost", "status"], rows))
    if not estimates:
        console.print("no LLM distribution among the selection: nothing would be sent")


def _results_table(report: BuildReport, verbose: bool = False):
    """Built and failed distributions one per row (skipped ones too with --verbose; else `_print_skips`
    groups them by reason)."""
    rows = [
        (r.name, r.rows("train"), r.rows("test"), r.sources_label, r.label)
        for r in sorted(report.results, key=lambda r: r.name) if verbose or r.status != "skipped"
    ]
    built = len(report.with_status("built"))
    title = f"Build {report.dataset} {report.version}: {built} of {len(report.results)} distributions built"
    return summary_table(title, ["distribution", "train", "test", "sources", "status"], rows)


def _print_skips(report: BuildReport, options: BuildOptions, verbose: bool) -> None:
    """Skips grouped by reason, one line per reason with its count (and names with --verbose), then one
    hint per missing piece."""
    from builders.pipeline import skip_hints

    by_reason: dict[str, list[str]] = {}
    for result in report.with_status("skipped"):
        by_reason.setdefault(result.reason, []).append(result.name)
    for reason, names in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        listed = f": {', '.join(sorted(names))}" if verbose else ""
        console.print(f"skipped ({len(names)}): {reason}{listed}")
    if by_reason:
        shown = "" if verbose else "; --verbose lists them"
        console.print(f"{sum(map(len, by_reason.values()))} skipped{shown}; --strict turns a skip into an error")
    for hint in skip_hints(report.results, options):
        console.print(f"[yellow]missing:[/] {hint}")


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
             "test": r.rows("test"), "sources": r.sources, "source_rows_dropped": r.rows_dropped}
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
    if not version_given:
        console.print(f"version [bold]{report.version}[/] (derived from the build fingerprint: what was built and from which source revisions; --version names it)")
    if report.noop:
        console.print(f"[green]nothing to do:[/] {report.path} already holds this build (same plan; nothing new could be built)")
    elif report.export.status == "unchanged":
        console.print(f"[green]unchanged:[/] {report.path} already holds identical data")
    else:
        rate = report.total_rows / report.seconds if report.seconds else 0.0
        console.print(f"[green]wrote[/] {report.path} ({report.total_rows:,} rows in {report.seconds:.1f} s, {rate:,.0f} rows/s)")


# The options that say what a build makes; `genies llm export-requests` takes the same ones.
Names = Annotated[list[str] | None, typer.Argument(help="Distributions to build (default: everything buildable).")]
Category = Annotated[str | None, typer.Option(help="Also build every distribution of this category's shifts.")]
Benchmark = Annotated[str | None, typer.Option(help="Also build every distribution of this suite, e.g. genies.")]
Mirror = Annotated[list[str] | None, typer.Option(
    help="Directory with raw upstream files; repeatable, and each may join several with ':' "
         "(default: $GENIES_MIRROR).")]
CacheDir = Annotated[Path | None, typer.Option(help="Raw-table cache (default: $GENIES_CACHE or ~/.cache/genies).")]
Fetch = Annotated[bool, typer.Option(help="Download sources missing from the mirror and cache.")]
Seed = Annotated[int, typer.Option(help="Seed of every random choice (splits, order, generators).")]
TrainSize = Annotated[int, typer.Option(help="Train rows per distribution, or what the upstream allows.")]
TestSize = Annotated[int, typer.Option(help="Test rows per distribution, or what the upstream allows.")]
Limit = Annotated[int | None, typer.Option(help="Cap every split at N rows (quick builds).")]
Structured = Annotated[str | None, typer.Option(
    help="How JSON schemas reach the LLM server: auto (probe once), json_schema, json_object_schema, "
         "json_object or prompt (default: $GENIES_LLM_STRUCTURED, the LLM config file, else auto).")]


def build_command(
    names: Names = None,
    category: Category = None,
    benchmark: Benchmark = None,
    mirror: Mirror = None,
    cache_dir: CacheDir = None,
    fetch: Fetch = False,
    offline: Annotated[bool, typer.Option(help="LLM answers from the cache only; never contact a server.")] = False,
    out: Annotated[Path | None, typer.Option(help="Artifacts root (default: $GENIES_ARTIFACTS or ./artifacts).")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name (a folder under --out).")] = "genies",
    version: Annotated[str | None, typer.Option(help="Version to write (default: <package>+<fingerprint[:8]>).")] = None,
    seed: Seed = 0,
    train_size: TrainSize = 600,
    test_size: TestSize = 250,
    limit: Limit = None,
    strict: Annotated[bool, typer.Option(help="Fail if any selected distribution is skipped.")] = False,
    allow_failed: Annotated[bool, typer.Option(
        help=f"Export what built when some distributions failed (listed with reasons in the manifest and the "
             f"card) and exit with code {PARTIAL_EXIT_CODE}; without it a failure exports nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (every distribution, with "
                                                         "status and reason) instead of a table.")] = False,
    verbose: Annotated[bool, typer.Option(help="List skipped distributions one per row, and by name under each "
                                               "skip reason.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Estimate the LLM requests, tokens and cost; send and write nothing.")] = False,
    replay: Annotated[str | None, typer.Option(
        help="Load the LLM answers of a version (its directory, a `publish --dry-run` directory, or ORG/NAME@REV "
             "on the Hub) into the cache first; with --offline the build sends nothing and any request "
             "missing from them is an error.")] = None,
    llm_structured: Structured = None,
    llm_mode: Annotated[str | None, typer.Option(
        help="How LLM cache misses go out: live (calls), batch (OpenAI's Batch API at batch prices: every "
             "round of a step as a batch) or batch-then-live (a step's first round as a batch, its re-asks "
             "and top-ups live) (default: $GENIES_LLM_MODE, the LLM config file, else live).")] = None,
) -> None:
    """Build distributions and export them as one immutable version.

    Procedural distributions need nothing. Source-based ones read raw files from --mirror, GENIES_MIRROR
    or the source cache (`genies sources pull`; --fetch downloads what is missing). LLM-based ones need
    OPENAI_BASE_URL. What cannot be built is skipped: one line per reason with a count (--verbose names them), then what is missing here.
    Rebuilding an existing version of the same plan does nothing. --dry-run prints what the LLM
    distributions would ask for at this size (requests, tokens, cost) and builds nothing.

    Example: [bold]genies build --benchmark genies --mirror ../shared/sources --version 1.0.0[/]
    Example: [bold]genies build alpaca_easy cooking --limit 20 --dry-run[/]
    """
    from builders.discovery import catalog as shared_catalog
    from builders.discovery import resolved
    from builders.pipeline import (
        BuildFailed,
        BuildOptions,
        BuildRequest,
        run_build,
        select_distributions,
    )

    catalog = shared_catalog()
    options = BuildOptions(
        seed=seed, train_size=train_size, test_size=test_size, limit=limit,
        mirror=tuple(mirror) if mirror else None, cache_dir=cache_dir, fetch=fetch, offline=offline,
    )
    selected = select_distributions(catalog, names or [], category, benchmark)
    if dry_run:
        _dry_run(selected, options, offline, llm_structured)
        return
    request = BuildRequest(
        names=selected, options=options, out=artifacts_root(out), dataset=dataset, version=version, strict=strict,
        allow_failed=allow_failed,
        llm=(_llm_engine(offline, llm_structured, replay, llm_mode) if any(b.may_call_llm for b in resolved(selected).values())
             else None),
        catalog=catalog,
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
            console.print(_results_table(exc.report, verbose))
            _print_skips(exc.report, options, verbose)
            _print_failures(exc.report.results)
            raise
    if as_json:
        print_json(_report_json(report))
    else:
        console.print(_results_table(report, verbose))
        _print_skips(report, options, verbose)
        if request.llm is not None and request.llm.stats.by_step:
            console.print(request.llm.summary_table())
        _print_notes(report)
        _print_outcome(report, version_given=version is not None)
    _exit_if_partial(report)


def _exit_if_partial(report: BuildReport) -> None:
    """A version exported with --allow-failed is not a full build: scripts must be able to tell."""
    from builders.pipeline import FAILED

    failed = report.with_status(FAILED)
    if failed:
        _print_failures(failed)
        err_console.print(f"[bold yellow]partial:[/] {len(failed)} distribution(s) failed and are not in "
                          f"{report.path}: {', '.join(r.name for r in failed)}")
        raise typer.Exit(PARTIAL_EXIT_CODE)


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
