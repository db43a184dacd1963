"""Publishing a version's LLM answers with it, and rebuilding it from them offline, byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.export import Version
from builders.llm import Engine, LLMConfig
from builders.llm.replay import EXPORT_FILE, HUB_FILE, public_base_url
from tests.llm_server import LLMServer, ServerConfig
from tests.recipe_responder import SchemaResponder

SECRET = "sk-test-SECRET-0123456789"
NAMES = ["cooking", "alpaca_easy"]


@pytest.fixture(scope="module")
def server():
    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.2))) as server:
        yield server


def build(out: Path, *extra: str):
    return CliRunner().invoke(app, ["build", *NAMES, "--limit", "2", "--out", str(out), "--version", "1.0.0",
                                    *extra])


def said(result) -> str:
    """What a command printed or raised, on one line (a GeniesError is printed by the console entry point)."""
    return " ".join(f"{result.output} {result.exception or ''}".split())


def data_files(version: Path) -> dict[str, bytes]:
    return {p.relative_to(version).as_posix(): p.read_bytes() for p in sorted(version.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}


@pytest.fixture(scope="module")
def published(server, tmp_path_factory):
    """A version built online with an API key set, and its `publish --dry-run` repository."""
    root = tmp_path_factory.mktemp("published")
    with pytest.MonkeyPatch.context() as env:
        go_online(env, server, root / "cache")
        result = build(root / "out")
        assert result.exit_code == 0, result.output
        repo = root / "hub"
        published = CliRunner().invoke(app, ["publish", str(root / "out" / "genies" / "1.0.0"), "--repo",
                                             "lab/genies", "--dry-run", str(repo)])
        assert published.exit_code == 0, published.output
    return root / "out" / "genies" / "1.0.0", repo, root


def go_online(env: pytest.MonkeyPatch, server: LLMServer, cache: Path) -> None:
    """The test server with an API key, and a request cache of its own."""
    env.setenv("OPENAI_BASE_URL", server.url)
    env.setenv("OPENAI_API_KEY", SECRET)
    env.setenv("GENIES_LLM_MODEL", "test-model")
    env.setenv("GENIES_LLM_CACHE", str(cache))


def go_offline(env: pytest.MonkeyPatch, root: Path) -> None:
    """No OPENAI_* variables, an empty cache, a fresh HOME (all under `root`)."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GENIES_LLM_MODEL", "GENIES_LLM_CONFIG", "GENIES_OFFLINE"):
        env.delenv(name, raising=False)
    env.setenv("HOME", str(root / "home"))
    env.setenv("GENIES_LLM_CACHE", str(root / "fresh-cache"))


@pytest.fixture
def fresh_env(monkeypatch, tmp_path):
    go_offline(monkeypatch, tmp_path)
    return tmp_path


def test_the_version_carries_its_answers_and_no_secret(published):
    version, repo, root = published
    manifest = json.loads((version / "manifest.json").read_text())
    data = (version / EXPORT_FILE).read_bytes()
    assert manifest["llm_requests"] == {"path": EXPORT_FILE, "sha256": hashlib.sha256(data).hexdigest(),
                                        "rows": pq.read_table(io.BytesIO(data)).num_rows}
    table = pq.read_table(io.BytesIO(data)).to_pylist()
    opened = Version.open(version)
    used = {key for name in opened.distributions for split in ("train", "test")
            for row in opened.table(name, split).to_pylist() for key in row["provenance"]["llm_requests"]}
    assert used and used <= {r["key"] for r in table}, "every request a row names is exported"
    assert {json.loads(r["request"])["base_url"] for r in table} == {public_base_url(json.loads(table[0]["request"])["base_url"])}
    assert (repo / HUB_FILE).read_bytes() == data, "published as the version's own bytes"
    card = (version / "README.md").read_text()
    assert "## Reproduce this version" in card and "--replay" in card and "--offline" in card
    for path in [*version.rglob("*"), *repo.rglob("*"), *(root / "cache").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_replay_offline_rebuilds_byte_for_byte_sending_nothing(server, published, fresh_env):
    version, repo, _ = published
    sent = sum(server.hits.values())
    result = build(fresh_env / "out", "--replay", str(repo), "--offline")
    assert result.exit_code == 0, result.output
    assert sum(server.hits.values()) == sent
    rebuilt = fresh_env / "out" / "genies" / "1.0.0"
    assert data_files(rebuilt) == data_files(version)
    manifest = lambda v: json.loads((v / "manifest.json").read_text())  # noqa: E731
    assert manifest(rebuilt)["content_sha256"] == manifest(version)["content_sha256"]


def test_a_request_missing_from_the_replay_is_an_error_naming_step_and_distribution(published, fresh_env):
    version, _, _ = published
    result = CliRunner().invoke(app, ["build", "cooking", "--limit", "3", "--out", str(fresh_env / "out"),
                                      "--replay", str(version), "--offline"])
    output = said(result)
    assert result.exit_code != 0
    assert "is not among the replayed answers" in output and "of step cooking." in output
    assert "(distribution cooking)" in output


@pytest.mark.parametrize("field", ["body", "request"])
def test_a_tampered_row_is_refused_naming_its_key(published, fresh_env, field):
    version, _, _ = published
    table = pq.read_table(version / EXPORT_FILE)
    rows = table.to_pylist()
    mark, forged = ('"text":"', '"text":"tampered ') if field == "body" else ('"sample":0', '"sample":7')
    victim = next(r for r in rows if r["outcome"] == "answer" and mark in r[field])
    victim[field] = victim[field].replace(mark, forged, 1)
    tampered = fresh_env / "tampered"
    (tampered / EXPORT_FILE).parent.mkdir(parents=True)
    pq.write_table(table.from_pylist(rows, schema=table.schema), tampered / EXPORT_FILE)
    result = build(fresh_env / "out", "--replay", str(tampered), "--offline")
    assert result.exit_code != 0 and victim["key"] in said(result)

    (tampered / "manifest.json").write_text((version / "manifest.json").read_text())
    result = build(fresh_env / "out", "--replay", str(tampered), "--offline")
    assert result.exit_code != 0 and "does not match the sha256 in its manifest.json" in said(result)


def test_credentials_in_the_base_url_never_reach_the_cache_key(tmp_path):
    assert public_base_url("https://user:pw@host.example:8443/v1/?key=abc#x") == "https://host.example:8443/v1"
    engine = Engine(LLMConfig(base_url="http://user:pw@127.0.0.1:9/v1?token=t", cache_path=tmp_path))
    with engine:
        keyed = engine.keyed_request([{"role": "user", "content": "x"}], template=None, sample=0, reask=0, params={})
    assert keyed["base_url"] == "http://127.0.0.1:9/v1"


def llm_distributions() -> list[str]:
    from builders.discovery import catalog

    return sorted(name for name, info in catalog().distributions.items() if info.needs_llm)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_every_llm_distribution_replays_from_its_publish_dry_run_byte_for_byte(sources_mirror, tmp_path,
                                                                                 monkeypatch):
    """The issue's acceptance run: every LLM-written distribution the mirror can supply, built online, published
    (dry run), then rebuilt in a fresh HOME with no OPENAI_* variables from the published answers alone."""
    names = llm_distributions()

    def build_all(out: Path, *extra: str):
        return CliRunner().invoke(app, ["build", *names, "--limit", "2", "--mirror", str(sources_mirror),
                                        "--cache-dir", str(out / "sources"), "--out", str(out), "--version", "1.0.0",
                                        *extra])

    with LLMServer(ServerConfig(responder=SchemaResponder(fault_rate=0.1))) as server:
        with pytest.MonkeyPatch.context() as env:
            go_online(env, server, tmp_path / "cache")
            online = build_all(tmp_path / "online")
            assert online.exit_code == 0, online.output
        original = tmp_path / "online" / "genies" / "1.0.0"
        built = set(json.loads((original / "manifest.json").read_text())["distributions"])
        # APPS is not in the mirror (../shared/sources/SOURCES.md): the code distributions need it.
        assert set(names) - built == {"code", "code_easy", "code_hard", "code_low_quality"}
        repo = tmp_path / "hub"
        published = CliRunner().invoke(app, ["publish", str(original), "--repo", "lab/genies", "--dry-run", str(repo)])
        assert published.exit_code == 0, published.output

        go_offline(monkeypatch, tmp_path)
        sent = sum(server.hits.values())
        replayed = build_all(tmp_path / "replayed", "--replay", str(repo), "--offline")
        assert replayed.exit_code == 0, replayed.output
        assert sum(server.hits.values()) == sent
    assert data_files(tmp_path / "replayed" / "genies" / "1.0.0") == data_files(original)
