"""`genies llm`: the request cache's batch files, for answering a build's requests offline (`vllm run-batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builders.cli.build import (
    Benchmark,
    CacheDir,
    Category,
    Fetch,
    Limit,
    Mirror,
    Names,
    Seed,
    Structured,
    TestSize,
    TrainSize,
)
from builders.cli.common import console, err_console
from builders.errors import GeniesError

llm_app = typer.Typer(
    help=(
        "The LLM request cache's batch files: export a build's missing requests as batch input lines, "
        "import the answer lines that OpenAI's Batch API or `vllm run-batch` wrote.\n\n"
        "Example: [bold]genies llm export-requests cooking --limit 20 --out requests.jsonl[/]"
    ),
    no_args_is_help=True,
)


@llm_app.command("export-requests")
def export_requests_command(
    out: Annotated[Path, typer.Option(help="The batch input file to write (JSONL).")],
    names: Names = None,
    category: Category = None,
    benchmark: Benchmark = None,
    mirror: Mirror = None,
    cache_dir: CacheDir = None,
    fetch: Fetch = False,
    seed: Seed = 0,
    train_size: TrainSize = 600,
    test_size: TestSize = 250,
    limit: Limit = None,
    llm_structured: Structured = None,
) -> None:
    """Write the LLM requests a build would send, and the cache cannot answer, as batch input lines.

    The build runs offline against the cache (nothing is sent, nothing is written but --out): each
    missing request becomes one line `{"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions",
    "body": ...}` and is remembered in the cache, so `genies llm import-answers` can commit its answer.
    A step that needs an earlier step's answers asks only once those are in the cache: repeat export,
    run, import until export writes no request; then `genies build --offline` sends nothing.

    Example: [bold]genies llm export-requests cooking --limit 20 --out requests.jsonl[/]
    Then:    [bold]vllm run-batch -i requests.jsonl -o answers.jsonl --model M[/]
    """
    from builders.discovery import catalog as shared_catalog
    from builders.dry_run import llm_distributions
    from builders.llm import engine_from_env
    from builders.llm.batch import write_requests
    from builders.pipeline import (
        BuildOptions,
        DistributionResult,
        build_distribution,
        select_distributions,
    )

    options = BuildOptions(seed=seed, train_size=train_size, test_size=test_size, limit=limit, mirror=tuple(mirror) if mirror else None,
                           cache_dir=cache_dir, fetch=fetch)
    selected = llm_distributions(select_distributions(shared_catalog(), names or [], category, benchmark))
    engine = engine_from_env(offline=True, structured=llm_structured)
    if engine is None:
        raise GeniesError("export-requests needs the LLM server and model named: both are part of every "
                          "request's cache key", "set OPENAI_BASE_URL (any URL you will use for the "
                          "offline rebuild) and GENIES_LLM_MODEL (the model the answers will come from)")
    with engine:
        built: dict[str, DistributionResult] = {}
        for name in selected:
            build_distribution(name, options, engine, built)
        write_requests(engine.cache, engine.misses, out)
        hits = engine.stats.total().hits
    console.print(f"{len(engine.misses):,} requests written to {out} ({hits:,} answered by the cache "
                  f"{engine.cache.path}, model {engine.model})")
    if engine.misses:
        console.print(f"answer them, e.g. [bold]vllm run-batch -i {out} -o answers.jsonl --model {engine.model}[/], "
                      "then [bold]genies llm import-answers answers.jsonl[/]")


@llm_app.command("import-answers")
def import_answers_command(
    answers: Annotated[Path, typer.Argument(help="Batch answer lines (JSONL): OpenAI's output or error "
                                                 "file, or what `vllm run-batch` wrote.")],
) -> None:
    """Validate batch answer lines and commit each answer to the request cache under its request's key.

    A line's custom_id must name a request `genies llm export-requests` wrote (to this cache) and appear
    once; its response must be a usable chat completion. Unknown ids, duplicates, errors and unreadable
    lines are reported and never committed; the command then exits with code 1 (after committing the
    good ones).

    Example: [bold]genies llm import-answers answers.jsonl[/]
    """
    from builders.llm import RequestCache, resolve_config
    from builders.llm.batch import import_answers, read_text

    with RequestCache(resolve_config().cache_path) as cache:
        report = import_answers(cache, read_text(answers), source=answers.name)
        path = cache.path
    counts, *problems = report.lines()
    console.print(counts)
    for line in problems:
        err_console.print(line)
    console.print(f"cache: {path}")
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
