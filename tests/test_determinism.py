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

from builders.pipeline import (
    BuildOptions,
    BuildRequest,
    build_fingerprint,
    content_fingerprint,
    run_build,
)
from tests.conftest import SOURCES_MIRROR

PROCEDURAL = ["crt_1", "crt_2", "crt_3", "ranking_logic", "ranking_logic_easy", "ranking_logic_hard", "raven_easy", "raven_matrices"]
GOLDEN_LIMIT = 6

GOLDEN = {
    "crt_1/test": "f106299166773ec66ba282ce322d8b0e07ec0d12b30f1fa9c203e22f0565a2c6",
    "crt_1/train": "2fa94b9cd955485f0e71743960d7988a22c62a31670740ca65e4085b1db61bdf",
    "crt_2/test": "9b503c115ddef07c9c01da8fdbf129787700cf4f980225c7e1442d3c23a7bd48",
    "crt_2/train": "5e02d22b7d30e0713de04cc7fb353eef8b9bef3ab346150a7cff7b9256760174",
    "crt_3/test": "0ff922b63614077dd891e6f85a284178c1d1753f164616b321bef7a231e5c6f1",
    "crt_3/train": "bb21b5d620ca52e258429fbbc70148d23213c7596e133cde5f19ba48fcf64980",
    "ranking_logic/test": "88a594be9ffffa240a9aa55109c17c59917b728604ec275af3018a59afdda9f0",
    "ranking_logic/train": "5a09692575192402fb50a2101ac49b3fc4852d72e7364f787f3f7900735aad71",
    "ranking_logic_easy/test": "2b73a38fe3df8ebc02a08efd18bb9512c4c07a2c6cc51708de1b2772878d698b",
    "ranking_logic_easy/train": "a8f70994fd0d1c4ff5d3437d1356a816b76321ecf8f0c85c18357807c2d21cb0",
    "ranking_logic_hard/test": "8f94852600d2485cf7ece348d627c63b6b0eade054382ff1685cd6540079f48d",
    "ranking_logic_hard/train": "947a28943e87f5c62934e8d32defa77fccd10aac65ee20080cd176ad0a1eefcc",
    "raven_easy/test": "f5b2138f6b94f58747dee7266c187d541ace9772f2ff722b7e3b470663854b89",
    "raven_easy/train": "f0078041ac208ab0b5a326d8c56d1e7f007e9acb6626881c6af89fd482fef697",
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
    assert second["build"]["plan_fingerprint"] == build_fingerprint(second["build"]["inputs"])
    assert second["build_fingerprint"] == content_fingerprint(second["build"]["plan_fingerprint"],
                                                              second["build"]["built_from"])
    first_inputs, second_inputs = first.export.manifest["build"]["inputs"], second["build"]["inputs"]
    assert {**first_inputs, "code": None} == {**second_inputs, "code": None}  # code may be edited meanwhile
