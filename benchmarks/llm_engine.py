"""Throughput and fault-tolerance benchmark of the LLM engine.

    python benchmarks/llm_engine.py --requests 2000 --cache /tmp/llm-bench --concurrency 64 --latency 0.05
    python benchmarks/llm_engine.py --requests 2000 --cache /tmp/llm-faults --rate-429 0.1 --rate-500 0.02
    python benchmarks/llm_engine.py --base-url http://127.0.0.1:8000/v1 --requests 500 --cache /tmp/c

Sends N distinct chat requests through the engine and prints wall time, requests/s, retries and cache
hits. Without --base-url it starts tests/llm_server.py in a subprocess (latency and fault rates from the
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
    parser.add_argument("--transport", choices=["openai", "aiohttp"], default="openai",
                        help="the openai SDK, or the same protocol over plain aiohttp (less CPU per request)")
    server = parser.add_argument_group("own server (ignored with --base-url)")
    server.add_argument("--port", type=int, default=18517,
                        help="fixed, because the base URL is part of every cache key: a rerun must use the same")
    add_fault_arguments(server, latency=0.05)
    return parser.parse_args()


@contextmanager
def own_server(args: argparse.Namespace):
    """tests/llm_server.py in a subprocess (so it has its own core); yields its base URL."""
    command = [sys.executable, str(REPO / "tests" / "llm_server.py"), "--port", str(args.port),
               "--latency", str(args.latency),
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
                       max_attempts=args.max_attempts,
                       backoff_s=0.1, max_wait_s=5.0)
    requests = [ChatRequest([{"role": "user", "content": f"Benchmark request {i}: say something about {i}."}],
                            step="benchmark", params={"max_tokens": 32})
                for i in range(args.requests)]
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
    if not args.base_url:
        ideal = args.requests * args.latency / args.concurrency
        print(f"ideal          {ideal:.3f} s  (N x latency / concurrency)")
        print(f"wall / ideal   {wall / ideal:.2f}")
    counters = server_counters(base_url)
    if counters is not None:
        twice = sum(1 for n in counters["successes"].values() if n > 1)
        print(f"server saw     {sum(counters['hits'].values())} arrivals, "
              f"{sum(counters['successes'].values())} answers, {twice} requests answered twice")
    return 1 if unanswered else 0


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
