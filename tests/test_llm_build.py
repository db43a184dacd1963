"""An LLM builder run through the real pipeline: with a server that answers garbage, every candidate row
ends up built or rejected with a reason and its raw text; nothing is silently empty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders.discovery import discover
from builders.llm import ChatRequest, Engine, JsonSchema, LLMConfig
from builders.pipeline import BUILT, FAILED, BuildOptions, build_distribution
from builders.registry import BUILDERS, BuildContext, distribution
from builders.schema import Provenance, Record
from tests.llm_server import LLMServer, ServerConfig

NAME = "llm_engine_probe"
CANDIDATES = 40
WRONG = {"type": "object", "required": ["wrong"], "properties": {"wrong": {"type": "string", "minLength": 1}},
         "additionalProperties": False}


def build_probe(ctx: BuildContext) -> Iterator[Record]:
    """Arithmetic questions with the true sum preferred over an LLM-written wrong one."""
    requests = [ChatRequest([{"role": "user", "content": f"Give a wrong answer to {i}+{i}, as JSON."}],
                            step=f"{NAME}.wrong", response_format=JsonSchema(WRONG), params={"temperature": 0})
                for i in range(CANDIDATES)]
    for i, result in enumerate(ctx.llm.run_batch(requests, show_progress=False)):
        if not result.ok:
            ctx.reject(result.reason, {"request": result.key, "raw": result.raw})
            continue
        yield Record(distribution=ctx.distribution, prompt=f"What is {i}+{i}?",
                     responses=[str(2 * i), result.parsed["wrong"]], preferred=0, group=f"probe:{i}",
                     provenance=Provenance("probe", llm_model=ctx.llm.model, llm_requests=(result.key,)))


@pytest.fixture
def probe_builder() -> Iterator[None]:
    discover()  # modules first imported inside the snapshot would lose their builders on restore
    with BUILDERS.snapshot():
        distribution(NAME, needs_llm=True)(build_probe)
        yield


def build_with(server: LLMServer, cache: Path):
    config = LLMConfig(base_url=server.url, api_key="k", model="test-model", cache_path=cache, backoff_s=0.01,
                       max_attempts=2, max_reasks=1)
    with Engine(config) as engine:
        return build_distribution(NAME, BuildOptions(train_size=20, test_size=10), engine), engine


def test_without_an_llm_the_distribution_is_skipped(probe_builder: None) -> None:
    result = build_distribution(NAME, BuildOptions(), None)
    assert result.status == "skipped" and "LLM" in result.reason


def test_half_garbage_server_accounts_for_every_row(probe_builder: None, tmp_path: Path) -> None:
    script = {r"to [0-9]*[02468]\+": ['{"wrong": "seven"}'],
              r"to [0-9]*[13579]\+": ["no JSON here", {"malformed": True}, '{"wrong": ""}']}
    with LLMServer(ServerConfig(script=script)) as server:
        result, engine = build_with(server, tmp_path)
    assert result.status == BUILT
    built = sum(len(rows) for rows in result.splits.values())
    rejects = result.context.rejects
    assert built + len(rejects) == CANDIDATES and built > 0 and rejects
    for reject in rejects:
        assert reject.reason and (reject.raw["raw"] or "gave up" in reject.reason)
    assert all(r.responses[1 - r.preferred] == "seven" for rows in result.splits.values() for r in rows)


def test_garbage_only_server_fails_the_distribution_with_reasons(probe_builder: None, tmp_path: Path) -> None:
    script = {".": [{"malformed": True}, "```json\nnot json\n```", {"empty": True}, '{"answer": 1}']}
    with LLMServer(ServerConfig(script=script)) as server:
        result, engine = build_with(server, tmp_path)
    assert result.status == FAILED and "no valid records" in result.reason
    assert len(result.context.rejects) == CANDIDATES
    assert all(r.reason for r in result.context.rejects)
    stats = engine.stats.to_dict()["total"]
    assert stats["calls"] == CANDIDATES and stats["rejects"] + stats["failed"] == CANDIDATES
    json.dumps(stats)
