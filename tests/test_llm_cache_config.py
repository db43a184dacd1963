"""Request cache keys and persistence, configuration precedence, Retry-After parsing, price accounting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from builders.errors import GeniesError
from builders.llm import (
    Engine,
    LLMConfig,
    RequestCache,
    engine_from_env,
    request_key,
    resolve_config,
)
from builders.llm.accounting import Price, RunStats, cost_usd, default_prices
from builders.llm.client import retry_after_seconds

MESSAGES = [{"role": "user", "content": "Name a prime number."}]


def keyed(engine: Engine, **changes) -> str:
    args = {"template": "llm/x.j2@abc", "sample": 0, "reask": 0, "params": {"temperature": 0.0}} | changes
    return request_key(engine.keyed_request(changes.pop("messages", MESSAGES), **args))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with Engine(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m1", cache_path=tmp_path)) as engine:
        yield engine


def test_key_covers_every_part_of_the_request(engine: Engine, tmp_path: Path) -> None:
    base = keyed(engine)
    variants = [
        keyed(engine, params={"temperature": 0.7}),
        keyed(engine, params={"temperature": 0.0, "max_tokens": 10}),
        keyed(engine, params={"temperature": 0.0, "model": "m2"}),
        keyed(engine, sample=1),
        keyed(engine, reask=1),
        keyed(engine, template="llm/x.j2@def"),
        request_key(engine.keyed_request([{"role": "user", "content": "Name a prime."}], template="llm/x.j2@abc",
                                         sample=0, reask=0, params={"temperature": 0.0})),
    ]
    other_server = Engine(LLMConfig(base_url="http://127.0.0.1:10/v1", model="m1", cache_path=tmp_path / "o"))
    variants.append(keyed(other_server))
    assert base not in variants and len(set(variants)) == len(variants)


def test_key_ignores_credentials_and_throughput_knobs(engine: Engine, tmp_path: Path) -> None:
    other = Engine(LLMConfig(base_url="http://127.0.0.1:9/v1/", model="m1", api_key="secret", concurrency=3,
                             rpm=10, tpm=1000, cache_path=tmp_path / "other"))
    assert keyed(engine) == keyed(other)


def test_cache_commits_each_entry_and_keeps_the_first(tmp_path: Path) -> None:
    with RequestCache(tmp_path) as cache:
        cache.put("k", {"r": 1}, "answer", {"text": "first"})
        cache.put("k", {"r": 1}, "answer", {"text": "second"})
        cache.put("e", {"r": 2}, "error", {"status": 400, "message": "bad"})
    with RequestCache(tmp_path / "llm-cache.sqlite") as reopened:
        assert reopened.get("k").body == {"text": "first"}
        assert reopened.get("e").outcome == "error"
        assert reopened.get("missing") is None
        assert reopened.counts() == {"answer": 1, "error": 1}
    mode = sqlite3.connect(tmp_path / "llm-cache.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(GeniesError, match="cannot open the LLM request cache"):
        RequestCache(blocker / "sub" / "cache.sqlite")


def test_config_precedence_flags_env_file(tmp_path: Path) -> None:
    config_file = tmp_path / "llm.toml"
    config_file.write_text('[llm]\nmodel = "from-file"\nconcurrency = 3\nrpm = 100\n'
                           '[llm.prices."from-file"]\ninput = 1.0\noutput = 2.0\n')
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "GENIES_LLM_CONCURRENCY": "7", "GENIES_OFFLINE": "1"}
    config = resolve_config({"rpm": 50, "tpm": None}, environ=env, config_file=config_file)
    assert (config.model, config.concurrency, config.rpm, config.tpm) == ("from-file", 7, 50, None)
    assert config.base_url == "http://127.0.0.1:1/v1" and config.offline is True
    assert config.prices["from-file"] == (1.0, 2.0, 0.5) and "gpt-4o-mini" in config.prices


@pytest.mark.parametrize("content, message", [
    ('[llm]\nconcurency = 3\n', "unknown LLM setting 'concurency'"),
    ('[llm]\nrpm = "fast"\n', "rpm='fast' is not valid"),
    ('[llm]\nconcurrency = 0\n', "concurrency must be at least 1"),
    ('[llm]\ntransport = "aiohtp"\n', "unknown LLM transport 'aiohtp'"),
    ('[llm.prices."m"]\ninput = 1\n', "price of model 'm' is not valid"),
    ('[llm.prices."m"]\ninput = 1\noutput = 1\nbatch_discount = 2\n', "price of model 'm' is not valid"),
    ('[llm]\nmode = "overnight"\n', "overnight"),
    ('[llm\n', "not valid TOML"),
])
def test_bad_config_says_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "llm.toml"
    path.write_text(content)
    with pytest.raises(GeniesError, match=message):
        resolve_config(environ={}, config_file=path)


def test_engine_from_env_is_none_without_a_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GENIES_LLM_CONFIG", "GENIES_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GENIES_LLM_CACHE", str(tmp_path))
    assert engine_from_env() is None and engine_from_env(offline=True) is None
    with engine_from_env(dry_run=True) as planner:
        assert planner.dry_run
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("GENIES_LLM_MODEL", "local")
    with engine_from_env(concurrency=5) as engine:
        assert (engine.config.base_url, engine.model, engine.config.concurrency) == (
            "http://127.0.0.1:8000/v1", "local", 5)
        assert engine.cache.path == tmp_path / "llm-cache.sqlite"


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_costs_are_priced_or_unknown() -> None:
    prices = default_prices()
    assert cost_usd(prices, "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(prices, "gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == pytest.approx(0.375)
    assert cost_usd({"m": Price(1.0, 1.0, batch_discount=0.2)}, "m", 10**6, 0, batch=True) == pytest.approx(0.8)
    assert cost_usd(prices, "my-local-model", 10, 10) is None
    stats = RunStats()
    stats.step("a").add_cost(0.5)
    stats.step("b").add_cost(None)
    assert stats.step("a").cost_usd == 0.5 and stats.total().cost_usd is None
    assert stats.to_dict()["total"]["cost_usd"] is None


def test_the_llm_mode_comes_from_flag_environment_or_file(tmp_path: Path) -> None:
    path = tmp_path / "llm.toml"
    path.write_text('[llm]\nmode = "batch-then-live"\nbatch_poll_s = 5\n')
    environ = {"GENIES_LLM_MODE": "batch", "GENIES_LLM_BATCH_POLL_S": "2.5"}
    assert resolve_config(environ={}).mode == "live"
    assert resolve_config(environ={}, config_file=path).batch_poll_s == 5.0
    assert resolve_config(environ=environ, config_file=path).mode == "batch"
    assert resolve_config(environ=environ).batch_poll_s == 2.5
    assert resolve_config({"mode": "live"}, environ=environ, config_file=path).mode == "live"
