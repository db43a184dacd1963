"""Structured-output modes against servers that accept only some `response_format` shapes (as real ones do)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from builders.llm import ChatRequest, Engine, JsonSchema, LLMConfig, resolve_config
from builders.llm.cache import RequestCache
from builders.llm.structured import ParseError, parse_json
from tests.llm_server import LLMServer, ServerConfig, structured_mode_of

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}},
          "additionalProperties": False}


class Recorder:
    """Answers every request with a valid JSON answer and keeps the bodies it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, body: dict, request_id: str) -> str:
        self.bodies.append(body)
        return json.dumps({"ok": True}) if "ok" in json.dumps(body["messages"]) else json.dumps({"answer": 4})


def make_engine(server: LLMServer, cache: Path, **overrides) -> Engine:
    settings = dict(base_url=server.url, api_key="test", model="test-model", cache_path=cache, backoff_s=0.01,
                    max_wait_s=0.5, timeout_s=5.0) | overrides
    return Engine(LLMConfig(**settings))


def ask_schema(engine: Engine, prompt: str = "compute 2+2"):
    with engine:
        [result] = engine.run_batch([ChatRequest([{"role": "user", "content": prompt}], step="s",
                                                 response_format=JsonSchema(SCHEMA))], show_progress=False)
    return result


@pytest.mark.parametrize(("accepted", "expected"), [
    (("json_schema", "json_object_schema", "json_object"), "json_schema"),
    (("json_object_schema", "json_object"), "json_object_schema"),
    (("json_object",), "json_object"),
    ((), "prompt"),
])
def test_auto_probes_once_and_uses_the_first_mode_the_server_accepts(
        tmp_path: Path, accepted: tuple[str, ...], expected: str) -> None:
    recorder = Recorder()
    with LLMServer(ServerConfig(structured_modes=accepted, responder=recorder)) as server:
        result = ask_schema(make_engine(server, tmp_path))
        assert result.parsed == {"answer": 4}
        sent = recorder.bodies[-1]
        assert structured_mode_of(sent) == expected
        schema_in_prompt = json.dumps(SCHEMA, sort_keys=True) in sent["messages"][-1]["content"]
        assert schema_in_prompt == (expected in ("json_object", "prompt"))
        probes = len(recorder.bodies) - 1
        refused = sum(server.hits.values()) - len(recorder.bodies)
        assert probes == 1 and refused == ["json_schema", "json_object_schema", "json_object", "prompt"].index(expected)
        with RequestCache(tmp_path) as cache:
            assert cache.structured_mode(server.url, "test-model") == expected

        hits = sum(server.hits.values())
        assert ask_schema(make_engine(server, tmp_path), "compute 3+1").parsed == {"answer": 4}
        assert sum(server.hits.values()) == hits + 1, "the remembered mode is used: no second probe"


def test_offline_replay_knows_the_mode_from_the_cached_requests(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(structured_modes=("json_object_schema",), responder=Recorder())) as server:
        assert ask_schema(make_engine(server, tmp_path / "online")).parsed == {"answer": 4}
        with RequestCache(tmp_path / "online") as source, RequestCache(tmp_path / "copy") as copy:
            rows = source._db.execute("SELECT key, outcome, request, body FROM requests").fetchall()
            for key, outcome, request, body in rows:
                copy.put(key, json.loads(request), outcome, json.loads(body))
        hits = sum(server.hits.values())
        replayed = ask_schema(make_engine(server, tmp_path / "copy", offline=True))
        assert replayed.parsed == {"answer": 4} and replayed.from_cache
        assert sum(server.hits.values()) == hits


def test_a_mode_refused_mid_run_falls_back_once_and_is_remembered(tmp_path: Path, caplog) -> None:
    recorder = Recorder()
    with LLMServer(ServerConfig(structured_modes=("json_object_schema",), responder=recorder)) as server:
        with RequestCache(tmp_path) as cache:
            cache.remember_structured_mode(server.url, "test-model", "json_schema")
        engine = make_engine(server, tmp_path)
        with caplog.at_level(logging.WARNING, logger="genies.llm"), engine:
            results = engine.run_batch([ChatRequest([{"role": "user", "content": f"compute {i}"}], step="s",
                                                    response_format=JsonSchema(SCHEMA)) for i in range(5)],
                                       show_progress=False)
        assert [r.parsed for r in results] == [{"answer": 4}] * 5
        assert all(structured_mode_of(b) == "json_object_schema" for b in recorder.bodies)
        assert len([r for r in caplog.records if "refused structured-output mode json_schema" in r.message]) == 1
        assert f"{server.url} refused" in caplog.records[0].message
        with RequestCache(tmp_path) as cache:
            assert cache.structured_mode(server.url, "test-model") == "json_object_schema"


def test_an_invalid_request_500_is_not_retried_and_names_server_and_model(tmp_path: Path) -> None:
    invalid = {"status": 500, "message": "Invalid request: max_tokens must be positive"}
    with LLMServer(ServerConfig(script={"bad": [invalid]})) as server:
        with make_engine(server, tmp_path, max_attempts=6) as engine:
            [result] = engine.run_batch([ChatRequest([{"role": "user", "content": "bad"}], step="s")],
                                        show_progress=False)
        assert result.status == "error" and sum(server.hits.values()) == 1
        assert "HTTP 500" in result.reason and "max_tokens must be positive" in result.reason
        assert server.url in result.reason and "test-model" in result.reason


def test_a_transient_500_is_retried_and_its_body_is_reported(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(script={"busy": [{"status": 500, "message": "model is loading, " + "x" * 400}]})) as server:
        with make_engine(server, tmp_path, max_attempts=3) as engine:
            [result] = engine.run_batch([ChatRequest([{"role": "user", "content": "busy"}], step="s")],
                                        show_progress=False)
        assert result.status == "failed" and sum(server.hits.values()) == 3
        assert "gave up after 3 attempts: HTTP 500" in result.reason and "model is loading" in result.reason
        body = result.reason.split("HTTP 500: ")[1].split(" (server ")[0]
        assert len(body) == 300, "the first 300 characters of the body"


def test_the_mode_is_set_by_environment_and_checked(monkeypatch) -> None:
    assert resolve_config(environ={"GENIES_LLM_STRUCTURED": "prompt"}).structured == "prompt"
    assert resolve_config(environ={}).structured == "auto"
    with pytest.raises(Exception, match="structured-output mode 'json'"):
        resolve_config({"structured": "json"}, environ={})


def test_the_mode_is_part_of_the_cache_key(tmp_path: Path) -> None:
    keys = set()
    with LLMServer(ServerConfig(responder=Recorder())) as server:
        for mode in ("json_schema", "json_object_schema", "json_object", "prompt"):
            keys.add(ask_schema(make_engine(server, tmp_path, structured=mode)).key)
    assert len(keys) == 4


def test_an_answer_with_a_raw_newline_in_a_string_parses_and_prose_does_not() -> None:
    """SmolLM2 under llama-cpp-python's JSON grammar wrote a line break inside a string: json.loads refused
    it ("Invalid control character") and the answer was re-asked until given up."""
    assert parse_json('{"answer": "Step one.\nStep two."}') == {"answer": "Step one.\nStep two."}
    assert parse_json('```json\n{"answer": "a\tb"}\n```') == {"answer": "a\tb"}
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_json("Sure! Here is the answer: 42")
