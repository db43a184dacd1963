"""Recipe benchmark: every LLM recipe built at a small size against the local test server, then replayed.

    python benchmarks/recipes.py --limit 20 --latency 0.05 --concurrency 64 [--fault-rate 0.15]
    python benchmarks/recipes.py --names alpaca_easy,cooking --limit 50

Starts tests/llm_server.py in this process with the schema-shaped responder of tests/recipe_responder.py
(answers shaped by each request's JSON schema; `--fault-rate` of them broken on purpose), builds the
recipes with `run_build` into a temporary directory, and prints per distribution the rows, rejects,
requests and seconds; then rebuilds offline into a fresh directory from the cache and prints its time,
the requests it sent (must be 0) and whether the two versions are byte-identical, and the size of the
LLM answers the version carries (llm_requests/) per 1,000 rows. The ideal online time is requests x
latency / concurrency.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builders.llm import Engine, LLMConfig  # noqa: E402
from builders.pipeline import BuildOptions, BuildRequest, run_build  # noqa: E402
from builders.recipes import load_specs  # noqa: E402
from tests.llm_server import LLMServer, ServerConfig  # noqa: E402
from tests.recipe_responder import SchemaResponder  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", help="comma-separated recipes (default: every registered generate recipe)")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    return parser.parse_args()


def default_names() -> list[str]:
    return sorted(n for n, s in load_specs().items() if s.register and s.steps[0] == "generate")


def build(server: LLMServer, cache: Path, out: Path, names: list[str], args: argparse.Namespace, offline: bool):
    config = LLMConfig(base_url=server.url, api_key="k", model="test-model", cache_path=cache, transport="aiohttp",
                       concurrency=args.concurrency, backoff_s=0.01, offline=offline)
    with Engine(config) as engine:
        started = time.perf_counter()
        report = run_build(BuildRequest(names=names, options=BuildOptions(limit=args.limit), out=out,
                                        version="bench", llm=engine))
        return report, engine.stats.to_dict(), time.perf_counter() - started


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> None:
    args = parse_args()
    names = args.names.split(",") if args.names else default_names()
    config = ServerConfig(latency_s=args.latency, responder=SchemaResponder(fault_rate=args.fault_rate))
    with tempfile.TemporaryDirectory() as tmp, LLMServer(config) as server:
        tmp = Path(tmp)
        report, stats, online = build(server, tmp / "cache", tmp / "a", names, args, offline=False)
        sent = sum(server.hits.values())
        replay, _, offline = build(server, tmp / "cache", tmp / "b", names, args, offline=True)
        print(f"{'distribution':30} {'rows':>5} {'rejects':>8} {'requests':>9} {'seconds':>8}")
        steps = stats["steps"]
        for result in report.results:
            requests = sum(s["calls"] for step, s in steps.items() if step.split(".")[0] == result.name)
            rejects = len(result.context.rejects) if result.context else 0
            rows = result.rows("train") + result.rows("test")
            print(f"{result.name:30} {rows:5} {rejects:8} {requests:9} {result.seconds:8.2f}")
        total = stats["total"]
        ideal = total["sent"] * args.latency / args.concurrency
        print(f"online: {online:.1f} s, {total['sent']} requests sent ({total['retries']} retries, "
              f"{total['reasks']} re-asks), ideal {ideal:.1f} s, {report.total_rows} rows")
        print(f"offline replay: {offline:.1f} s, requests sent {sum(server.hits.values()) - sent}, "
              f"byte-identical: {files(report.path) == files(replay.path)}")
        print_llm_requests_size(report.path, report.total_rows)


def print_llm_requests_size(version: Path, rows: int) -> None:
    """The size of the answers a version publishes with it (llm_requests/), per 1,000 LLM-written rows."""
    manifest = json.loads((version / "manifest.json").read_text())
    size = (version / manifest["llm_requests"]["path"]).stat().st_size
    print(f"llm_requests: {manifest['llm_requests']['rows']} requests, {size / 1e6:.2f} MB for {rows} rows "
          f"= {size / 1e6 / rows * 1000:.2f} MB per 1,000 LLM-written rows")


if __name__ == "__main__":
    main()
