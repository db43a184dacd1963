"""Benchmark: build every LLM-free distribution that has a builder from ../shared/sources, then rebuild.

Prints the median wall and CPU time of `--runs` full builds, each with a cold source cache (a fresh
temporary directory) into a fresh output folder, next to the reference measured in the same run:
parsing every mirror file once with the standard library (`json`, `csv`); the ratio's target is 15x.
Then rows and rows/s, the slowest distributions, peak RSS, and the time of a no-op rebuild (same
fingerprint, target version exists) in-process, as a share of a build (target: at most 2%), and as a
fresh `genies build` process (which adds interpreter start-up and imports).

    python benchmarks/build_all.py [--mirror ../shared/sources] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import Timing, median_seconds, print_machine, print_ratio  # noqa: E402

from builders.catalog import load_catalog
from builders.discovery import discover
from builders.errors import GeniesError
from builders.pipeline import BuildOptions, BuildReport, BuildRequest, run_build

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = REPO.parent / "shared" / "sources"
NO_LLM_KINDS = ("DET", "PROC", "DET+LLM")
TARGET_RATIO = 15
NOOP_TARGET = 0.02


def buildable_without_llm() -> list[str]:
    catalog, builders = load_catalog(), discover()
    return sorted(
        name for name, info in catalog.distributions.items()
        if info.build in NO_LLM_KINDS and name in builders and not builders[name].needs_llm
    )


def parse_mirror(mirror: Path) -> int:
    """The reference: every data file of the mirror parsed once with the standard library; returns the files."""
    count = 0
    for path in sorted(mirror.rglob("*")):
        if path.suffix == ".json":
            json.loads(path.read_bytes().decode("utf-8", "replace"))  # a few upstream files hold cp1252 bytes
        elif path.suffix == ".jsonl":
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.strip():
                        json.loads(line)
        elif path.suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8", errors="replace", newline="") as fh:
                for _ in csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ","):
                    pass
        else:
            continue
        count += 1
    return count


def cli_noop_seconds(names: list[str], mirror: Path, cache_dir: Path, out: Path, version: str) -> float:
    command = [sys.executable, "-m", "builders", "build", *names, "--mirror", str(mirror),
               "--cache-dir", str(cache_dir), "--out", str(out), "--version", version]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"no-op rebuild failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--runs", type=int, default=3, help="cold builds whose median is printed")
    parser.add_argument("--keep", type=Path, default=None, help="write the artifacts here instead of a temp dir")
    args = parser.parse_args()
    if not args.mirror.is_dir():
        sys.exit(f"no source mirror at {args.mirror}; pass --mirror DIR")
    names = buildable_without_llm()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "artifacts"
        request = BuildRequest(names=names, options=BuildOptions(mirror=args.mirror, cache_dir=Path(tmp) / "cache"),
                               out=out, version="bench")

        def cold_build() -> BuildReport:
            for folder in (Path(tmp) / "cache", out / "genies" / "bench"):
                shutil.rmtree(folder, ignore_errors=True)
            return run_build(request)

        reference, files = median_seconds(lambda: parse_mirror(args.mirror), args.runs)
        build, report = median_seconds(cold_build, args.runs)
        print(f"reference: {files} mirror files parsed")
        _print_build(report, names, build, reference)
        if not _print_noop(request, build):
            print("measuring the no-op on the procedural distributions instead (a shorter window for edits):")
            procedural = [n for n in names if load_catalog().distributions[n].build == "PROC"]
            small = BuildRequest(names=procedural, options=request.options, out=out, version="bench-procedural")
            _print_noop(small, median_seconds(lambda: run_build(small), 1)[0])
        print_machine()


def _print_noop(request: BuildRequest, build: Timing) -> bool:
    """Rebuild `request` (which was just built) in-process and as a fresh process; False if not a no-op."""
    try:
        noop, again = median_seconds(lambda: run_build(request), 3)
    except GeniesError as exc:
        print(f"the rebuild was not a no-op, and the exporter refused it: {exc.message}")
        return False
    if not again.noop:
        print(f"the rebuild was not a no-op ({noop.wall:.1f} s): code or source specs were edited during the build")
        return False
    share = noop.cpu / build.cpu
    print(f"no-op rebuild in-process: {noop.wall:.3f} s wall, {noop.cpu:.3f} s CPU, {share:.1%} of a build's CPU "
          f"(target <= {NOOP_TARGET:.0%}: {'ok' if share <= NOOP_TARGET else 'MISSED'})")
    options = request.options
    cli = cli_noop_seconds(request.names, Path(options.mirror), Path(options.cache_dir), request.out, request.version)
    print(f"no-op rebuild as a fresh `genies build` process: {cli:.1f} s")
    return True


def _print_build(report: BuildReport, names: list[str], build: Timing, reference: Timing) -> None:
    built = report.with_status("built")
    print(f"distributions built: {len(built)} of {len(names)} with builders "
          f"(skipped: {', '.join(r.name + ' (' + r.reason + ')' for r in report.with_status('skipped')) or 'none'})")
    print(f"{report.total_rows:,} rows, {report.total_rows / build.wall:,.0f} rows/s wall")
    print_ratio("full build (cold source cache)", build, "standard-library parse of every mirror file", reference,
                TARGET_RATIO)
    print("slowest distributions: " + ", ".join(
        f"{r.name} {r.seconds:.1f} s" for r in sorted(built, key=lambda r: -r.seconds)[:6]))


if __name__ == "__main__":
    main()
