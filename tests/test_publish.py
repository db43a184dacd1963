"""`genies publish`: dry-run folders that `datasets` loads, and pushes to a local Hub stand-in (tests/hub_server.py)."""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
from pathlib import Path

import datasets
import httpx2
import huggingface_hub
import pytest
from huggingface_hub import DatasetCard, DatasetCardData
from huggingface_hub.errors import HfHubHTTPError

from builders.catalog import load_catalog
from builders.cli import main
from builders.errors import GeniesError
from builders.export import DistributionExport, Version, export_version
from builders.publishing import RetryPolicy, dry_run, publish_version
from builders.publishing.card import (
    hub_license_id,
    most_restrictive,
    state_license,
    stated_licenses,
)
from builders.publishing.hub import _retry_after
from builders.schema import PAIRWISE_SCHEMA, RECORD_SCHEMA, Provenance, Record
from builders.splits import group_split
from tests.hub_server import HubStandIn

REPO_ID = "genies-org/genies"
FAST = RetryPolicy(attempts=3, base_wait=0.01, max_wait=0.05, conflict_attempts=3)
SOURCES = {"mmlu": {"revision": "r1", "license": "MIT"}, "alpaca": {"revision": "r2", "license": "CC BY-NC 4.0"}}


def _records(distribution: str, n: int, salt: str = "") -> list[Record]:
    return [
        Record(
            distribution=distribution,
            prompt=f"{distribution} question {i}{salt}?",
            responses=[f"good answer {i}", f"bad answer {i}", f"worse answer {i}"],
            preferred=i % 3,
            group=f"mmlu:{i}",
            provenance=Provenance(source="mmlu", revision="r1", row_key=str(i)),
            meta={"i": i},
        )
        for i in range(n)
    ]


def make_version(root: Path, names: tuple[str, ...] = ("toy_a", "toy_b"), version: str = "1.0.0",
                 salt: str = "") -> Path:
    exports = [
        DistributionExport(name, group_split(_records(name, 30, salt), seed=0, train_size=16, test_size=8),
                           sources=SOURCES)
        for name in names
    ]
    return export_version(root, "genies", version, exports, load_catalog().shifts_table(), seed=0).path


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_version(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """The stand-in, with huggingface_hub on its plain LFS path (the stand-in does not speak Xet)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    huggingface_hub.utils.disable_progress_bars()
    with HubStandIn() as server:
        yield server
    huggingface_hub.utils.enable_progress_bars()


def _publish(hub: HubStandIn, ref: Path, **kwargs):
    kwargs.setdefault("retry", FAST)
    return publish_version(ref, REPO_ID, endpoint=hub.endpoint, token=hub.token, **kwargs)[0]


def _card_metadata(text: str) -> dict:
    return DatasetCard(text).data.to_dict()


def _config_names(metadata: dict) -> list[str]:
    return [c["config_name"] for c in metadata["configs"]]


# ---- dry run ----------------------------------------------------------------------------------------


def test_dry_run_loads_every_config_with_datasets(version_dir: Path, tmp_path: Path) -> None:
    dry_run(version_dir, REPO_ID, tmp_path / "repo")
    version = Version.open(version_dir)
    metadata = _card_metadata((tmp_path / "repo" / "README.md").read_text())
    assert _config_names(metadata) == ["pairs", "shifts", "toy_a", "toy_b"]
    record_features = datasets.Features.from_arrow_schema(RECORD_SCHEMA)
    for name in version.distributions:
        loaded = datasets.load_dataset(str(tmp_path / "repo"), name, cache_dir=str(tmp_path / "cache"))
        assert set(loaded) == {"train", "test"}
        assert loaded["train"].features == record_features
        for split in ("train", "test"):
            assert loaded[split]["id"] == version.table(name, split).column("id").to_pylist()
    pairs = datasets.load_dataset(str(tmp_path / "repo"), "pairs", cache_dir=str(tmp_path / "cache"))
    assert pairs["train"].features == datasets.Features.from_arrow_schema(PAIRWISE_SCHEMA)
    assert pairs["train"].num_rows == 2 * 16 * 2  # two dispreferred responses per example, two distributions
    shifts = datasets.load_dataset(str(tmp_path / "repo"), "shifts", split="train", cache_dir=str(tmp_path / "cache"))
    assert shifts.num_rows == len(load_catalog().shifts)


def test_dry_run_card_states_license_citations_and_manifest(version_dir: Path, tmp_path: Path) -> None:
    dry_run(version_dir, REPO_ID, tmp_path / "repo")
    text = (tmp_path / "repo" / "README.md").read_text()
    metadata = _card_metadata(text)
    assert metadata["license"] == "cc-by-nc-4.0"
    assert metadata["task_categories"] == ["text-classification"]
    infos = {i["config_name"]: i for i in metadata["dataset_info"]}
    assert [s["num_examples"] for s in infos["toy_a"]["splits"]] == [16, 8]
    assert "**mmlu**: mit" in text and "**alpaca**: cc-by-nc-4.0" in text
    assert "clymer2023generalization" in text
    assert "hendrycks2021measuring" in text  # the MMLU citation, read from sources/mmlu.toml
    assert Version.open(version_dir).manifest["content_sha256"] in text
    assert (tmp_path / "repo" / "manifest.json").read_bytes() == (version_dir / "manifest.json").read_bytes()


def test_dry_run_bytes_are_deterministic(version_dir: Path, tmp_path: Path) -> None:
    dry_run(version_dir, REPO_ID, tmp_path / "one")
    dry_run(version_dir, REPO_ID, tmp_path / "two")
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert one == two and len(one) == 9


def test_dry_run_refuses_a_non_empty_folder_and_reserved_names(version_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(GeniesError, match="not empty"):
        dry_run(version_dir, REPO_ID, tmp_path / "taken")
    clash = make_version(tmp_path / "art", names=("pairs",))
    with pytest.raises(GeniesError, match="reserved"):
        dry_run(clash, REPO_ID, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(GeniesError, match="ORG/NAME"):
        dry_run(version_dir, "no-namespace", tmp_path / "out")


def test_a_manifest_holding_the_token_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_leaked_in_a_command_line")
    exports = [DistributionExport("toy_a", {"train": _records("toy_a", 4), "test": _records("toy_a", 2, "!")})]
    leaky = export_version(tmp_path / "art", "genies", "1.0.0", exports, load_catalog().shifts_table(),
                           manifest_extra={"command": "genies build --token hf_leaked_in_a_command_line"}).path
    with pytest.raises(GeniesError, match="contains the Hugging Face token"):
        dry_run(leaky, REPO_ID, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "hf_leaked" not in str(list(tmp_path.iterdir()))


def test_license_is_the_most_restrictive() -> None:
    data = DatasetCardData()
    state_license(data, "some-custom-license")
    assert (data.license, data.license_name) == ("other", "some-custom-license")
    assert stated_licenses(data) == ["some-custom-license"]
    state_license(data, most_restrictive([*stated_licenses(data), "MIT"]))
    assert data.license == "other"
    state_license(data, "cc-by-4.0")
    assert data.to_dict() == {"license": "cc-by-4.0"}
    assert hub_license_id("CC BY-SA 4.0") == "cc-by-sa-4.0"
    assert most_restrictive(["MIT", "CC BY-SA 4.0", "Apache-2.0"]) == "cc-by-sa-4.0"
    assert most_restrictive(["MIT", "CC BY-NC 4.0", "CC BY 4.0"]) == "cc-by-nc-4.0"
    assert most_restrictive(["MIT", "none stated"]) == "unknown"
    assert most_restrictive(["MIT", "some-custom-license"]) == "some-custom-license"


@pytest.mark.skipif(importlib.util.find_spec("builders.release") is None,
                    reason="builders.release (the release importer) is not in this checkout")
def test_dry_run_of_the_imported_release_sample(release_sample: Path, tmp_path: Path) -> None:
    from builders.release import import_release

    report = import_release(release_sample, tmp_path / "artifacts", "0.0.1")
    _, staged = dry_run(report.result.path, REPO_ID, tmp_path / "repo")
    version = Version.open(report.result.path)
    metadata = _card_metadata((tmp_path / "repo" / "README.md").read_text())
    assert _config_names(metadata) == sorted([*version.distributions, "pairs", "shifts"])
    assert len(staged.data) == 2 * len(version.distributions) + 3
    first = version.distributions[0]
    loaded = datasets.load_dataset(str(tmp_path / "repo"), first, cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"}
    assert loaded["test"]["id"] == version.table(first, "test").column("id").to_pylist()
    pairs = datasets.load_dataset(str(tmp_path / "repo"), "pairs", cache_dir=str(tmp_path / "cache"))
    assert set(pairs["test"]["distribution"]) == {d for d in version.distributions if version.table(d, "test").num_rows}


# ---- push to the stand-in ---------------------------------------------------------------------------


def test_publish_is_one_commit_and_a_tag_and_republishing_is_a_no_op(
    hub: HubStandIn, version_dir: Path, tmp_path: Path
) -> None:
    result = _publish(hub, version_dir)
    assert result.status == "published"
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit["header"]["parentCommit"]  # guarded by the head it was planned on
    dry_run(version_dir, REPO_ID, tmp_path / "dry")
    expected = {p.relative_to(tmp_path / "dry").as_posix() for p in (tmp_path / "dry").rglob("*") if p.is_file()}
    assert {path for _, path in commit["operations"]} == expected
    assert all(kind == "lfsFile" for kind, path in commit["operations"] if path.endswith(".parquet"))
    assert hub.repos[REPO_ID].tags == {"v1.0.0": commit["oid"]}
    pushed = hub.files(REPO_ID, "v1.0.0")
    for path in expected:
        assert pushed[path] == (tmp_path / "dry" / path).read_bytes()

    calls_before = len(hub.received)
    again = _publish(hub, version_dir)
    assert again.status == "unchanged" and again.commit == commit["oid"]
    assert len(hub.commits) == 1 and len(hub.repos[REPO_ID].tags) == 1
    assert not {"commit", "preupload", "lfs_upload", "tag"} & set(hub.routes_called()[calls_before:])


def test_publish_merges_the_existing_card_and_deletes_stale_files_of_republished_configs(
    hub: HubStandIn, version_dir: Path
) -> None:
    huggingface_hub.HfApi(endpoint=hub.endpoint, token=hub.token).create_repo(REPO_ID, repo_type="dataset")
    old_card = (
        "---\nlanguage:\n- en\nmaintainer_note: keep me\nlicense: mit\ntags:\n- curated\nconfigs:\n"
        "- config_name: legacy\n  data_files:\n  - split: train\n    path: data/legacy/train-*.parquet\n---\n"
        "# old body\n"
    )
    hub.push(REPO_ID, {
        "README.md": old_card.encode(),
        "data/legacy/train-00000-of-00001.parquet": b"PAR1legacy",
        "data/toy_a/train-00001-of-00002.parquet": b"PAR1stale shard",
    })
    result = _publish(hub, version_dir)
    assert result.deleted == ["data/toy_a/train-00001-of-00002.parquet"]
    assert ("deletedFile", "data/toy_a/train-00001-of-00002.parquet") in hub.commits[-1]["operations"]
    files = hub.files(REPO_ID)
    assert "data/legacy/train-00000-of-00001.parquet" in files
    metadata = _card_metadata(files["README.md"].decode())
    assert metadata["maintainer_note"] == "keep me" and metadata["language"] == ["en"]
    assert metadata["tags"][0] == "curated" and "reward-modeling" in metadata["tags"]
    assert _config_names(metadata) == ["legacy", "pairs", "shifts", "toy_a", "toy_b"]
    assert metadata["license"] == "cc-by-nc-4.0"


def test_an_existing_card_with_broken_yaml_is_not_overwritten(hub: HubStandIn, version_dir: Path) -> None:
    huggingface_hub.HfApi(endpoint=hub.endpoint, token=hub.token).create_repo(REPO_ID, repo_type="dataset")
    hub.push(REPO_ID, {"README.md": b"---\nlicense: [mit\n---\n# hand-written\n"})
    with pytest.raises(GeniesError, match="invalid YAML metadata"):
        _publish(hub, version_dir)
    assert hub.files(REPO_ID)["README.md"].endswith(b"# hand-written\n") and not hub.commits


def test_a_concurrent_commit_is_replanned_on_the_new_head(hub: HubStandIn, version_dir: Path) -> None:
    huggingface_hub.HfApi(endpoint=hub.endpoint, token=hub.token).create_repo(REPO_ID, repo_type="dataset")
    moved: list[str] = []
    hub.before_next_commit(lambda: moved.append(hub.push(REPO_ID, {"NOTES.md": b"someone else"})))
    result = _publish(hub, version_dir)
    assert result.status == "published"
    statuses = [r.status for r in hub.received if r.route == "commit"]
    assert statuses == [412, 200]
    assert hub.commits[-1]["header"]["parentCommit"] == moved[0]
    assert "NOTES.md" in hub.files(REPO_ID, "v1.0.0")


def test_retryable_errors_are_retried_honouring_retry_after(hub: HubStandIn, version_dir: Path) -> None:
    hub.fail("refs", 503, times=2)
    hub.fail("commit", 429, times=1, headers={"Retry-After": "0.3"})
    hub.fail("tag", 502, times=1)
    result = _publish(hub, version_dir, retry=RetryPolicy(attempts=3, base_wait=0.01, max_wait=1.0))
    assert result.status == "published"
    by_route = {}
    for r in hub.received:
        by_route.setdefault(r.route, []).append(r.status)
    assert by_route["refs"][:3] == [503, 503, 200]
    assert by_route["commit"] == [429, 200]
    assert by_route["tag"] == [502, 200]
    assert len(hub.commits) == 1
    limited, retried = [r.at for r in hub.received if r.route == "commit"]
    assert retried - limited >= 0.3  # Retry-After honoured although the backoff alone would wait 0.01 s


def test_the_hub_rate_limit_header_sets_the_wait() -> None:
    response = httpx2.Response(429, headers={"RateLimit": '"api";r=0;t=7'}, request=httpx2.Request("GET", "http://x"))
    assert _retry_after(HfHubHTTPError("limited", response=response)) == 7.0


def test_a_card_the_hub_refuses_is_reported(hub: HubStandIn, version_dir: Path) -> None:
    hub.fail("validate_yaml", 400, message="license: must be a valid license id")
    with pytest.raises(GeniesError, match="refused the dataset card"):
        _publish(hub, version_dir)
    assert not hub.commits and not hub.lfs


def test_a_conflict_on_the_tag_is_rechecked_without_a_second_commit(hub: HubStandIn, version_dir: Path) -> None:
    hub.fail("tag", 409)
    result = _publish(hub, version_dir)
    assert result.status == "published" and len(hub.commits) == 1
    assert [r.status for r in hub.received if r.route == "tag"] == [409, 200]
    assert hub.repos[REPO_ID].tags == {"v1.0.0": hub.commits[0]["oid"]}


@pytest.mark.parametrize(
    ("route", "status", "times", "expected"),
    [
        ("create_repo", 401, 1, "rejected the token"),
        ("refs", 403, 1, "may not write"),
        ("refs", 404, 1, "not found"),
        ("commit", 409, 3, "moved 3 times"),
        ("commit", 412, 3, "moved 3 times"),
        ("commit", 429, 3, "rate limit"),
        ("tag", 500, 3, "HTTP 500"),
    ],
)
def test_hub_errors_get_clear_messages(hub: HubStandIn, version_dir: Path, route: str, status: int, times: int,
                                       expected: str) -> None:
    hub.fail(route, status, times=times, headers={"Retry-After": "0"} if status == 429 else None)
    with pytest.raises(GeniesError, match=expected) as error:
        _publish(hub, version_dir)
    assert error.value.hint
    assert hub.token not in str(error.value)


def test_an_unreachable_hub_says_so(version_dir: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(GeniesError, match="could not reach the Hub"):
        publish_version(version_dir, REPO_ID, endpoint=endpoint, token="hf_x", retry=FAST)


def test_a_new_version_is_a_second_commit_and_the_old_tag_stays_reachable(
    hub: HubStandIn, version_dir: Path, tmp_path: Path
) -> None:
    first = _publish(hub, version_dir)
    newer = make_version(tmp_path / "art", names=("toy_a",), version="1.1.0", salt=" v2")
    second = _publish(hub, newer)
    repo = hub.repos[REPO_ID]
    assert repo.tags == {"v1.0.0": first.commit, "v1.1.0": second.commit} and len(hub.commits) == 2
    assert hub.files(REPO_ID, "v1.0.0") == hub.files(REPO_ID, first.commit)
    main_files = hub.files(REPO_ID, "main")
    toy_a = "data/toy_a/train-00000-of-00001.parquet"
    assert main_files[toy_a] != hub.files(REPO_ID, "v1.0.0")[toy_a]
    assert "data/toy_b/train-00000-of-00001.parquet" in main_files  # configs of older versions are kept
    assert _config_names(_card_metadata(main_files["README.md"].decode())) == ["pairs", "shifts", "toy_a", "toy_b"]


def test_a_tag_with_different_content_is_refused(hub: HubStandIn, version_dir: Path, tmp_path: Path) -> None:
    _publish(hub, version_dir)
    other = make_version(tmp_path / "other", salt=" (rebuilt)")
    with pytest.raises(GeniesError, match="already has tag v1.0.0 with different content"):
        _publish(hub, other)
    assert len(hub.commits) == 1


def test_publish_to_a_branch_of_a_new_private_repo_keeps_main_untouched(hub: HubStandIn, version_dir: Path) -> None:
    result = _publish(hub, version_dir, branch="staging", private=True)
    repo = hub.repos[REPO_ID]
    assert repo.private
    assert hub.commits[0]["branch"] == "staging"
    assert repo.tags["v1.0.0"] == repo.branches["staging"] == result.commit
    assert set(hub.files(REPO_ID, "main")) == {".gitattributes"}


def test_the_token_never_appears_in_output_logs_card_or_files(
    hub: HubStandIn, version_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    hub.token = "hf_SECRET_never_print_me_123"
    monkeypatch.setenv("HF_TOKEN", hub.token)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    caplog.set_level(logging.DEBUG)

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["genies", "publish", str(version_dir), "--repo", REPO_ID, *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        return exit_.value.code

    hub.fail("commit", 403)
    assert run() == 2
    assert run() == 0
    assert run("--dry-run", str(tmp_path / "dry")) == 0
    out = capsys.readouterr()
    assert "may not write" in out.err and "v1.0.0" in out.out
    assert f"Bearer {hub.token}" in {r.authorization for r in hub.received}
    written = b"".join(p.read_bytes() for p in (tmp_path / "dry").rglob("*") if p.is_file())
    pushed = b"".join(hub.files(REPO_ID).values())
    for text in (out.out, out.err, caplog.text, written.decode("latin-1"), pushed.decode("latin-1")):
        assert hub.token not in text
