"""A run killed with SIGKILL and started again sends no request that had completed before the kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.llm_server import LLMServer, ServerConfig

REQUESTS = 200
CONCURRENCY = 4
CHILD = """
import sys
from pathlib import Path
from builders.llm import ChatRequest, Engine, LLMConfig

url, cache, n, concurrency = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = LLMConfig(base_url=url, api_key="k", model="test-model", cache_path=cache, concurrency=concurrency)
with Engine(config) as engine:
    requests = [ChatRequest([{"role": "user", "content": f"resume {i}"}], step="resume") for i in range(n)]
    print(sum(result.ok for result in engine.run_batch(requests, show_progress=False)))
"""


def start_run(url: str, cache: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", CHILD, url, str(cache), str(REQUESTS), str(CONCURRENCY)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cached_keys(cache: Path) -> set[str]:
    with sqlite3.connect(cache / "llm-cache.sqlite") as db:
        return {key for (key,) in db.execute("SELECT key FROM requests WHERE outcome = 'answer'")}


def wait_for_answers(server: LLMServer, process: subprocess.Popen, count: int, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while sum(server.successes.values()) < count:
        assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def test_rerun_after_sigkill_resends_nothing_completed(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(latency_s=0.02)) as server:
        first = start_run(server.url, tmp_path)
        wait_for_answers(server, first, REQUESTS // 4)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        completed = cached_keys(tmp_path)
        arrivals_at_kill = {key: server.hits[key] for key in completed}
        assert REQUESTS // 4 - CONCURRENCY <= len(completed) < REQUESTS

        second = start_run(server.url, tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert out.strip() == str(REQUESTS)
        assert {key: server.hits[key] for key in completed} == arrivals_at_kill
        assert len(cached_keys(tmp_path)) == REQUESTS
        answered_twice = [key for key, n in server.successes.items() if n > 1]
        assert len(answered_twice) <= CONCURRENCY, "only requests in flight at the kill may be sent again"
