"""The engine against the local misbehaving server: caching, retries, errors, limits, outputs, dry runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from builders.errors import GeniesError
from builders.llm import (
    ChatRequest,
    Engine,
    JsonSchema,
    LLMConfig,
    Parser,
    RequestCache,
)
from builders.llm.limiter import Limiter
from tests.llm_server import LLMServer, ServerConfig

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}},
          "additionalProperties": False}


@pytest.fixture
def server():
    with LLMServer(ServerConfig()) as server:
        yield server


def make_engine(server: LLMServer, cache: Path, **overrides) -> Engine:
    settings = dict(base_url=server.url, api_key="test", model="test-model", cache_path=cache, backoff_s=0.01,
                    max_wait_s=1.0, timeout_s=5.0, concurrency=8) | overrides
    return Engine(LLMConfig(**settings))


def ask(text: str, step: str = "step", **kwargs) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], step=step, **kwargs)


def run(engine: Engine, requests: list[ChatRequest]):
    with engine:
        return engine.run_batch(requests, show_progress=False)


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_rerun_is_served_from_cache_without_network(server: LLMServer, tmp_path: Path, transport: str) -> None:
    requests = [ask(f"question {i}") for i in range(20)]
    first = run(make_engine(server, tmp_path, transport=transport), requests)
    assert all(r.status == "answer" and not r.from_cache for r in first)
    assert [r.text for r in first] == [f"answer {r.text.split()[1]} to: question {i}" for i, r in enumerate(first)]
    arrivals = sum(server.hits.values())
    engine = make_engine(server, tmp_path, transport=transport)
    second = run(engine, requests)
    assert sum(server.hits.values()) == arrivals == 20
    assert [r.text for r in second] == [r.text for r in first] and all(r.from_cache for r in second)
    assert (engine.stats.total().hits, engine.stats.total().misses) == (20, 0)
    assert engine.summary_table().columns[2].header == "cache hits"


def test_offline_turns_a_miss_into_an_error(server: LLMServer, tmp_path: Path) -> None:
    run(make_engine(server, tmp_path), [ask("cached")])
    engine = make_engine(server, tmp_path, offline=True)
    cached, missing = run(engine, [ask("cached"), ask("never asked")])
    assert cached.ok and missing.status == "offline_miss" and "offline" in missing.reason
    assert sum(server.hits.values()) == 1 and engine.stats.total().offline_misses == 1


def test_429_waits_for_retry_after(tmp_path: Path) -> None:
    script = {"limited": [{"status": 429, "retry_after": 0.4}, "fine"]}
    with LLMServer(ServerConfig(script=script)) as server:
        engine = make_engine(server, tmp_path)
        start = time.perf_counter()
        [result] = run(engine, [ask("limited")])
        assert time.perf_counter() - start >= 0.4
    assert result.text == "fine" and engine.stats.total().retries == 1


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"status": 408}, {"malformed": True},
                                   {"not_completion": True}, {"empty": True}, {"hang": True}])
def test_transient_faults_are_retried(tmp_path: Path, fault: dict, transport: str) -> None:
    with LLMServer(ServerConfig(script={"flaky": [fault, fault, "recovered"]}, hang_s=30)) as server:
        engine = make_engine(server, tmp_path, timeout_s=0.5, transport=transport)
        [result] = run(engine, [ask("flaky")])
        assert result.text == "recovered" and engine.stats.total().retries == 2
        assert list(server.successes.values()) == [1]


def test_a_server_that_only_answers_garbage_fails_every_request_with_a_reason(tmp_path: Path) -> None:
    config = ServerConfig(script={".": [{"malformed": True}, {"empty": True}, {"not_completion": True}]})
    with LLMServer(config) as server:
        engine = make_engine(server, tmp_path, max_attempts=3)
        results = run(engine, [ask(f"q{i}") for i in range(5)])
        assert {r.status for r in results} == {"failed"}
        assert all(r.text is None and "gave up after 3 attempts" in r.reason for r in results)
        assert RequestCache(tmp_path).counts() == {"answer": 0, "error": 0}
        run(make_engine(server, tmp_path, max_attempts=3), [ask("q0")])
        assert sum(server.hits.values()) == 5 * 3 + 3, "transient failures are not cached"


def test_deterministic_4xx_is_cached_as_an_error(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(script={"too long": [{"status": 400, "message": "context too long"}]})) as server:
        [first] = run(make_engine(server, tmp_path), [ask("too long")])
        [again] = run(make_engine(server, tmp_path), [ask("too long")])
        assert first.status == again.status == "error" and "context too long" in first.reason
        assert again.from_cache and sum(server.hits.values()) == 1


def test_bad_credentials_stop_the_run(tmp_path: Path) -> None:
    with (LLMServer(ServerConfig(script={".": [{"status": 401}]})) as server,
          pytest.raises(GeniesError, match="check OPENAI_API_KEY")):
        run(make_engine(server, tmp_path), [ask(f"q{i}") for i in range(3)])


def test_identical_requests_in_flight_are_sent_once(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(latency_s=0.2)) as server:
        results = run(make_engine(server, tmp_path), [ask("same")] * 5)
        assert len({r.text for r in results}) == 1 and sum(server.hits.values()) == 1


def test_concurrency_and_rate_limits_hold(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(latency_s=0.05)) as server:
        run(make_engine(server, tmp_path / "a", concurrency=3), [ask(f"c{i}") for i in range(12)])
        assert server.max_in_flight == 3
        start = time.perf_counter()
        run(make_engine(server, tmp_path / "b", concurrency=64, rpm=3000), [ask(f"r{i}") for i in range(100)])
        assert time.perf_counter() - start >= 0.9, "3000 rpm = 50/s: 100 requests minus a 50-request burst"


def test_json_schema_answer_is_reasked_then_parsed(tmp_path: Path) -> None:
    script = {"compute": ["the answer is 4", '{"answer": "four"}', '```json\n{"answer": 4}\n```']}
    with LLMServer(ServerConfig(script=script)) as server:
        engine = make_engine(server, tmp_path, structured="json_schema")
        [result] = run(engine, [ask("compute 2+2", response_format=JsonSchema(SCHEMA))])
        assert result.parsed == {"answer": 4} and engine.stats.total().reasks == 2
        [replayed] = run(make_engine(server, tmp_path, offline=True, structured="json_schema"),
                         [ask("compute 2+2", response_format=JsonSchema(SCHEMA))])
        assert replayed.parsed == {"answer": 4} and sum(server.hits.values()) == 3


def test_unparseable_rows_are_rejected_with_raw_text(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(script={"list": ["not a list at all"]})) as server:
        engine = make_engine(server, tmp_path, max_reasks=1)
        [result] = run(engine, [ask("list three colours", parser=parse_list, params={"temperature": 0})])
        assert result.status == "rejected" and result.raw == "not a list at all" and result.text is None
        assert "after 1 re-asks: expected lines starting with '- '" in result.reason
        assert engine.stats.total().rejects == 1
        assert sum(server.hits.values()) == 2


def parse_list(text: str) -> list[str]:
    lines = text.splitlines()
    if not all(line.startswith("- ") for line in lines):
        raise ValueError("expected lines starting with '- '")
    return [line[2:] for line in lines]


def test_resample_reasks_use_distinct_cache_keys(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(script={"pick": ["maybe", "- red"]})) as server:
        [result] = run(make_engine(server, tmp_path),
                       [ask("pick", response_format=Parser(parse_list, reask="resample"))])
        assert result.parsed == ["red"] and len(server.hits) == 2


def test_dry_run_counts_and_prices_without_sending(server: LLMServer, tmp_path: Path) -> None:
    run(make_engine(server, tmp_path), [ask("already cached")])
    engine = make_engine(server, tmp_path, dry_run=True, model="gpt-4o-mini")
    requests = [ask("x" * 400, params={"max_tokens": 100}) for _ in range(1)]
    requests += [ask(f"json {i}", step="json", response_format=JsonSchema(SCHEMA)) for i in range(3)]
    *results, cached = run(engine, [*requests, ask("already cached", params={"model": "test-model"})])
    assert sum(server.hits.values()) == 1 and cached.status == "answer" and cached.from_cache
    assert all(r.status == "dry_run" for r in results) and results[1].parsed == {"answer": 0}
    step = engine.stats.step("step")
    assert (step.planned, step.est_prompt_tokens, step.est_completion_tokens) == (1, 104, 100)
    assert step.est_cost_usd == pytest.approx((104 * 0.15 + 100 * 0.60) / 1e6)
    assert engine.stats.step("json").est_completion_tokens == 3 * engine.config.completion_tokens_guess
    assert engine.summary_table().columns[1].header == "requests to send"
    assert engine.stats.to_dict()["total"]["misses"] == 4


def test_chat_from_a_running_loop(server: LLMServer, tmp_path: Path) -> None:
    async def main(engine: Engine) -> str:
        result = await engine.chat([{"role": "user", "content": "async"}], step="s", temperature=0.2)
        sync_results = engine.run_batch([ask("from sync code inside a loop")], show_progress=False)
        await engine.aclose()
        return result.text + sync_results[0].text

    with make_engine(server, tmp_path) as engine:
        assert "to: async" in asyncio.run(main(engine))


def test_token_budget_waits_and_settles() -> None:
    async def main() -> tuple[float, float]:
        limiter = Limiter(concurrency=8, tpm=60_000)  # 1,000 tokens a second, 1,000 at most in the bucket
        start = time.perf_counter()
        for _ in range(2):
            async with limiter.slot(400) as reservation:
                reservation.used = 400
        burst = time.perf_counter() - start
        async with limiter.slot(500) as reservation:
            reservation.used = 50
        async with limiter.slot(600):
            pass
        return burst, time.perf_counter() - start

    burst, total = asyncio.run(main())
    assert burst < 0.2, "the first second's budget is available at once (an empty bucket would wait 0.4 s)"
    assert 0.25 <= total < 0.75, "waits 0.3 s for the third; the refund of 450 tokens cuts the fourth wait to 0.15 s"


def test_server_lists_its_model(server: LLMServer) -> None:
    import openai

    assert [m.id for m in openai.OpenAI(base_url=server.url, api_key="k").models.list()] == ["test-model"]
