"""Batch generation: the request cache's batch files (export, `vllm run-batch`-style answering, import)
and the OpenAI Batch API mode, against the local stand-in server (tests/llm_server.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from openai import OpenAI
from typer.testing import CliRunner

from builders.cli import app
from builders.llm import (
    ChatRequest,
    Engine,
    JsonSchema,
    LLMConfig,
    RequestCache,
    request_key,
)
from builders.llm.batch import import_answers, read_answer, request_line
from builders.pipeline import BUILT, BuildOptions, BuildRequest, run_build
from tests.conftest import REPO
from tests.llm_server import LLMServer, ServerConfig
from tests.recipe_responder import SchemaResponder

NAMES = ["cooking"]
MAX_ROUND_TRIPS = 12


def data_files(version: Path) -> dict[str, bytes]:
    return {p.relative_to(version).as_posix(): p.read_bytes() for p in sorted(version.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}


@pytest.fixture
def server():
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.2))) as server:
        yield server


@pytest.fixture
def llm_env(monkeypatch, tmp_path, server):
    """The stand-in named as the server, a fresh cache, no config file."""
    for name in ("OPENAI_API_KEY", "GENIES_LLM_CONFIG", "GENIES_OFFLINE", "GENIES_LLM_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("GENIES_LLM_MODEL", "test-model")
    monkeypatch.setenv("GENIES_LLM_CACHE", str(tmp_path / "cache"))
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def build(out: Path, *extra: str):
    return invoke("build", *NAMES, "--limit", "2", "--out", str(out), "--version", "1.0.0", *extra)


def test_export_run_offline_import_until_nothing_is_missing_then_offline_rebuilds_sending_nothing(
        server, llm_env, monkeypatch):
    requests, answers = llm_env / "requests.jsonl", llm_env / "answers.jsonl"
    exported = []
    for _ in range(MAX_ROUND_TRIPS):
        result = invoke("llm", "export-requests", *NAMES, "--limit", "2", "--out", str(requests))
        assert result.exit_code == 0, result.output
        lines = requests.read_text().splitlines()
        exported.append(len(lines))
        if not lines:
            break
        assert all(json.loads(line)["url"] == "/v1/chat/completions" for line in lines)
        output, errors = server.answer_batch(requests.read_text())
        answers.write_text(output + errors)
        result = invoke("llm", "import-answers", str(answers))
        assert result.exit_code == 0, result.output
        assert f"{len(lines):,} answers committed" in result.output
    assert exported[-1] == 0 and len(exported) > 2, exported
    hits = sum(server.hits.values())
    offline = build(llm_env / "offline", "--offline")
    assert offline.exit_code == 0, offline.output
    assert sum(server.hits.values()) == hits, "the offline rebuild sent nothing"

    monkeypatch.setenv("GENIES_LLM_CACHE", str(llm_env / "live-cache"))
    live = build(llm_env / "live")
    assert live.exit_code == 0, live.output
    rebuilt = data_files(llm_env / "offline" / "genies" / "1.0.0")
    assert {"distributions/cooking/train/data-00000-of-00001.arrow", "llm_requests/requests.parquet"} <= set(rebuilt)
    assert rebuilt == data_files(llm_env / "live" / "genies" / "1.0.0")


def keyed(n: int) -> dict:
    return {"base_url": "http://127.0.0.1:9/v1", "model": "m", "messages": [{"role": "user", "content": f"q{n}"}],
            "params": {"temperature": 0}, "sample": 0, "reask": 0, "template": None}


def completion(text: str) -> dict:
    return {"object": "chat.completion", "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def answer(key: str, text: str) -> dict:
    return {"id": "r", "custom_id": key, "response": {"status_code": 200, "request_id": "x", "body": completion(text)},
            "error": None}


def test_import_commits_only_matched_unique_answers_and_reports_the_rest(tmp_path):
    requests = {request_key(keyed(n)): keyed(n) for n in range(6)}
    k = sorted(requests)
    lines = [
        answer(k[0], "first"),
        answer(k[1], "twice a"), answer(k[1], "twice b"),  # duplicates: neither is committed
        {"id": "r", "custom_id": k[2], "response": {"status_code": 400, "request_id": "x", "body": None},
         "error": "vLLM: bad request"},
        {"id": "r", "custom_id": k[3], "response": None, "error": {"code": "batch_expired", "message": "expired"}},
        {"id": "r", "custom_id": k[4], "response": {"status_code": 200, "request_id": "x", "body": completion("  ")},
         "error": None},
        answer("f" * 64, "for a request nobody exported"),
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + "not json\n"
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.put_pending(requests)
        report = import_answers(cache, text)
        assert report.committed == 1 and cache.get(k[0]).body["text"] == "first"
        assert report.duplicates == [k[1]] and report.unmatched == ["f" * 64]
        assert len(report.errors) == 3 and len(report.malformed) == 1
        assert [key for key in k if cache.get(key) is not None] == [k[0]]
        assert cache.counts() == {"answer": 1, "error": 0}
        again = import_answers(cache, json.dumps(answer(k[0], "first")))
    assert again.committed == 0 and again.already_cached == 1 and not again.problems
    said = " ".join(report.lines())
    assert "1 answers committed" in said and "vLLM: bad request" in said and "expired" in said


def test_import_answers_exits_1_naming_the_problems(llm_env):
    path = llm_env / "answers.jsonl"
    path.write_text(json.dumps(answer("e" * 64, "unknown")) + "\n")
    result = invoke("llm", "import-answers", str(path))
    assert result.exit_code == 1 and "custom_id matching no exported request" in result.output


@pytest.mark.parametrize(("line", "kind"), [
    (answer("k", "fine"), "answer"),
    ({"custom_id": "k", "response": {"status_code": 422, "body": {"error": {"message": "bad schema"}}}}, "refusal"),
    ({"custom_id": "k", "response": {"status_code": 429, "body": {"error": {"message": "slow down"}}}}, "retry"),
    ({"custom_id": "k", "response": {"status_code": 500, "body": None}, "error": "engine died"}, "retry"),
    ({"custom_id": "k", "response": None, "error": {"code": "batch_expired", "message": "late"}}, "retry"),
    ({"custom_id": "k", "response": {"status_code": 200, "body": {"result": "no choices"}}}, "retry"),
])
def test_an_answer_line_is_an_answer_a_refusal_or_worth_sending_again(line, kind):
    read = read_answer(line)
    assert {"answer": read.answer is not None, "refusal": read.refusal is not None, "retry": read.retryable}[kind]


def test_a_request_line_carries_the_key_and_the_live_body():
    request = keyed(1)
    line = json.loads(request_line(request_key(request), request))
    assert line == {"custom_id": request_key(request), "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m", "messages": [{"role": "user", "content": "q1"}], "temperature": 0}}


# The Batch API mode ------------------------------------------------------------------------------------

def batch_engine(server: LLMServer, cache: Path, **settings) -> Engine:
    defaults = {"model": "gpt-4o-mini", "mode": "batch", "max_attempts": 4, "max_reasks": 1, "batch_poll_s": 0.02}
    config = LLMConfig(base_url=server.url, api_key="k", cache_path=cache, backoff_s=0.01, **{**defaults, **settings})
    return Engine(config)


def questions(count: int, step: str = "s") -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"q{i}"}], step=step) for i in range(count)]


def cache_rows(cache: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(cache / "llm-cache.sqlite") as db:
        return set(db.execute("SELECT key, outcome, body FROM requests"))


def test_a_batch_build_writes_the_live_builds_bytes_and_cache(tmp_path):
    names = ["cooking", "alpaca_easy"]
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.25), batch_delay_s=0.05)) as server:
        versions = {}
        for mode in ("live", "batch"):
            with batch_engine(server, tmp_path / mode, mode=mode, model="test-model") as engine:
                request = BuildRequest(names=names, options=BuildOptions(limit=3), out=tmp_path / f"out-{mode}",
                                       version="v1", llm=engine)
                report = run_build(request)
                stats = engine.stats.total()
            assert {r.name: r.status for r in report.results} == dict.fromkeys(names, BUILT)
            versions[mode] = data_files(report.path)
            assert stats.batched == (stats.sent if mode == "batch" else 0) and stats.sent > 0
            assert stats.reasks > 0, "the faulty answers made re-asks: later rounds of a step"
        assert len(server.batches) >= 2 * len(names), "every step's round went out as a batch"
    assert versions["batch"] == versions["live"]
    assert cache_rows(tmp_path / "batch") == cache_rows(tmp_path / "live"), "same keys, same answers"


def test_failed_expired_and_whole_job_failures_are_sent_again_and_nothing_answered_twice(tmp_path):
    script = {r"q1\b": [{"expired": True}, "fine"], r"q2\b": [{"status": 500}, "also fine"],
              r"q3\b": [{"status": 400, "message": "bad request"}]}
    with LLMServer(ServerConfig(script=script, batch_failures=1, batch_delay_s=0.05)) as server, \
            batch_engine(server, tmp_path) as engine:
        results = engine.run_batch(questions(6), show_progress=False)
        batches = list(server.batches.values())
    assert [r.status for r in results] == ["answer", "answer", "answer", "error", "answer", "answer"]
    assert results[1].text == "fine" and results[2].text == "also fine" and "bad request" in results[3].reason
    assert [b["status"] for b in batches] == ["failed", "expired", "completed"]
    assert [b["request_counts"]["total"] for b in batches] == [6, 6, 2], "only failed and expired lines again"
    assert set(server.successes.values()) == {1}
    rows = {key: (outcome, json.loads(body)) for key, outcome, body in cache_rows(tmp_path)}
    assert rows[results[3].key][0] == "error" and len(rows) == 6, "a refusal the server would repeat is cached"
    stats = engine.stats.total()
    assert stats.sent == stats.batched == 6 and stats.refused == 1
    assert "by batch" in [column.header for column in engine.summary_table().columns]
    tokens = sum(rows[r.key][1]["completion_tokens"] for r in results if r.ok)
    assert stats.cost_usd == pytest.approx(tokens * 0.60 / 1e6 * 0.5), "batch prices"


def test_a_request_still_failing_after_max_attempts_batches_fails_with_the_reason(tmp_path):
    with LLMServer(ServerConfig(script={r"q0\b": [{"expired": True}]}, batch_delay_s=0.01)) as server, \
            batch_engine(server, tmp_path, max_attempts=2) as engine:
        result, = engine.run_batch(questions(1), show_progress=False)
    assert result.status == "failed" and "expired" in result.reason and len(server.batches) == 2


def test_a_cancelled_batch_leaves_its_requests_failed_and_is_not_resubmitted(tmp_path):
    with LLMServer(ServerConfig(batch_delay_s=30)) as server, batch_engine(server, tmp_path) as engine:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(engine.run_batch, questions(3), show_progress=False)
            while not any(b["status"] == "in_progress" for b in server.batches.values()):
                assert not running.done(), running.result()
                time.sleep(0.01)
            OpenAI(base_url=server.url, api_key="k").batches.cancel(next(iter(server.batches)))
            results = running.result(timeout=60)
    assert [r.status for r in results] == ["failed"] * 3 and all("cancelled" in r.reason for r in results)
    assert len(server.batches) == 1 and not server.successes


def test_batch_then_live_sends_a_steps_first_round_as_a_batch_and_its_reasks_live(tmp_path):
    wanted = JsonSchema({"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}})
    script = {f"^q{i}$": ["not json", '{"x": 1}'] for i in range(4)}
    requests = [ChatRequest([{"role": "user", "content": f"q{i}"}], step="s", response_format=wanted)
                for i in range(4)]
    with LLMServer(ServerConfig(script=script, batch_delay_s=0.01)) as server, \
            batch_engine(server, tmp_path, mode="batch-then-live", structured="json_schema") as engine:
        results = engine.run_batch(requests, show_progress=False)
    assert [r.parsed for r in results] == [{"x": 1}] * 4
    assert [b["request_counts"]["total"] for b in server.batches.values()] == [4]
    stats = engine.stats.total()
    assert stats.sent == 8 and stats.batched == 4 and stats.reasks == 4


def test_the_dry_run_prices_live_and_batch_side_by_side(tmp_path):
    with Engine(LLMConfig(cache_path=tmp_path, dry_run=True, model="gpt-4o-mini")) as engine:
        engine.run_batch(questions(5), show_progress=False)
        total = engine.stats.total()
        table = engine.summary_table()
    assert total.est_cost_usd and total.est_batch_cost_usd == pytest.approx(total.est_cost_usd / 2)
    assert [c.header for c in table.columns][-2:] == ["est. cost", "est. batch cost"]


RESUME_CHILD = """
import sys
from pathlib import Path
from builders.llm import ChatRequest, Engine, LLMConfig

config = LLMConfig(base_url=sys.argv[1], api_key="k", model="test-model", cache_path=Path(sys.argv[2]),
                   mode="batch", batch_poll_s=0.05)
with Engine(config) as engine:
    requests = [ChatRequest([{"role": "user", "content": f"resume {i}"}], step="resume") for i in range(40)]
    print(sum(result.ok for result in engine.run_batch(requests, show_progress=False)))
"""


def start_child(url: str, cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RESUME_CHILD, url, str(cache)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_build_killed_while_polling_resumes_the_same_batch(tmp_path):
    with LLMServer(ServerConfig(batch_delay_s=3)) as server:
        first = start_child(server.url, tmp_path)
        deadline = time.monotonic() + 60
        while not any(b["status"] == "in_progress" for b in server.batches.values()):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "no batch was polled"
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        with sqlite3.connect(tmp_path / "llm-cache.sqlite") as db:
            recorded = db.execute("SELECT b.id, b.status, COUNT(k.key) FROM batches b JOIN batch_keys k "
                                  "ON k.batch_id = b.id GROUP BY b.id").fetchall()
        assert recorded == [(next(iter(server.batches)), "open", 40)], "the id was stored before polling"
        assert not server.successes

        second = start_child(server.url, tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert out.strip() == "40"
        assert len(server.batches) == 1, "the running batch was picked up, not submitted again"
        assert len(server.successes) == 40 and set(server.successes.values()) == {1}
        with sqlite3.connect(tmp_path / "llm-cache.sqlite") as db:
            assert db.execute("SELECT status FROM batches").fetchall() == [("collected",)]


def test_build_llm_mode_batch_from_the_command_line(server, llm_env, monkeypatch):
    monkeypatch.setenv("GENIES_LLM_BATCH_POLL_S", "0.02")
    result = build(llm_env / "out", "--llm-mode", "batch")
    assert result.exit_code == 0, result.output
    assert server.batches and all(b["status"] == "completed" for b in server.batches.values())
    dry = invoke("build", "cooking", "--limit", "4", "--dry-run")
    assert dry.exit_code == 0, dry.output
    bad = build(llm_env / "out2", "--llm-mode", "overnight")
    assert bad.exit_code != 0 and "overnight" in f"{bad.output} {bad.exception}"


def test_an_open_batch_the_server_does_not_know_is_closed_and_its_requests_sent_again(tmp_path):
    with LLMServer(ServerConfig(batch_delay_s=0.01)) as server, batch_engine(server, tmp_path) as engine:
        keyed = engine.keyed_request([{"role": "user", "content": "q0"}], template=None, sample=0, reask=0, params={})
        engine.cache.put_pending({request_key(keyed): keyed}, batch_id="batch-gone", base_url=server.url)
        result, = engine.run_batch(questions(1), show_progress=False)
        assert result.ok and result.key == request_key(keyed)
        assert engine.batch_counts.resumed == 1 and engine.cache.open_batches(server.url) == {}
        assert len(server.batches) == 1
