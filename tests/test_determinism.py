"""Determinism: a small build has known bytes, and two builds in different places are byte-identical.

If a golden hash changes, the procedural data changed: a generator, a puzzle template, the Alpaca prompt
format, the split/balance logic or the export format. If that was intended, update the constants below
with the values the failure message prints, and say so in the commit (a new release version follows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders.pipeline import BuildOptions, BuildRequest, build_fingerprint, run_build
from tests.conftest import SOURCES_MIRROR

PROCEDURAL = ["crt_1", "ranking_logic", "ranking_logic_easy", "ranking_logic_hard", "raven_easy", "raven_matrices"]
GOLDEN_LIMIT = 6

GOLDEN = {
    "crt_1/test": "002088dffc7a9d73bfb3cc1594dc656990fdc4759f7cd4c82156da3a324817f3",
    "crt_1/train": "e7bd35e0ee19e6d8ca1ced3c84381f545e8e9692e0bcbb324e1efa916397831b",
    "ranking_logic/test": "dea38f2e448e812224b63970ffaedc3b01835101795a3ba3f07db1490a55aa19",
    "ranking_logic/train": "252ba27bbc58b151d9ed9ecbad5e62323a1497c4de9e97f9db2261009a82d7be",
    "ranking_logic_easy/test": "88d6b6798debe508effcc93a7e13c59cf5f28d481a471cdfaef6ea6ed4eb3032",
    "ranking_logic_easy/train": "dc6e53d509dba9a599cacf89ae1d9db092b85593362a3e139bdbf0cbcb80d54d",
    "ranking_logic_hard/test": "69fb408f4759304e5436c861ab4b2bd231cc5a85b8bb9ba0698e21bd1a6672b6",
    "ranking_logic_hard/train": "5337b71745d3bd538656812b52de0012c08016cea34d6f0ae0c0c300affdfefc",
    "raven_easy/test": "dcb691807c9f6191230a7b0e4ec60e40db878ce1441842129561607a29814057",
    "raven_easy/train": "bccd97776cd08b0ed4d9b9c60e3717037a274f9da02416bcbb47016629a2d539",
    "raven_matrices/test": "3f91e4d8244b89d0d3412c5a02e4b840cfe060ca4a2077058a8193f849c4e1c1",
    "raven_matrices/train": "da7a6a5a6e595e37d66c0d4ea982bef195f4bdb85ae1977de7af806e9bea0803",
}

BUILD_SNIPPET = """
import sys
from pathlib import Path
from builders.pipeline import BuildOptions, BuildRequest, run_build
names, mirror = sys.argv[1].split(","), sys.argv[2] or None
report = run_build(BuildRequest(names=names, options=BuildOptions(limit=6, mirror=mirror), out=Path("artifacts"),
                                version="twin"))
print(report.path.resolve())
"""


def _split_hashes(manifest: dict) -> dict[str, str]:
    """sha256 of each distribution split's data file, keyed "<distribution>/<split>"."""
    return {
        "/".join(path.split("/")[1:3]): entry["sha256"]
        for path, entry in manifest["files"].items()
        if path.startswith("distributions/")
    }


def test_golden_hashes_of_a_small_procedural_build(tmp_path):
    request = BuildRequest(names=PROCEDURAL, options=BuildOptions(limit=GOLDEN_LIMIT), out=tmp_path, version="golden")
    actual = _split_hashes(run_build(request).export.manifest)
    assert actual == GOLDEN, f"procedural data changed; if intended, set GOLDEN = {actual!r}"


def _data_files(version_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(version_dir).as_posix(): p.read_bytes()
        for p in sorted(version_dir.rglob("*"))
        if p.is_file() and p.name not in {"manifest.json", "README.md"}
    }


def test_two_builds_in_different_directories_and_processes_are_byte_identical(tmp_path, monkeypatch):
    """A second build runs in another process, directory and hash seed: a stand-in for another machine.

    With ../shared/sources present, two source-based distributions join the procedural ones.
    """
    mirror = SOURCES_MIRROR if (SOURCES_MIRROR / "SOURCES.md").exists() else None
    names = PROCEDURAL + (["arc_easy", "truthful_qa"] if mirror else [])
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    monkeypatch.chdir(first_dir)
    options = BuildOptions(limit=GOLDEN_LIMIT, mirror=mirror)
    first = run_build(BuildRequest(names=names, options=options, out=Path("artifacts"), version="twin"))
    assert [r.name for r in first.results if r.status != "built"] == []
    done = subprocess.run(
        [sys.executable, "-c", BUILD_SNIPPET, ",".join(names), str(mirror or "")],
        cwd=second_dir, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True, text=True, check=True,
    )
    second_path = Path(done.stdout.strip().splitlines()[-1])
    assert second_path != first.path.resolve()
    assert _data_files(first.path) == _data_files(second_path)
    second = json.loads((second_path / "manifest.json").read_text())
    assert second["content_sha256"] == first.export.manifest["content_sha256"]
    assert second["build_fingerprint"] == build_fingerprint(second["build"]["inputs"])
    first_inputs, second_inputs = first.export.manifest["build"]["inputs"], second["build"]["inputs"]
    assert {**first_inputs, "code": None} == {**second_inputs, "code": None}  # code may be edited meanwhile
