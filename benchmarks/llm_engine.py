"""Throughput and fault-tolerance benchmark of the LLM engine.

    python benchmarks/llm_engine.py --requests 2000 --cache /tmp/llm-bench --concurrency 64 --latency 0.05
    python benchmarks/llm_engine.py --requests 2000 --cache /tmp/llm-faults --rate-429 0.1 --rate-500 0.02
    python benchmarks/llm_engine.py --base-url http://127.0.0.1:8000/v1 --requests 500 --cache /tmp/c
    python benchmarks/llm_engine.py --mode batch --requests 20000 --batch-delay 1.0

Sends N distinct chat requests through the engine and prints wall time, requests/s, retries and cache
hits. `--mode batch` sends them through the Batch API instead (the test server completes a batch
`--batch-delay` seconds after it was created) and also prints requests/s excluding that delay: the
cost of the batch path itself (writing lines, uploading, polling, downloading, validating, committing). Without --base-url it starts tests/llm_server.py in a subprocess (latency and fault rates from the
flags) and also reports the ideal time (N x latency / concurrency) and, from the server's own counters,
whether any request was answered twice. Run it again with the same --cache: nothing is sent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builders.llm import ChatRequest, Engine, LLMConfig  # noqa: E402
from tests.llm_server import FAULT_FLAGS, add_fault_arguments  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="an OpenAI-compatible server; default: start tests/llm_server.py")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cache", type=Path, help="cache file or directory (default: a fresh temporary one)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--model", default="test-model")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    parser.add_argument("--max-attempts", type=int, default=8)
    parser.add_argument("--transport", choices=["aiohttp", "openai"], default="aiohttp",
                        help="plain aiohttp (the engine's default, less CPU per request) or the openai SDK")
    parser.add_argument("--mode", choices=["live", "batch"], default="live",
                        help="live calls, or the Batch API (polled every 10 ms)")
    server = parser.add_argument_group("own server (ignored with --base-url)")
    server.add_argument("--port", type=int, default=18517,
                        help="fixed, because the base URL is part of every cache key: a rerun must use the same")
    add_fault_arguments(server, latency=0.05)
    server.add_argument("--batch-delay", type=float, default=1.0, help="seconds the server takes per batch")
    return parser.parse_args()


@contextmanager
def own_server(args: argparse.Namespace):
    """tests/llm_server.py in a subprocess (so it has its own core); yields its base URL."""
    command = [sys.executable, str(REPO / "tests" / "llm_server.py"), "--port", str(args.port),
               "--latency", str(args.latency), "--batch-delay", str(args.batch_delay),
               *[part for flag in FAULT_FLAGS for part in (flag, str(getattr(args, flag[2:].replace("-", "_"))))]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        if not url:
            sys.exit(f"the test server could not start on port {args.port}: pick another with --port")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def server_counters(base_url: str) -> dict | None:
    """The test server's per-request counters, or None for a server that has no /_stats."""
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_stats", timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def run(args: argparse.Namespace, base_url: str, cache: Path) -> int:
    config = LLMConfig(base_url=base_url, api_key=args.api_key, model=args.model, cache_path=cache,
                       concurrency=args.concurrency, transport=args.transport, timeout_s=args.timeout,
                       max_attempts=args.max_attempts, mode=args.mode, batch_poll_s=0.01,
                       backoff_s=0.1, max_wait_s=5.0)
    requests = [ChatRequest([{"role": "user", "content": f"Benchmark request {i}: say something about {i}."}],
                            step="benchmark", params={"max_tokens": 32})
                for i in range(args.requests)]
    if args.mode == "batch":
        started = time.perf_counter()
        import openai  # noqa: F401  the batch path imports the SDK once; timed apart from the path itself

        print(f"openai import  {time.perf_counter() - started:.3f} s  (once per process, not in the numbers below)")
    with Engine(config) as engine:
        start, cpu_start = time.perf_counter(), time.process_time()
        results = engine.run_batch(requests)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    stats = engine.stats.total()
    unanswered = [r for r in results if not r.ok]
    print(f"transport      {args.transport}")
    print(f"requests       {len(requests)}")
    print(f"wall time      {wall:.3f} s")
    print(f"requests/s     {len(requests) / wall:.1f}")
    print(f"client CPU     {cpu:.3f} s  ({cpu / len(requests) * 1000:.2f} ms per request)")
    print(f"sent           {stats.sent}")
    print(f"cache hits     {stats.hits}")
    print(f"retries        {stats.retries}")
    print(f"not answered   {len(unanswered)}" + (f"  e.g. {unanswered[0].reason}" if unanswered else ""))
    counters = server_counters(base_url)
    if args.mode == "batch":
        print_batch_numbers(args, engine, len(requests), wall, counters)
    elif not args.base_url:
        ideal = args.requests * args.latency / args.concurrency
        print(f"ideal          {ideal:.3f} s  (N x latency / concurrency)")
        print(f"wall / ideal   {wall / ideal:.2f}")
    if counters is not None:
        twice = sum(1 for n in counters["successes"].values() if n > 1)
        print(f"server saw     {sum(counters['hits'].values())} arrivals, "
              f"{sum(counters['successes'].values())} answers, {twice} requests answered twice")
    return 1 if unanswered else 0


def print_batch_numbers(args: argparse.Namespace, engine: Engine, count: int, wall: float,
                        counters: dict | None) -> None:
    """The batch path's own speed: the wall time less the test server's completion delay per batch (the
    rounds of batches run one after another; a resumed or resubmitted batch waits the delay again), and
    less the time the server spent answering the lines (what a model would spend generating)."""
    counts = engine.batch_counts
    print(f"batches        {counts.submitted} submitted, {counts.resumed} resumed, {counts.expired} lines expired")
    if args.base_url or counters is None:
        return
    delay = args.batch_delay * (counts.submitted + counts.resumed)
    answering = counters.get("batch_seconds", 0.0)
    print(f"server delay   {delay:.3f} s  (completion delay, excluded below)")
    print(f"requests/s     {count / max(wall - delay, 1e-9):.1f}  (batch path, excluding the delay)")
    print(f"server work    {answering:.3f} s  (answering the lines in the server process)")
    print(f"requests/s     {count / max(wall - delay - answering, 1e-9):.1f}  (client side alone)")


def main() -> int:
    args = parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="llm-bench-"))
    print(f"cache          {cache}")
    if args.base_url:
        return run(args, args.base_url, cache)
    with own_server(args) as base_url:
        return run(args, base_url, cache)


if __name__ == "__main__":
    sys.exit(main())
