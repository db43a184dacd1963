"""The build pipeline: statuses, validation, dedup, group-aware splits, balance, no-op rebuilds, the CLI."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import discovery, pipeline
from builders.catalog import load_catalog
from builders.cli import app
from builders.errors import GeniesError, UnknownNameError
from builders.export import Version, content_hash
from builders.pipeline import (
    NO_LLM_REASON,
    BuildFailed,
    BuildOptions,
    BuildRequest,
    build_distribution,
    build_fingerprint,
    default_version,
    fingerprint_inputs,
    rejects_jsonl,
    run_build,
    select_distributions,
)
from builders.registry import BUILDERS, BuildContext, Builder, Reject
from builders.schema import Provenance, Record

FAKE = "crt_2"  # a catalog distribution borrowed by the fake builders below
UNBUILT = "crt_3"  # a catalog distribution whose builder (if any) the `unbuilt` fixture hides


def _record(i: int, group: str, responses=None, preferred: int = 0, prompt: str | None = None) -> Record:
    return Record(
        distribution=FAKE,
        prompt=prompt or f"question {i}",
        responses=responses or [f"right {i}", f"wrong {i}", f"other {i}"],
        preferred=preferred,
        group=group,
        provenance=Provenance(source="test", row_key=str(i)),
    )


@pytest.fixture
def unbuilt() -> Iterator[str]:
    """UNBUILT, with no registered builder for the duration of the test."""
    discovery.discover()  # modules first imported inside the snapshot would lose their builders on restore
    with BUILDERS.snapshot():
        BUILDERS.remove(UNBUILT)
        yield UNBUILT


def stand_in(builder: Builder) -> None:
    """Make `builder` the builder of its distribution (inside `BUILDERS.snapshot()`)."""
    BUILDERS.remove(builder.name)
    BUILDERS.add(builder.name, builder, __name__)


@pytest.fixture
def fake_builder() -> Iterator[Callable[..., None]]:
    """Install `fn` as the builder of FAKE for one test."""

    def install(fn, needs_llm: bool = False) -> None:
        stand_in(Builder(FAKE, fn, needs_llm, ("prompts/alpaca.j2",), __name__))

    discovery.discover()
    with BUILDERS.snapshot():
        yield install


def test_invalid_and_duplicate_records_become_rejects_with_reasons(fake_builder):
    def build(ctx: BuildContext):
        yield _record(1, "q:1")
        yield _record(2, "q:2", responses=["same", "same"])
        yield _record(3, "q:3", preferred=5)
        yield _record(4, "q:4", prompt="question 1")
        yield _record(5, "")

    fake_builder(build)
    result = build_distribution(FAKE, BuildOptions())
    assert result.status == "built"
    reasons = [r.reason for r in result.context.rejects]
    assert reasons == [
        "has duplicate responses",
        "preferred index 5 out of range for 3 responses",
        "has no group",
        "duplicate prompt",
    ]
    kept = [r for rows in result.splits.values() for r in rows]
    assert len(kept) == 1


def test_groups_never_straddle_splits_and_sizes_and_positions_hold(fake_builder):
    fake_builder(lambda ctx: (_record(i, f"q:{i // 3}") for i in range(900)))
    result = build_distribution(FAKE, BuildOptions(train_size=200, test_size=100, seed=3))
    train, test = result.splits["train"], result.splits["test"]
    assert (len(train), len(test)) == (200, 100)
    assert not {r.group for r in train} & {r.group for r in test}
    for rows in (train, test):
        positions = Counter(r.preferred for r in rows)
        assert max(positions.values()) - min(positions.values()) <= 1
        assert all(r.responses[r.preferred].startswith("right") for r in rows)
        assert [r.id for r in rows] == sorted(r.id for r in rows)


def test_limit_caps_every_split(fake_builder):
    fake_builder(lambda ctx: (_record(i, f"q:{i}") for i in range(100)))
    result = build_distribution(FAKE, BuildOptions(limit=7))
    assert (result.rows("train"), result.rows("test")) == (7, 7)


def test_statuses_say_exactly_what_is_missing(fake_builder, unbuilt, tmp_path):
    assert build_distribution(unbuilt, BuildOptions()).label == "skipped: no builder yet"

    fake_builder(lambda ctx: [_record(1, "q:1")], needs_llm=True)
    assert build_distribution(FAKE, BuildOptions()).label == f"skipped: {NO_LLM_REASON}"

    fake_builder(lambda ctx: ctx.source("apps"))
    (tmp_path / "empty").mkdir()
    result = build_distribution(FAKE, BuildOptions(mirror=tmp_path / "empty", cache_dir=tmp_path / "cache"))
    assert (result.label, result.needs) == ("skipped: needs source apps", "apps")
    assert "apps" in result.detail

    def broken(ctx):
        raise KeyError("answer")

    fake_builder(broken)
    result = build_distribution(FAKE, BuildOptions())
    assert result.status == "failed" and "KeyError" in result.reason and "Traceback" in result.detail

    fake_builder(lambda ctx: [])
    assert build_distribution(FAKE, BuildOptions()).label.startswith("failed: builder produced no valid records")


def test_a_failure_exports_nothing_and_strict_refuses_skips(fake_builder, unbuilt, tmp_path):
    def broken(ctx):
        raise ValueError("bad row")

    fake_builder(broken)
    request = BuildRequest(names=["crt_1", FAKE], options=BuildOptions(limit=5), out=tmp_path, version="v1")
    with pytest.raises(BuildFailed) as failed:
        run_build(request)
    assert [r.status for r in failed.value.report.results] == ["built", "failed"]
    assert not [p.name for p in (tmp_path / "genies").iterdir() if not p.name.startswith(".")], "only the lock is left"

    strict = BuildRequest(names=["crt_1", unbuilt], options=BuildOptions(limit=5), out=tmp_path, version="v2",
                          strict=True)
    with pytest.raises(BuildFailed, match="--strict"):
        run_build(strict)
    assert not (tmp_path / "genies" / "v2").exists()


def test_allow_failed_exports_what_built_and_exits_distinctly(fake_builder, tmp_path):
    def broken(ctx):
        raise ValueError("bad row")

    fake_builder(broken)
    args = ["build", "crt_1", FAKE, "--limit", "5", "--out", str(tmp_path), "--version", "v1"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and not (tmp_path / "genies" / "v1").exists()

    partial = CliRunner().invoke(app, [*args, "--allow-failed"])
    assert partial.exit_code == 3, partial.output
    version = Version.open(tmp_path / "genies" / "v1")
    assert version.distributions == ["crt_1"]
    assert version.manifest["build"]["failed"] == {FAKE: {"reason": "ValueError: bad row"}}
    card = (tmp_path / "genies" / "v1" / "README.md").read_text()
    assert f"- {FAKE}: ValueError: bad row" in card and "partial" in card
    again = CliRunner().invoke(app, [*args, "--allow-failed"])
    assert again.exit_code == 3 and "nothing to do" in again.output, "a no-op rebuild still says it is partial"


def test_build_writes_a_version_then_rebuild_is_a_noop(unbuilt, tmp_path):
    request = BuildRequest(names=["crt_1", "raven_easy", unbuilt], options=BuildOptions(limit=10), out=tmp_path)
    first = run_build(request)
    assert first.export.status == "written" and not first.noop
    assert first.version == default_version(first.fingerprint)
    version = Version.open(first.path)
    assert version.distributions == ["crt_1", "raven_easy"]
    assert version.manifest["build"]["skipped"] == {unbuilt: {"kind": "no_builder", "reason": "no builder yet"}}
    assert version.manifest["build_fingerprint"] == first.fingerprint
    assert version.table("crt_1", "test").num_rows == 10

    second = run_build(request)
    assert second.noop and second.seconds < 5
    assert [(r.name, r.rows("train")) for r in second.results if r.status == "built"] == [("crt_1", 10), ("raven_easy", 10)]


def test_different_content_under_an_existing_version_is_refused(tmp_path):
    run_build(BuildRequest(names=["crt_1"], options=BuildOptions(limit=4), out=tmp_path, version="1.0.0"))
    with pytest.raises(GeniesError, match="already exists with different content"):
        run_build(BuildRequest(names=["crt_1"], options=BuildOptions(limit=4, seed=1), out=tmp_path, version="1.0.0"))


def test_template_problems_stop_the_build_before_any_builder_runs(fake_builder, tmp_path):
    ran = []
    stand_in(Builder(FAKE, lambda ctx: ran.append(ctx) or [], False, ("prompts/no_such.j2",), __name__))
    with pytest.raises(GeniesError, match="distribution crt_2: template 'prompts/no_such.j2' not found"):
        run_build(BuildRequest(names=["crt_1", FAKE], options=BuildOptions(limit=2), out=tmp_path))
    assert ran == [] and not tmp_path.joinpath("genies").exists()


def test_rejects_are_written_into_the_version(fake_builder, tmp_path):
    fake_builder(lambda ctx: [_record(1, "q:1"), _record(2, "q:2", prompt="question 1"), _record(3, "q:3")])
    report = run_build(BuildRequest(names=[FAKE], options=BuildOptions(limit=2), out=tmp_path, version="r"))
    lines = [json.loads(line) for line in (report.path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["distribution"], r["reason"]) for r in lines] == [(FAKE, "duplicate prompt")]
    manifest = report.export.manifest
    covered = content_hash(manifest["files"], {"rejects.jsonl": (report.path / "rejects.jsonl").read_bytes()})
    assert manifest["content_sha256"] == covered


def test_rejects_serialize_records_and_odd_values_deterministically():
    rejects = [Reject("d", "bad", _record(1, "q:1")), Reject("d", "odd", {"s": {2, 1}, "p": Path("x")})]
    text = rejects_jsonl(rejects).decode()
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["raw"]["prompt"] == "question 1" and second["raw"] == {"p": "x", "s": [1, 2]}
    assert rejects_jsonl(rejects) == rejects_jsonl(rejects)


def test_fingerprint_ignores_paths_and_follows_content_settings(tmp_path):
    names = ["crt_1", "ranking_logic"]
    base = build_fingerprint(fingerprint_inputs(names, BuildOptions()))
    elsewhere = BuildOptions(mirror=tmp_path, cache_dir=tmp_path / "c", fetch=True)
    assert build_fingerprint(fingerprint_inputs(names, elsewhere)) == base
    for changed in (BuildOptions(seed=1), BuildOptions(limit=3), BuildOptions(train_size=10)):
        assert build_fingerprint(fingerprint_inputs(names, changed)) != base
    assert build_fingerprint(fingerprint_inputs(names[:1], BuildOptions())) != base



def _fingerprint_with_edited(monkeypatch, names: list[str], edited: str) -> str:
    """The fingerprint of `names` as if the file `edited` (relative to the repository) had new content."""
    real = pipeline._digest
    monkeypatch.setattr(pipeline, "_digest", lambda path: "edited" if path.as_posix().endswith(edited) else real(path))
    try:
        return build_fingerprint(fingerprint_inputs(names, BuildOptions()))
    finally:
        monkeypatch.setattr(pipeline, "_digest", real)


@pytest.mark.parametrize("names", [["arc_easy"], ["cooking"], ["arc_easy__perturb_prompt_p0.1"]])
def test_the_fingerprint_covers_only_the_code_a_selection_reaches(monkeypatch, names):
    base = build_fingerprint(fingerprint_inputs(names, BuildOptions()))
    for elsewhere in ("builders/evaluation/metrics.py", "builders/publishing/card.py", "builders/cli/list.py",
                      "builders/categories/puzzles.py", "templates/crt_2/spec.toml"):
        assert _fingerprint_with_edited(monkeypatch, names, elsewhere) == base, elsewhere
    reached = {"arc_easy": "builders/categories/arc.py", "cooking": "templates/cooking/spec.toml"}
    for edited in ("builders/pipeline.py", "builders/splits.py", reached.get(names[0], "builders/categories/perturbation.py")):
        assert _fingerprint_with_edited(monkeypatch, names, edited) != base, edited
    if "__perturb_" in names[0]:
        assert _fingerprint_with_edited(monkeypatch, names, "builders/categories/arc.py") != base  # its base's code

def test_selection_by_name_category_and_typos():
    catalog = load_catalog()
    assert select_distributions(catalog, ["crt_1"]) == ["crt_1"]
    difficulty = select_distributions(catalog, category="difficulty")
    assert {"ranking_logic_easy", "ranking_logic_hard", "raven_easy", "raven_matrices"} <= set(difficulty)
    assert "crt_1" not in difficulty
    assert set(catalog.distributions) <= set(select_distributions(catalog))
    with pytest.raises(UnknownNameError, match="ranking_logc") as err:
        select_distributions(catalog, ["ranking_logc"])
    assert "ranking_logic" in err.value.hint


def test_options_reject_nonsense():
    with pytest.raises(GeniesError, match="--limit"):
        BuildOptions(limit=0)
    with pytest.raises(GeniesError, match="train_size"):
        BuildOptions(train_size=-1)
    with pytest.raises(GeniesError, match="mirror directory /no/such/dir does not exist"):
        BuildOptions(mirror="/no/such/dir")


def test_cli_builds_prints_the_table_and_noops(unbuilt, tmp_path):
    runner = CliRunner()
    args = ["build", "crt_1", unbuilt, "--limit", "3", "--out", str(tmp_path), "--version", "cli"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "crt_1" in first.output and "skipped (1): no builder yet" in first.output and "wrote" in first.output
    assert unbuilt not in first.output, "a skip is grouped by reason; --verbose names it"
    assert f"skipped (1): no builder yet: {unbuilt}" in runner.invoke(app, [*args, "--verbose"]).output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "nothing to do" in second.output
    third = runner.invoke(app, [*args, "--json"])
    assert third.exit_code == 0, third.output
    as_json = json.loads(third.stdout)
    assert as_json["outcome"] == "noop" and as_json["version"] == "cli"
    assert {d["name"]: (d["status"], d["train"]) for d in as_json["distributions"]} == {
        "crt_1": ("built", 3), unbuilt: ("skipped", 0)}
    strict = runner.invoke(app, [*args[:-1], "cli-strict", "--strict"])
    assert isinstance(strict.exception, BuildFailed) and "skipped (1): no builder yet" in strict.output


def test_the_default_version_covers_what_was_built_and_from_which_source_revisions(fake_builder, tmp_path):
    """One selection, built where its source is missing and where it is present: two versions, not one name
    for different data; the same plan again is a no-op on the most complete of them."""
    fixture = Path(__file__).parent / "fixtures" / "builders_code"

    def from_apps(ctx):
        table = ctx.source("apps")
        return [_record(i, f"apps:{i}") for i in range(min(table.num_rows, 8))]

    fake_builder(from_apps)
    (tmp_path / "empty").mkdir()

    def build(mirror: Path, cache: str, names=("crt_1", FAKE)):
        options = BuildOptions(limit=4, mirror=mirror, cache_dir=tmp_path / cache)
        return run_build(BuildRequest(names=list(names), options=options, out=tmp_path / "art"))

    without = build(tmp_path / "empty", "c1")
    with_source = build(fixture, "c2")
    assert [r.status for r in without.results] == ["built", "skipped"]
    assert [r.status for r in with_source.results] == ["built", "built"]
    assert without.version != with_source.version
    manifest = Version.open(with_source.path).manifest
    assert manifest["build"]["built_from"][FAKE] == {"apps": with_source.results[1].context.sources_used["apps"].revision}
    assert manifest["build"]["plan_fingerprint"] == Version.open(without.path).manifest["build"]["plan_fingerprint"]
    again = build(tmp_path / "empty", "c3")
    assert again.noop and again.version == with_source.version, "the most complete build of the plan"
    assert build(tmp_path / "empty", "c4", names=("crt_1",)).version not in (without.version, with_source.version)


def test_list_says_what_build_would_do_with_the_same_reasons(tmp_path):
    """`genies list --mirror --no-llm` and `genies build` share one buildability function."""
    fixture = Path(__file__).parent / "fixtures" / "builders_code"

    def listed(*args: str) -> dict[str, str]:
        result = CliRunner().invoke(app, ["list", "--json", "--cache-dir", str(tmp_path / "cache"), *args])
        assert result.exit_code == 0, result.output
        return {d["name"]: d["buildable"] for d in json.loads(result.stdout)["distributions"]}

    (tmp_path / "empty").mkdir()
    without = listed("--mirror", str(tmp_path / "empty"), "--no-llm")
    built = build_distribution("code_easy", BuildOptions(mirror=tmp_path / "empty", cache_dir=tmp_path / "cache"))
    assert without["code_easy"] == built.reason == "needs source apps"
    assert without["alpaca_easy"] == build_distribution("alpaca_easy", BuildOptions()).reason == NO_LLM_REASON
    assert without["alpaca_mmlu"] == "needs source mmlu, alpaca_cleaned"
    assert without["crt_1"] == "yes"
    with_mirror = listed("--mirror", str(fixture), "--no-llm")
    assert with_mirror["code_easy"] == "yes (in part: missing an LLM)"
    assert listed("--mirror", str(fixture), "--llm")["code_easy"] == "yes"


def test_a_failure_hint_names_the_llm_engine_when_the_server_failed(fake_builder, tmp_path):
    def unreachable(ctx):
        raise GeniesError("gave up after 2 attempts: connection refused at http://127.0.0.1:9/v1/chat/completions")

    fake_builder(unreachable)
    with pytest.raises(BuildFailed) as failed:
        run_build(BuildRequest(names=[FAKE], options=BuildOptions(limit=3), out=tmp_path, version="v"))
    assert "OPENAI_BASE_URL" in failed.value.hint and "builder" not in failed.value.hint.split("(")[0]

    fake_builder(lambda ctx: (_ for _ in ()).throw(ValueError("bad row")))
    with pytest.raises(BuildFailed) as broken:
        run_build(BuildRequest(names=[FAKE], options=BuildOptions(limit=3), out=tmp_path, version="w"))
    assert broken.value.hint.startswith("fix the failing builder")
