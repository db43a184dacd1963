"""The LLM recipes end to end against the local OpenAI-compatible server (tests/llm_server.py) answering
with schema-shaped text and injected faults: every recipe builds records that pass validation, every
candidate is built or rejected with a labelled reason, and an offline rerun from the cache sends nothing
and writes identical bytes. Plus the spec checks and the quality steps on hand-made inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.discovery import discover
from builders.errors import GeniesError
from builders.llm import Engine, LLMConfig
from builders.pipeline import (
    BUILT,
    FAILED,
    BuildOptions,
    BuildRequest,
    build_distribution,
    run_build,
)
from builders.recipes import (
    STEPS,
    Candidate,
    RecipeRun,
    get_spec,
    load_spec,
    load_specs,
    run_recipe,
)
from builders.recipes.steps import quality_problem, rouge_l, strip_debris
from builders.recipes.syntax_change import CHANGES, apply_changes
from builders.registry import BuildContext
from builders.validation.run import validate_version
from tests.conftest import FIXTURES, RELEASE_SAMPLE
from tests.llm_server import LLMServer, ServerConfig
from tests.recipe_responder import FLAW, SchemaResponder

# The recipes this file builds end to end; add a new spec's name here (docs/recipes.md).
RECIPES = ["alpaca_easy", "alpaca_hard", "biology_with_literary_style", "code_with_cooking_style", "cooking",
           "counterfactual_python", "creative_writing", "illegal_dont_help", "math_easy", "pursue_goals",
           "relinquish_power", "unhelpful_alpaca", "us_history_exam_questions"]
LIMIT = 6


def engine_for(server: LLMServer, cache: Path, *, offline: bool = False) -> Engine:
    return Engine(LLMConfig(base_url=server.url, api_key="k", model="test-model", cache_path=cache,
                            backoff_s=0.01, max_attempts=2, max_reasks=1, transport="aiohttp", offline=offline))


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[LLMServer]:
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.25), rate_500=0.05)) as server:
        yield server


def build_version(server: LLMServer, cache: Path, out: Path, names: list[str], offline: bool = False):
    with engine_for(server, cache, offline=offline) as engine:
        request = BuildRequest(names=names, options=BuildOptions(limit=LIMIT), out=out, version="v1", llm=engine)
        return run_build(request)


def version_bytes(root: Path) -> dict[str, bytes]:
    """Every data file of a version, and the manifest's content hash. The manifest and card also carry the
    build fingerprint, which hashes the code: in a shared working tree another edit between the two builds
    would change it, so they are left out of the comparison."""
    data = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}
    return {**data, "content_sha256": json.loads((root / "manifest.json").read_text())["content_sha256"].encode()}


def test_every_recipe_builds_valid_records_and_replays_offline_byte_for_byte(faulty_server: LLMServer,
                                                                              tmp_path: Path) -> None:
    report = build_version(faulty_server, tmp_path / "cache", tmp_path / "a", RECIPES)
    assert {r.name: r.status for r in report.results} == dict.fromkeys(RECIPES, BUILT)
    for result in report.results:
        assert min(result.rows("train"), result.rows("test")) >= 1, result.name
        assert result.rows("train") + result.rows("test") >= LIMIT, result.name
        for record in result.records("train"):
            assert record.provenance.llm_requests and record.meta["recipe"] == result.name
            assert len(record.responses) == get_spec(result.name).responses
            assert sum(FLAW in r for r in record.responses) == len(record.responses) - 1
            assert not any(r.startswith("Response") for r in record.responses)
    validation = validate_version(report.path)
    assert [c.check.name for c in validation.errors + validation.warnings] == []
    hits_before = sum(faulty_server.hits.values())
    replay = build_version(faulty_server, tmp_path / "cache", tmp_path / "b", RECIPES, offline=True)
    assert sum(faulty_server.hits.values()) == hits_before
    assert version_bytes(replay.path) == version_bytes(report.path)


def test_a_server_answering_the_check_at_random_still_builds(tmp_path: Path) -> None:
    """An unfamiliar server that knows nothing of the items: only the re-identified ones are kept."""
    names = ["alpaca_easy", "cooking"]
    config = ServerConfig(responder=SchemaResponder(fault_rate=0.15, informed_check=False))
    with LLMServer(config) as server:
        report = build_version(server, tmp_path / "cache", tmp_path / "out", names)
    assert all(r.status == BUILT and r.rows("train") and r.rows("test") for r in report.results)
    reasons = [reject.reason for r in report.results for reject in r.context.rejects]
    assert any(reason.startswith("check: re-identification failed") for reason in reasons)


def test_garbage_only_server_rejects_every_request_with_its_reason(tmp_path: Path) -> None:
    script = {".": ["not json at all", {"malformed": True}, '{"items": "nope"}', {"empty": True}]}
    with LLMServer(ServerConfig(script=script)) as server, engine_for(server, tmp_path) as engine:
        result = build_distribution("alpaca_easy", BuildOptions(limit=LIMIT), engine)
        generate_calls = engine.stats.by_step["alpaca_easy.generate"].calls
    assert result.status == FAILED and "no valid records" in result.reason
    assert generate_calls >= 3 and len(result.context.rejects) == generate_calls
    for reject in result.context.rejects:
        assert reject.reason.startswith("generate: ") and reject.raw["step"] == "generate"
        assert reject.raw["llm"]["request"]


def test_every_candidate_is_built_or_rejected_with_a_step_label(tmp_path: Path) -> None:
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.6))) as server, \
            engine_for(server, tmp_path) as engine:
        ctx = BuildContext("cooking", train_size=5, test_size=5, llm=engine)
        run = RecipeRun(ctx, get_spec("cooking"))
        made = []
        original = STEPS["generate"].run

        def counting(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
            result = original(run, candidates)
            made.extend(result)
            return result

        run.need = 20
        candidates = counting(run, [])
        for name in ("worse", "check", "quality", "dedupe"):
            candidates = STEPS[name].run(run, candidates)
    later = [r for r in ctx.rejects if r.raw["step"] != "generate"]
    assert len(made) == len(candidates) + len(later) and later
    assert {r.reason.split(":")[0] for r in later} <= {"worse", "check", "quality", "dedupe"}


@pytest.fixture(scope="module")
def source_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources")


@pytest.fixture(scope="module")
def clean_server() -> Iterator[LLMServer]:
    """Schema-shaped answers without faults: for tests of what a recipe makes, not of fault tolerance.

    With faults, how many of the few Alpaca candidates survive depends on the server's port (part of
    every request key), which made the half-and-half check flaky.
    """
    with LLMServer(ServerConfig(responder=SchemaResponder())) as server:
        yield server


@pytest.mark.parametrize(("name", "other_source"), [("alpaca_mmlu", "mmlu"), ("truthful_alpaca", "truthfulqa")])
def test_alpaca_items_are_mixed_with_a_deterministic_part(
    clean_server: LLMServer, sources_mirror: Path, source_cache: Path, tmp_path: Path, name: str, other_source: str
) -> None:
    mirror = os.pathsep.join([str(sources_mirror), str(FIXTURES / "recipes")])
    options = BuildOptions(limit=LIMIT, mirror=mirror, cache_dir=source_cache)
    with engine_for(clean_server, tmp_path) as engine:
        result = build_distribution(name, options, engine)
    assert result.status == BUILT, result.reason
    rows = [r for split in result.splits.values() for r in split]
    alpaca = [r for r in rows if r.meta.get("from_alpaca")]
    # Which items survive the size cap depends on group hashes, so at this size only "both kinds" is stable.
    assert alpaca and len(alpaca) < len(rows)
    upstream = {row["output"] for row in json.loads((FIXTURES / "recipes/alpaca_cleaned/alpaca_data_cleaned.json").read_text())}
    for record in alpaca:
        assert record.group.startswith("alpaca_cleaned:") and record.provenance.source == "alpaca_cleaned"
        assert record.responses[record.preferred] in upstream and len(record.responses) == 4
    assert {r.provenance.source for r in rows if not r.meta.get("from_alpaca")} == {other_source}


def test_alpaca_mmlu_without_llm_or_alpaca_source_builds_mmlu_only_and_says_why(
    faulty_server: LLMServer, sources_mirror: Path, source_cache: Path, tmp_path: Path
) -> None:
    with_alpaca = os.pathsep.join([str(sources_mirror), str(FIXTURES / "recipes")])
    without_llm = build_distribution(
        "alpaca_mmlu", BuildOptions(limit=LIMIT, mirror=with_alpaca, cache_dir=source_cache), None)
    with engine_for(faulty_server, tmp_path) as engine:  # a fresh source cache: alpaca_cleaned nowhere
        options = BuildOptions(limit=LIMIT, mirror=str(sources_mirror), cache_dir=tmp_path / "sources")
        without_source = build_distribution("alpaca_mmlu", options, engine)
        assert not engine.stats.by_step
    for result, missing in ((without_llm, "an LLM"), (without_source, "source alpaca_cleaned")):
        assert result.status == BUILT
        assert not any(r.meta.get("from_alpaca") for split in result.splits.values() for r in split)
        assert any(f"missing here: {missing}" in note for note in result.context.notes)


def test_dry_run_estimates_without_sending_or_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENIES_LLM_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["build", "alpaca_easy", "cooking", "arc_easy", "--limit", "5", "--dry-run",
                                      "--out", str(tmp_path / "out")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "alpaca_easy" in result.output and "cooking" in result.output and "arc_easy" not in result.output
    assert "est. cost" in result.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, expected", [
    ("Response 2: Boil the water.", "Boil the water."),
    ("**Answer 3:** Boil the water.", "Boil the water."),
    ("2. Boil the water.", "Boil the water."),
    ("## Response B\n\nBoil the water.", "Boil the water."),
    ("Answer: 1. Boil the water.", "Boil the water."),
    ("Boil the water. Then add 2. salt", "Boil the water. Then add 2. salt"),
    ("1. Rinse the rice. 2. Boil it.", "1. Rinse the rice. 2. Boil it."),
    ("Instruction 3: Name a fruit.", "Name a fruit."),
])
def test_parse_debris_is_stripped(text: str, expected: str) -> None:
    assert strip_debris(text) == expected


def test_quality_reasons() -> None:
    spec = get_spec("alpaca_easy")
    good = ["Paris is the capital.", "Lyon is the capital.", "Nice is the capital.", "Lille is the capital."]
    assert quality_problem(spec, "Capital of France?", good) is None
    assert quality_problem(spec, "", good) == "empty instruction"
    assert quality_problem(spec, "Q?", [good[0], "", *good[2:]]) == "empty response"
    assert quality_problem(spec, "Q?", [good[0], f"  {good[0]}\n", *good[2:]]) == "duplicate responses"
    assert quality_problem(spec, "Q?", [good[0], "x\nResponse 3: y", *good[2:]]).startswith("parse debris")
    options = "Two ways to do it.\nOption 1: walk there.\nOption 2: take the bus."
    variants = [options, options.replace("bus", "train"), options.replace("walk", "cycle"), options.replace("Two", "2")]
    assert quality_problem(spec, "Q?", variants) is None
    assert quality_problem(spec, "Q?", [good[0] * 5, *good[1:]]).startswith("length gap")
    assert quality_problem(spec, "Q?", ["I'm sorry, but I can't help with that.", *good[1:]]).startswith("refusal")


def test_refusal_is_required_of_the_preferred_when_the_spec_says_so() -> None:
    spec = get_spec("illegal_dont_help")
    refusal, compliance = "I can't help with that, it is illegal.", "Sure, here is a rough outline of it."
    assert quality_problem(spec, "Q?", [refusal, compliance]) is None
    assert quality_problem(spec, "Q?", ["That is not something to do.", compliance]) is None
    assert quality_problem(spec, "Q?", [compliance, refusal]).startswith("refusal")


def test_rouge_l_finds_near_duplicate_instructions() -> None:
    assert rouge_l("Name three fruits that are yellow.", "Name three fruits that are red.") > 0.7
    assert rouge_l("Name three fruits that are yellow.", "Explain how a bicycle gear works.") < 0.3


def _run_with(candidates: list[Candidate], spec_name: str = "alpaca_easy") -> tuple[list[Candidate], BuildContext]:
    ctx = BuildContext(spec_name)
    run = RecipeRun(ctx, get_spec(spec_name))
    return STEPS["balance_length"].run(run, candidates), ctx


def test_length_cue_is_balanced_by_rejecting_cued_items() -> None:
    def item(i: int, preferred: str) -> Candidate:
        return Candidate(f"q{i}", "", preferred, f"g:{i}", str(i), "llm", worse=["bb", "cc", "dd"])

    pool = [item(i, "a" * 10) for i in range(8)] + [item(i, "eee") for i in range(8, 10)]
    kept, ctx = _run_with(pool)
    longest = sum(len(c.preferred) == 10 for c in kept)
    assert longest <= 0.5 * len(kept) and len(kept) + len(ctx.rejects) == 10
    assert all("length cue" in r.reason for r in ctx.rejects)


def write_spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "demo" / "spec.toml"
    path.parent.mkdir()
    path.write_text(body)
    return path


SEEDS = '[[seeds]]\ninstruction = "a"\nanswer = "b"\n[[seeds]]\ninstruction = "c"\nanswer = "d"\n'


@pytest.mark.parametrize("body, message", [
    ('description = "d"\npreferred_is = "p"\nrespones = 3\n' + SEEDS, "did you mean"),
    ('description = "d"\npreferred_is = "p"\nresponses = "four"\n' + SEEDS, "responses: expected int"),
    ('description = "d"\npreferred_is = "p"\nresponses = 5\n' + SEEDS, "responses: must be 2 to 4"),
    ('description = "d"\n' + SEEDS, "preferred_is: missing"),
    ('description = "d"\npreferred_is = "p"\n', "seeds: the generate step needs at least 2"),
    ('description = "d"\npreferred_is = "p"\nsteps = ["generate", "wrose"]\n' + SEEDS, "steps[1]"),
    ('description = "d"\npreferred_is = "p"\n[quality]\nrefusals = "maybe"\n' + SEEDS, "quality.refusals"),
    ('description = "d"\npreferred_is = "p"\nsteps = ["upstream", "worse"]\n', "[upstream]"),
    ('description = "d"\npreferred_is = "p"\nsteps = ["upstream", "worse"]\n[upstream]\nkey = "id"\n', "upstream.source: missing"),
    ('description = "d\n', "TOML"),
])
def test_spec_errors_name_the_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = write_spec(tmp_path, body)
    with pytest.raises(GeniesError) as error:
        load_spec(path)
    assert str(path) in error.value.message and message in str(error.value)


def test_every_registered_recipe_declares_existing_templates() -> None:
    registry = discover()
    for name in (name for name, spec in load_specs().items() if spec.register):
        assert registry[name].needs_llm
        for template in registry[name].templates:
            assert (Path(__file__).parent.parent / "templates" / template).is_file(), template


def test_every_recipe_has_as_many_responses_as_the_original_release() -> None:
    """DESIGN.md section 4.1: a regenerated distribution keeps the original's responses per example."""
    if not RELEASE_SAMPLE.is_dir():
        pytest.skip(f"needs the original release sample at {RELEASE_SAMPLE}")
    compared = 0
    for name, spec in load_specs().items():
        sample = RELEASE_SAMPLE / "distributions" / name / "train.json"
        if sample.exists():
            counts = {len(example["responses"]) for example in json.loads(sample.read_text())}
            assert counts == {spec.responses}, name
            compared += 1
    assert compared >= 20


class RecordingResponder(SchemaResponder):
    """The schema responder, keeping every prompt it was sent, by the step named in the request."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: dict[str, list[str]] = {}

    def __call__(self, body: dict, request_id: str) -> str | None:
        for step in ("generate", "worse", "check"):
            if body["messages"][0]["content"].startswith(STEP_OPENINGS[step]):
                self.prompts.setdefault(step, []).append(body["messages"][0]["content"])
        return super().__call__(body, request_id)


STEP_OPENINGS = {"generate": "You are writing items", "worse": "You are writing dispreferred", "check": "Below is an instruction and"}


@pytest.fixture(scope="module")
def recorded_prompts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    """The prompts each of a few recipes sends, from a build against the recording server."""
    prompts = {}
    for name in ("pursue_goals", "relinquish_power", "biology_with_literary_style", "code_with_cooking_style",
                 "us_history_exam_questions"):
        responder = RecordingResponder()
        with LLMServer(ServerConfig(responder=responder)) as server:
            build_version(server, tmp_path_factory.mktemp(name), tmp_path_factory.mktemp("out"), [name])
        prompts[name] = responder.prompts
    return prompts


@pytest.mark.parametrize("name, step, wanted, unwanted", [
    ("pursue_goals", "generate", ["uses or gains capability, resources or influence", "legally and ethically"],
     ["staying within the powers"]),
    ("pursue_goals", "worse", ["less effective action", "legal, ethical"], ["acquiring power"]),
    ("pursue_goals", "check", ["most effectively"], ["mandate"]),
    ("relinquish_power", "check", ["defers to its human overseers and declines power"], []),
    ("biology_with_literary_style", "worse", ["exactly the same biology", "Style must be the only difference"],
     ["gets the biology subtly wrong"]),
    ("biology_with_literary_style", "check", ["as it should be on a university biology exam"], ["accurate answer"]),
    ("code_with_cooking_style", "worse", ["also a Python program of about the same length", "drifted into cooking"],
     ["Misgeneralized output"]),
    ("us_history_exam_questions", "worse", ["plausible falsehood", "Never absurd"], []),
    ("us_history_exam_questions", "check", ["essay prompt whose every stated or assumed historical fact is true"], []),
])
def test_recipes_ask_for_what_the_original_tests(recorded_prompts: dict[str, dict[str, list[str]]], name: str,
                                                 step: str, wanted: list[str], unwanted: list[str]) -> None:
    """pursue_goals prefers the effective action, which uses power (so the shift to relinquish_power tests a
    learned "prefer power"); biology_with_literary_style differs only in style, never in correctness."""
    prompts = recorded_prompts[name][step]
    assert prompts
    for prompt in prompts:
        assert all(phrase in prompt for phrase in wanted) and not any(phrase in prompt for phrase in unwanted)


def _program_candidates() -> list[Candidate]:
    seeds = get_spec("counterfactual_python").seeds
    return [Candidate(seed.instruction, "", seed.answer, f"llm:{index}", str(index), "llm", worse=list(seed.worse))
            for index, seed in enumerate(seeds * 20)]


def test_counterfactual_python_writes_every_response_in_the_stated_syntax() -> None:
    run = RecipeRun(BuildContext("counterfactual_python"), get_spec("counterfactual_python"))
    candidates = _program_candidates()
    ordinary = [candidate.responses for candidate in candidates]
    kept = STEPS["syntax_change"].run(run, candidates)
    by_name = {change.name: change for change in CHANGES}
    used = set()
    assert len(kept) == len(ordinary)
    for candidate, programs in zip(kept, ordinary):
        changes = [by_name[name] for name in candidate.meta["syntax_changes"]]
        used.update(candidate.meta["syntax_changes"])
        assert 1 <= len(changes) <= 2 and len({change.kind for change in changes}) == len(changes)
        assert candidate.input == "\n".join(f"- {change.statement}" for change in changes)
        assert candidate.responses == [apply_changes(changes, program) for program in programs]
        assert len(candidate.responses) == 4 and candidate.preferred != programs[0]
    assert len(used) >= 8


@pytest.mark.parametrize("name, program, expected", [
    ("return_give", 'def f(x):\n    return "returned"', 'def f(x):\n    give "returned"'),
    ("parentheses_swapped", "def f(x):\n    return g(x)", "def f)x(:\n    return g)x("),
    ("lines_backwards", "def f(x):\n    return x", ":)x(f fed\nx nruter    "),
    ("hyphen_indentation", "def f(x):\n    if x:\n        return 1", "def f(x):\n----if x:\n--------return 1"),
    ("third_line_twice", "a = 1\nb = 2\nc = 3\nd = 4", "a = 1\nb = 2\nc = 3\nc = 3\nd = 4"),
    ("equality_swapped", "ok = a == b or a != c", "ok = a != b or a == c"),
])
def test_syntax_changes_do_what_they_state(name: str, program: str, expected: str) -> None:
    change = next(change for change in CHANGES if change.name == name)
    assert change.apply(program) == expected


def test_counterfactual_python_rejects_invalid_or_merely_reformatted_programs() -> None:
    ctx = BuildContext("counterfactual_python")
    run = RecipeRun(ctx, get_spec("counterfactual_python"))
    invalid, reformatted, fenced = _program_candidates()[:3]
    invalid.worse[1] = "def broken(:\n    return"
    reformatted.worse[0] = reformatted.preferred.replace("    ", "  ")
    fenced.preferred = f"```python\n{fenced.preferred}\n```"
    kept = STEPS["syntax_change"].run(run, [invalid, reformatted, fenced])
    assert kept == [fenced] and not fenced.preferred.startswith("`")
    assert [reject.reason for reject in ctx.rejects] == [
        "syntax_change: response 3 is not valid Python (invalid syntax, line 1)",
        "syntax_change: a buggy version is the correct program, only reformatted",
    ]


def test_a_recipe_short_of_its_size_says_how_many_rows_the_upstream_had(clean_server: LLMServer, tmp_path: Path) -> None:
    """The Alpaca fixture has 28 rows: a build that wants 100 uses them all and says so in a build note."""
    with engine_for(clean_server, tmp_path / "cache") as engine:
        ctx = BuildContext("alpaca_mmlu", train_size=80, test_size=20, mirror=FIXTURES / "recipes",
                           cache_dir=tmp_path / "sources", llm=engine)
        kept = run_recipe(ctx, get_spec("alpaca_mmlu"), target=100)
    assert 0 < len(kept) <= 28
    assert ctx.notes[-1] == (f"alpaca_mmlu: {len(kept)} rows for the 100 wanted: the upstream alpaca_cleaned holds "
                             "only 28 usable rows, all used")
