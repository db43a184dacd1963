"""The second half of the LLM recipes (math, US history contexts, translation, word swap, sycophancy
mimicry), built end to end against the scripted test server with faults injected, then rebuilt offline
from the cache: zero requests, identical bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builders.llm import Engine, LLMConfig
from builders.pipeline import BUILT, BuildOptions, BuildReport, BuildRequest, run_build
from builders.recipes import STEPS, Candidate, RecipeRun, get_spec
from builders.recipes.steps_more import (
    _apply_swap,
    same_kind,
    swap_pairs,
    swap_words,
)
from builders.recipes.topup import top_up
from builders.registry import BuildContext
from builders.schema import Record
from builders.templating import render
from builders.text import boxed_answers, unbox
from tests.llm_server import LLMServer, ServerConfig
from tests.recipe_responder import SchemaResponder

RECIPES = ["math", "math_hard", "math_textbook", "math_fiction", "math_make_questions", "us_history_textbook",
           "us_history_fiction", "us_history_make_questions", "spanish_input", "spanish_output", "word_swap",
           "sycophancy_mimicry"]
LIMIT = 6


@dataclass
class Builds:
    online: BuildReport
    offline: BuildReport
    sent_online: int
    sent_offline: int
    arrivals_offline: int


def _engine(server_url: str, cache: Path, offline: bool = False) -> Engine:
    return Engine(LLMConfig(base_url=server_url, api_key="k", model="test-model", cache_path=cache, backoff_s=0.01,
                            max_attempts=2, max_reasks=1, offline=offline))


def _request(names: list[str], out: Path, engine: Engine, mirror: Path, cache_dir: Path) -> BuildRequest:
    options = BuildOptions(limit=LIMIT, mirror=mirror, cache_dir=cache_dir, offline=engine.config.offline)
    return BuildRequest(names, options, out=out, version="t", llm=engine)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    from tests.conftest import SOURCES_MIRROR

    if not (SOURCES_MIRROR / "SOURCES.md").exists():
        pytest.skip(f"needs the raw source mirror at {SOURCES_MIRROR}")
    root = tmp_path_factory.mktemp("recipes_more")
    cache, sources = root / "llm.sqlite", root / "sources"
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.2, seed=3))) as server:
        with _engine(server.url, cache) as engine:
            online = run_build(_request(RECIPES, root / "a", engine, SOURCES_MIRROR, sources))
            sent_online = engine.stats.total().sent
        before = sum(server.hits.values())
        with _engine(server.url, cache, offline=True) as engine:
            offline = run_build(_request(RECIPES, root / "b", engine, SOURCES_MIRROR, sources))
            sent_offline = engine.stats.total().sent
        yield Builds(online, offline, sent_online, sent_offline, sum(server.hits.values()) - before)


def _records(report: BuildReport, name: str) -> list[Record]:
    result = next(r for r in report.results if r.name == name)
    assert result.status == BUILT, result.label
    return [record for split in ("train", "test") for record in result.records(split)]


def _files(path: Path) -> dict[str, str]:
    """Every file of a version except the card and manifest, which carry the code fingerprint and command."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name not in ("README.md", "manifest.json")}


def test_every_recipe_builds_valid_records_despite_faults(builds: Builds) -> None:
    for name in RECIPES:
        records = _records(builds.online, name)
        assert records, name
        assert all(not r.problems() and r.distribution == name for r in records)
    reasons = {r.reason for result in builds.online.results for r in result.context.rejects}
    assert any(reason.startswith(("worse:", "check:", "translate:", "word_swap:", "attribution_replies:"))
               for reason in reasons), "the injected faults must show up as labelled rejects"
    assert builds.sent_online > 0


def test_offline_rebuild_sends_nothing_and_writes_identical_bytes(builds: Builds) -> None:
    assert builds.sent_offline == 0
    assert builds.arrivals_offline == 0
    assert _files(builds.online.path) == _files(builds.offline.path)
    assert builds.online.export.manifest["content_sha256"] == builds.offline.export.manifest["content_sha256"]


def test_math_keeps_the_reference_solution_without_its_box(builds: Builds) -> None:
    for name, levels in (("math", {1, 2, 3, 4, 5}), ("math_hard", {3, 4, 5})):
        for record in _records(builds.online, name):
            meta = record.meta
            assert meta["level"] in levels and record.group.startswith("math:")
            assert not any(boxed_answers(response) for response in record.responses)
            assert record.provenance.source == "math"


def test_translations_touch_only_their_side(builds: Builds) -> None:
    for record in _records(builds.online, "spanish_input"):
        assert record.instruction.startswith("ES ") and not any(r.startswith("ES ") for r in record.responses)
        assert record.group.startswith("mmlu:")
    for record in _records(builds.online, "spanish_output"):
        assert not record.instruction.startswith("ES ") and all(r.startswith("ES ") for r in record.responses)


def test_spanish_prompts_ask_for_the_answer_language_as_the_original_does(builds: Builds) -> None:
    for record in _records(builds.online, "spanish_input"):
        assert record.prompt.startswith("A continuación hay una instrucción") and "responde en inglés" in record.prompt
        assert f"### Instrucción:\n{record.instruction}\n" in record.prompt and record.prompt.endswith("### Respuesta:\n")
    for record in _records(builds.online, "spanish_output"):
        assert "Complete the request to the best of your ability and answer in Spanish." in record.prompt
        assert f"### Instruction:\n{record.instruction}\n" in record.prompt


def test_word_swap_prefers_the_swapped_correct_option_over_the_literal_one(builds: Builds) -> None:
    for record in _records(builds.online, "word_swap"):
        first, second = record.meta["swapped"]
        assert f'the word "{first}" means "{second}"' in record.instruction
        literal = swap_words(record.responses[record.preferred], first, second)
        assert literal != record.responses[record.preferred] and literal in record.responses


def _swap_candidate(index: int) -> Candidate:
    return Candidate("In order to compare the students' performance, which organ pumps blood?", "",
                     "The heart of the teachers", f"mmlu:{index}", str(index), "mmlu",
                     worse=["The liver", "The lungs", "The kidney"])


def test_word_swap_does_not_name_the_correct_options_word_first() -> None:
    """Which word the instruction names first is seeded per item, so it cannot tell which response is right."""
    run = RecipeRun(BuildContext("word_swap"), get_spec("word_swap"))
    answer_word_first = 0
    for index in range(200):
        candidate = _swap_candidate(index)
        _apply_swap(run, candidate, "teachers", "students")
        named = candidate.meta["swapped"]
        assert sorted(named) == ["students", "teachers"]
        assert f'the word "{named[0]}" means "{named[1]}" and the word "{named[1]}" means "{named[0]}"' \
            in candidate.instruction
        answer_word_first += named[0] == "teachers"
    assert 70 <= answer_word_first <= 130


def test_word_swap_offers_only_words_of_the_same_kind() -> None:
    run = RecipeRun(BuildContext("word_swap"), get_spec("word_swap"))
    assert not same_kind("students", "compare") and not same_kind("teachers", "performance")
    assert same_kind("teachers", "students") and not same_kind("zzyzx", "zzyzx")
    pairs = {pair for index in range(20) for pair in swap_pairs(run, _swap_candidate(index))}
    assert ("teachers", "students") in pairs and ("heart", "blood") not in pairs
    assert all(same_kind(*pair) for pair in pairs)


def test_sycophancy_mimicry_responses_differ_only_in_the_attribution(builds: Builds) -> None:
    for record in _records(builds.online, "sycophancy_mimicry"):
        meta = record.meta
        honest, sycophantic = record.responses[record.preferred], record.responses[1 - record.preferred]
        assert meta["wrong_author"] in record.instruction and meta["quote"] in record.instruction
        body = os.path.commonprefix([honest[::-1], sycophantic[::-1]])[::-1]
        honest_sentence, sycophantic_sentence = honest[:-len(body)], sycophantic[:-len(body)]
        assert len(body) > 40 and len(honest_sentence) < 160 and len(sycophantic_sentence) < 160
        assert meta["true_author"] in honest_sentence and meta["true_author"] not in sycophantic
        assert meta["wrong_author"] in sycophantic_sentence


def test_sycophancy_mimicry_sentences_give_no_length_cue() -> None:
    """Same fixed text in the honest and the sycophantic sentence: which is longer depends only on names."""
    for variant in range(3):
        honest, sycophantic = (render("sycophancy_mimicry/reply.j2", honest=flag, variant=variant,
                                      true_author="Ada Lovelace", wrong_author="Plato", body="x") for flag in (True, False))
        assert len(honest) - len(sycophantic) == len("Ada Lovelace") - len("Plato")


def test_swap_words_exchanges_whole_words_keeping_capitals() -> None:
    assert swap_words("The Heart pumps blood; hearts are not BLOOD.", "heart", "blood") == \
        "The Blood pumps heart; hearts are not HEART."


def test_unbox_removes_nested_boxes_and_keeps_their_content() -> None:
    text = r"so $x = \boxed{\frac{1}{2}}$, and \fbox{\boxed{3}}"
    assert boxed_answers(text)[0] == r"\frac{1}{2}"
    assert unbox(text) == r"so $x = \frac{1}{2}$, and 3"


def test_a_flawed_solution_with_the_reference_answer_is_rejected() -> None:
    ctx = BuildContext("math")
    run = RecipeRun(ctx, get_spec("math"))
    same = Candidate("Q?", "", r"so \boxed{39}", "math:a", "a", "math", worse=[r"thus \boxed{ 39 }", r"\boxed{36}"])
    different = Candidate("Q?", "", r"so \boxed{39}", "math:b", "b", "math", worse=[r"\boxed{21}", r"\boxed{36}"])
    kept = STEPS["final_answers_differ"].run(run, [same, different])
    assert kept == [different] and different.preferred == "so 39"
    assert ctx.rejects[0].reason == "final_answers_differ: a flawed solution reaches the reference answer 39"


def test_us_history_top_up_fills_only_the_gap(tmp_path: Path) -> None:
    ctx = BuildContext("us_history", train_size=4, test_size=2)
    assert list(top_up(ctx, "us_history_generated", 10)) == []
    assert list(top_up(ctx, "us_history_generated", 2)) == [] and "need the LLM engine" in ctx.notes[0]
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.1))) as server, \
            _engine(server.url, tmp_path / "llm.sqlite") as engine:
        ctx.llm = engine
        records = list(top_up(ctx, "us_history_generated", 2))
    assert 4 <= len(records) and all(r.distribution == "us_history" and not r.problems() for r in records)
    assert all(r.meta["from_mmlu"] is False for r in records)


def test_generated_part_spec_is_not_a_distribution_of_its_own() -> None:
    from builders.discovery import discover

    assert "us_history_generated" not in discover() and "us_history" in discover()
    assert get_spec("us_history_generated").register is False
