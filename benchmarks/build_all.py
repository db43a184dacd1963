"""Benchmark: build every DET/PROC distribution that has a builder from ../shared/sources, then rebuild.

Prints wall and CPU time (on a shared machine CPU time is the fairer number), rows and rows/s of the full build, the slowest distributions, peak RSS, and the time
of a no-op rebuild (same fingerprint, target version exists), both in-process and as a fresh `genies
build` process (which adds interpreter start-up and imports). Targets (issue 4): full build < 60 s,
no-op rebuild < 5 s, peak RSS < 2 GB.

    python benchmarks/build_all.py [--mirror ../shared/sources] [--cache-dir DIR] [--keep DIR]

The source cache defaults to a fresh temporary directory, so the first build is a cold one.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builders.catalog import load_catalog
from builders.errors import GeniesError
from builders.pipeline import BuildOptions, BuildReport, BuildRequest, run_build
from builders.registry import discover

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = REPO.parent / "shared" / "sources"
NO_LLM_KINDS = ("DET", "PROC", "DET+LLM")


def buildable_without_llm() -> list[str]:
    catalog, builders = load_catalog(), discover()
    return sorted(
        name for name, info in catalog.distributions.items()
        if info.build in NO_LLM_KINDS and name in builders and not builders[name].needs_llm
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


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
    parser.add_argument("--cache-dir", type=Path, default=None, help="source cache (default: a fresh temp dir)")
    parser.add_argument("--keep", type=Path, default=None, help="write the artifacts here instead of a temp dir")
    args = parser.parse_args()
    if not args.mirror.is_dir():
        sys.exit(f"no source mirror at {args.mirror}; pass --mirror DIR")
    names = buildable_without_llm()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "artifacts"
        cache_dir = args.cache_dir or Path(tmp) / "cache"
        request = BuildRequest(names=names, options=BuildOptions(mirror=args.mirror, cache_dir=cache_dir), out=out,
                               version="bench")
        started, cpu_started = time.perf_counter(), time.process_time()
        report = run_build(request)
        _print_build(report, names, time.perf_counter() - started, time.process_time() - cpu_started)
        if not _print_noop(request):
            print("measuring the no-op on the procedural distributions instead (a shorter window for edits):")
            procedural = [n for n in names if load_catalog().distributions[n].build == "PROC"]
            small = BuildRequest(names=procedural, options=request.options, out=out, version="bench-procedural")
            run_build(small)
            _print_noop(small)


def _print_noop(request: BuildRequest) -> bool:
    """Rebuild `request` (which was just built) in-process and as a fresh process; False if not a no-op."""
    started = time.perf_counter()
    try:
        again = run_build(request)
    except GeniesError as exc:
        print(f"the rebuild was not a no-op, and the exporter refused it: {exc.message}")
        return False
    seconds = time.perf_counter() - started
    if not again.noop:
        print(f"the rebuild was not a no-op ({seconds:.1f} s): code or source specs were edited during the build")
        return False
    print(f"no-op rebuild in-process: {seconds:.3f} s")
    options = request.options
    cli = cli_noop_seconds(request.names, Path(options.mirror), Path(options.cache_dir), request.out, request.version)
    print(f"no-op rebuild as a fresh `genies build` process: {cli:.1f} s")
    return True


def _print_build(report: BuildReport, names: list[str], full: float, cpu: float) -> None:
    built = report.with_status("built")
    print(f"distributions built: {len(built)} of {len(names)} with builders "
          f"(skipped: {', '.join(r.name + ' (' + r.reason + ')' for r in report.with_status('skipped')) or 'none'})")
    print(f"full build (cold source cache): {full:.1f} s wall, {cpu:.1f} s CPU, {report.total_rows:,} rows, "
          f"{report.total_rows / full:,.0f} rows/s (machine load average {os.getloadavg()[0]:.1f})")
    print("slowest distributions: " + ", ".join(
        f"{r.name} {r.seconds:.1f} s" for r in sorted(built, key=lambda r: -r.seconds)[:6]))
    print(f"peak RSS: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
