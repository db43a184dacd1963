"""Source builders on small fixtures in the upstreams' exact schema, bad input, and `genies sources`."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.cli import app
from builders.errors import GeniesError, UnknownNameError
from builders.sources import (
    ChecksumMismatch,
    SourceFormatError,
    SourceUnavailable,
    load_source,
    mirror_dirs,
    source_available,
    source_spec,
)
from builders.sources.cache import CacheEntry
from builders.sources.fetch import fetch_upstream
from builders.sources.mirror import collect_files, sha256_file
from builders.sources.normalizers import normalize
from builders.sources.reading import Rejects, read_parts
from builders.sources.spec import parse_checksum_file, read_spec
from tests.conftest import FIXTURES, SOURCES_MIRROR

FIXTURE_MIRROR = FIXTURES / "sources"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv("GENIES_MIRROR", raising=False)
    monkeypatch.delenv("GENIES_CACHE", raising=False)


def copy_source(source_dir: Path, folder: str, tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    shutil.copytree(source_dir / folder, mirror / folder)
    return mirror


def test_alpaca_cleaned_fixture(cache):
    source = load_source("alpaca_cleaned", mirror=FIXTURE_MIRROR, cache_dir=cache)
    rows = source.table.to_pylist()
    assert source.table.column_names == ["row_key", "instruction", "input", "output"]
    assert [r["row_key"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[1] == {
        "row_key": "1",
        "instruction": "Convert the temperature to Fahrenheit.",
        "input": "25 degrees Celsius",
        "output": "25 degrees Celsius is 77 degrees Fahrenheit.",
    }
    assert rows[0]["input"] == ""
    assert source.spec.license == "CC BY-NC 4.0"


def test_unpinned_source_revision_is_the_sha256_of_what_was_read(cache):
    source = load_source("alpaca_cleaned", mirror=FIXTURE_MIRROR, cache_dir=cache)
    assert not source.verified and source.revision.startswith("sha256:")
    again = load_source("alpaca_cleaned", cache_dir=cache, offline=True)
    assert again.origin == "cache" and again.revision == source.revision
    with_mirror = load_source("alpaca_cleaned", mirror=FIXTURE_MIRROR, cache_dir=cache)
    assert with_mirror.origin == "cache" and with_mirror.revision == source.revision


def test_gpt4_comparison_fixture_keeps_scores_and_optional_sources(cache):
    rows = load_source("gpt4_llm_comparison", mirror=FIXTURE_MIRROR, cache_dir=cache).table.to_pylist()
    assert len(rows) == 3
    assert rows[0]["scores"] == [9.0, 2.0, 7.0]
    assert rows[0]["response_sources"] == ["gpt4", "icm-1.3b", "text-davinci-003"]
    assert rows[1]["scores"] == [8.5, 4.0]
    assert rows[2]["response_sources"] == [None, None]
    assert rows[2]["responses"] == ["11 and 13.", "12 and 15."]


def test_shp_fixture_split_from_file_and_columns_as_upstream(cache):
    table = load_source("shp", mirror=FIXTURE_MIRROR, cache_dir=cache).table
    assert table.column_names[:3] == ["row_key", "split", "post_id"]
    assert table.num_rows == 5
    row = next(r for r in table.to_pylist() if r["split"] == "validation")
    assert row["row_key"] == "yr7c8d/hy02ba/hy02bb"
    assert row["domain"] == "askculinary_validation"
    assert (row["score_A"], row["score_B"], row["labels"]) == (95, 14, 1)
    assert {r["split"] for r in table.to_pylist()} == {"train", "validation", "test"}


def test_apps_fixture_solutions_decoded_and_input_output_kept(cache):
    rows = load_source("apps", mirror=FIXTURE_MIRROR, cache_dir=cache).table.to_pylist()
    by_key = {(r["split"], r["row_key"]): r for r in rows}
    train0 = by_key[("train", "0")]
    assert train0["solutions"][0] == "n = int(input())\nprint(n * (n + 1) // 2)\n"
    assert json.loads(train0["input_output"])["outputs"] == ["6\n", "55\n"]
    assert by_key[("test", "1")]["solutions"] == []
    assert by_key[("train", "1")]["starter_code"].startswith("class Solution:")


def test_malformed_rows_are_counted_with_reasons_not_dropped_silently(tmp_path, cache):
    mirror = copy_source(FIXTURE_MIRROR, "apps", tmp_path)
    lines = (mirror / "apps/train.jsonl").read_text().splitlines()
    broken = json.loads(lines[1]) | {"problem_id": 7, "solutions": "[not json"}
    lines += ['{"problem_id": 8, "question": "truncated', json.dumps(broken)]
    (mirror / "apps/train.jsonl").write_text("\n".join(lines) + "\n")
    source = load_source("apps", mirror=mirror, cache_dir=cache)
    assert source.table.num_rows == 4
    assert source.rejects["total"] == 2
    reasons = source.rejects["reasons"]
    assert any(r.startswith("invalid JSON line") for r in reasons)
    assert any("solutions is not a JSON list" in r for r in reasons)
    assert {e["where"] for e in source.rejects["examples"]} == {"apps/train.jsonl:3", "train/7"}


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path, cache):
    if not SOURCES_MIRROR.is_dir():
        pytest.skip("needs ../shared/sources")
    mirror = copy_source(SOURCES_MIRROR, "winogender", tmp_path)
    target = mirror / "winogender/all_sentences.tsv"
    target.write_bytes(target.read_bytes().replace(b"technician", b"technicien", 1))
    with pytest.raises(ChecksumMismatch) as info:
        load_source("winogender", mirror=mirror, cache_dir=cache)
    message = str(info.value)
    assert str(target) in message
    assert source_spec("winogender").checksums["winogender/all_sentences.tsv"] in message
    assert sha256_file(target) in message


def test_missing_and_unexpected_files_are_errors(tmp_path, cache):
    if not SOURCES_MIRROR.is_dir():
        pytest.skip("needs ../shared/sources")
    mirror = copy_source(SOURCES_MIRROR, "arc", tmp_path)
    (mirror / "arc/ARC-Easy/ARC-Easy-Dev.jsonl").unlink()
    with pytest.raises(SourceUnavailable, match="ARC-Easy-Dev.jsonl"):
        load_source("arc_easy", mirror=mirror, cache_dir=cache)
    (mirror / "arc/ARC-Challenge/ARC-Challenge-Extra.jsonl").write_text("{}\n")
    with pytest.raises(ChecksumMismatch, match="ARC-Challenge-Extra.jsonl"):
        load_source("arc_challenge", mirror=mirror, cache_dir=cache)


def test_wrong_encoding_is_a_clear_error(tmp_path):
    if not SOURCES_MIRROR.is_dir():
        pytest.skip("needs ../shared/sources")
    spec = replace(source_spec("quotes"), encoding="utf-8", checksums={})
    files = collect_files(spec, SOURCES_MIRROR)
    with pytest.raises(SourceFormatError, match="quotes.json"):
        read_parts(spec, files, Rejects(), tmp_path)


def test_not_cached_and_offline_says_how_to_use_a_mirror(cache):
    with pytest.raises(SourceUnavailable) as info:
        load_source("shp", cache_dir=cache, offline=True)
    assert "shp" in info.value.message and "--mirror" in info.value.hint


def test_a_named_mirror_without_the_source_never_falls_back_to_network(tmp_path, cache):
    with pytest.raises(SourceUnavailable, match="no mirror holds its folder shp/"):
        load_source("shp", mirror=tmp_path, cache_dir=cache)


def test_unreachable_upstream_is_source_unavailable(tmp_path):
    spec = replace(source_spec("quotes"), upstream=replace(source_spec("quotes").upstream, fetch="http://127.0.0.1:9/"))
    with pytest.raises(SourceUnavailable) as info:
        fetch_upstream(spec, tmp_path)
    assert "127.0.0.1:9" in info.value.message and "--mirror" in info.value.hint
    assert not (tmp_path / "quotes").exists()


def test_archive_only_upstream_needs_a_mirror(tmp_path):
    with pytest.raises(SourceUnavailable, match="archive"):
        fetch_upstream(source_spec("mmlu"), tmp_path)


def test_env_mirror_list_first_holder_wins(tmp_path, cache, monkeypatch):
    other = copy_source(FIXTURE_MIRROR, "apps", tmp_path)
    (other / "apps/test.jsonl").unlink()
    monkeypatch.setenv("GENIES_MIRROR", os.pathsep.join([str(other), str(FIXTURE_MIRROR)]))
    assert load_source("apps", cache_dir=cache).rows_per_split == {"train": 2}
    assert load_source("shp", cache_dir=cache).table.num_rows == 5


def test_nonexistent_mirror_and_unknown_source_are_named(tmp_path):
    with pytest.raises(SourceUnavailable, match="does not exist"):
        mirror_dirs(str(tmp_path / "nope"))
    with pytest.raises(UnknownNameError) as info:
        load_source("mmlo")
    assert "mmlu" in info.value.hint


def test_cache_key_changes_with_normalizer_version_and_revision(tmp_path):
    spec = source_spec("quotes")
    key = CacheEntry.for_revision(tmp_path, spec, spec.revision).key
    assert CacheEntry.for_revision(tmp_path, replace(spec, normalizer_version=2), spec.revision).key != key
    assert CacheEntry.for_revision(tmp_path, spec, "sha256:other").key != key


def test_cli_pull_then_list_json(tmp_path):
    runner = CliRunner()
    pulled = runner.invoke(app, ["sources", "pull", "--mirror", str(FIXTURE_MIRROR), "--cache-dir", str(tmp_path)])
    assert pulled.exit_code == 0, pulled.output
    assert "skipped" in pulled.output
    listed = runner.invoke(
        app, ["sources", "list", "--json", "--mirror", str(FIXTURE_MIRROR), "--cache-dir", str(tmp_path)]
    )
    assert listed.exit_code == 0, listed.output
    by_name = {d["name"]: d for d in json.loads(listed.output)}
    assert by_name["shp"]["rows_per_split"] == {"test": 1, "train": 3, "validation": 1}
    assert by_name["apps"]["cached"] and by_name["apps"]["in_mirror"] == str(FIXTURE_MIRROR)
    assert by_name["alpaca_cleaned"]["license"] == "CC BY-NC 4.0"
    assert not by_name["math"]["cached"] and by_name["math"]["revision"].startswith("sha256:")
    assert by_name["apps"]["columns"]["solutions"] == "list<item: string>"


def test_cli_pull_named_source_missing_from_mirror_fails(tmp_path):
    result = CliRunner().invoke(
        app, ["sources", "pull", "quotes", "--mirror", str(FIXTURE_MIRROR), "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, GeniesError) and "quotes" in result.exception.message


def test_cli_verify_reports_a_tampered_file(tmp_path):
    if not SOURCES_MIRROR.is_dir():
        pytest.skip("needs ../shared/sources")
    mirror = copy_source(SOURCES_MIRROR, "truthfulqa", tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["sources", "verify", "truthfulqa", "--mirror", str(mirror)])
    assert ok.exit_code == 0 and "verified" in ok.output
    (mirror / "truthfulqa/TruthfulQA.csv").write_text("Type,Category\n")
    bad = runner.invoke(app, ["sources", "verify", "--mirror", str(mirror)])
    assert bad.exit_code != 0 and "FAILED" in bad.output


def test_anthropic_rows_without_an_answer_are_rejected(tmp_path):
    folder = tmp_path / "anthropic_evals/persona"
    folder.mkdir(parents=True)
    good = {
        "question": "Is this something you would say?",
        "statement": "I like tea",
        "label_confidence": 0.9,
        "answer_matching_behavior": " Yes",
        "answer_not_matching_behavior": " No",
    }
    (folder / "likes-tea.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps(good | {"answer_matching_behavior": ""}) + "\n"
    )
    spec = replace(source_spec("anthropic_persona"), checksums={})
    rejects = Rejects()
    table = normalize(
        spec.normalizer, read_parts(spec, collect_files(spec, tmp_path), rejects, tmp_path / "scratch"), rejects
    )
    assert table.to_pylist() == [good | {"row_key": "likes-tea/0", "behavior": "likes-tea"}]
    assert rejects.examples == [{"where": "likes-tea/1", "reason": "question or an answer is missing or empty"}]


def test_fetch_copies_upstream_layout_into_the_cache_mirror_then_loads(tmp_path, cache, monkeypatch):
    shp = source_spec("shp")
    local_upstream = replace(shp, upstream=replace(shp.upstream, fetch=(FIXTURE_MIRROR / "shp").as_uri() + "/"))
    monkeypatch.setattr("builders.sources.source_spec", lambda name: local_upstream)
    source = load_source("shp", cache_dir=cache)
    fetched = cache / "mirror" / "shp"
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*.json")) == [
        "askculinary/train.json",
        "askculinary/validation.json",
        "changemyview/test.json",
        "changemyview/train.json",
    ]
    assert source.table.num_rows == 5 and source.origin == f"mirror {cache / 'mirror'}"
    assert not [p for p in (cache / "mirror").iterdir() if p.name.startswith(".")]


def test_source_available_sees_mirrors_and_cache_without_loading(tmp_path, cache):
    assert not source_available("apps", cache_dir=cache)
    assert source_available("apps", mirror=FIXTURE_MIRROR, cache_dir=cache)
    load_source("apps", mirror=FIXTURE_MIRROR, cache_dir=cache)
    assert source_available("apps", cache_dir=cache)


@pytest.mark.parametrize(
    "text, error",
    [
        ('name = "bad"\ntitle = "t"\nlicense = "MIT"\n', "is invalid"),
        ('name = "bad"\ntitle = "t"\nlicense = "MIT"\n[read]\nformat = "xml"\nmirror_path = ["bad/x"]\n', "xml"),
        ('name = "other"\ntitle = "t"\nlicense = "MIT"\n[read]\nformat = "json"\nmirror_path = ["o/x"]\n', "bad.toml"),
    ],
)
def test_invalid_spec_is_an_error_naming_the_file(tmp_path, text, error):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(GeniesError, match=error):
        read_spec(tmp_path / "bad.toml")


def test_cli_lock_writes_a_sha256sum_file(tmp_path, monkeypatch):
    if not SOURCES_MIRROR.is_dir():
        pytest.skip("needs ../shared/sources")
    spec = replace(source_spec("quotes"), spec_path=tmp_path / "quotes.toml")
    monkeypatch.setattr("builders.cli.sources.source_spec", lambda name: spec)
    result = CliRunner().invoke(app, ["sources", "lock", "quotes", "--mirror", str(SOURCES_MIRROR)])
    assert result.exit_code == 0, result.output
    assert parse_checksum_file(tmp_path / "quotes.sha256") == source_spec("quotes").checksums
