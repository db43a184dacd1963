"""Benchmark `genies validate` and `genies diff` on a full-size, release-shaped version (target: validate < 30 s).

It times validation twice: without the shortcut audit (the checks `genies validate` had before it) and
with every check, and prints the ratio (target: the audit at most doubles the time, < 2x), then the ratio of
the full validation to `json.load` of every release file, measured in the same run.

The version is made the way a real one is: a release-shaped input of ~64,000 examples in 66 distributions
(benchmarks/release_shape.py replicates the real release sample with unique texts, so lengths and
templates are realistic) imported with `genies import-release`, which writes it with `export_version`.

Usage: python benchmarks/validate.py [--examples 64000] [--report]
       python benchmarks/validate.py --version artifacts/genies-release/1.0.0   (time an existing version)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import Timing, json_load_all, median_seconds, print_ratio
from release_shape import TOTAL_EXAMPLES, generate

from builders.diff import diff_versions
from builders.release import import_release
from builders.validation import CHECKS, validate_version
from builders.validation.report import write_report

AUDIT_CHECKS = {"shortcut_cues", "declared_cues", "inherited_cues", "surface_probe", "shortcut_coverage", "fidelity"}


def _timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    print(f"{label}: {time.perf_counter() - start:.1f} s")
    return value


def _measured(fn):
    """(wall seconds, CPU seconds of this process, all threads, value): on a machine shared with other jobs
    the CPU time is the fairer number."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def _release_shaped_version(root: Path, examples: int) -> Path:
    release = _timed("generate release-shaped input", lambda: generate(root / "release", examples))
    _timed("import as a version", lambda: import_release(release, root / "out", "bench"))
    return root / "out" / "genies-release" / "bench"


def _validate_process_peak_mb(version: Path) -> float:
    """Peak RSS of `genies validate` run alone in a fresh process: this script's own peak also holds the
    import that made the version and both in-process validations, so it overstates what validate needs.

    Read from the child's `VmHWM` (Linux): `ru_maxrss` of a child started from this big process also
    counts the parent's memory the child shared before its exec."""
    code = ("import sys\nfrom builders.cli import main\ntry:\n    main()\nfinally:\n"
            "    print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, "validate", str(version)], capture_output=True, text=True,
                          check=False)
    return int(done.stderr.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=TOTAL_EXAMPLES)
    parser.add_argument("--report", action="store_true", help="also time writing the Markdown report with plots")
    parser.add_argument("--version", type=Path, help="time this existing version instead of generating one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        version = args.version or _release_shaped_version(root, args.examples)
        without = [name for name in CHECKS if name not in AUDIT_CHECKS]
        before, before_cpu, _ = _measured(lambda: validate_version(version, without))
        print(f"validate without the shortcut audit (load + {len(without)} checks): {before:.1f} s wall, "
              f"{before_cpu:.1f} s CPU")
        after, after_cpu, report = _measured(lambda: validate_version(version))
        print(f"validate (load + every check): {after:.1f} s wall, {after_cpu:.1f} s CPU  "
              f"({after / before:.2f}x wall, {after_cpu / before_cpu:.2f}x CPU; target < 2x; "
              f"load average {os.getloadavg()[0]:.1f})")
        if not args.version:
            reference, _ = median_seconds(lambda: json_load_all(sorted((root / "release").rglob("*.json"))), 3)
            print_ratio("validate (every check)", Timing(after, after_cpu), "json.load of every release file", reference)
        print(f"  {report.loaded.frame.height} examples, {len(report.loaded.distributions)} distributions; "
              f"target < 30 s")
        for result in sorted(report.results, key=lambda r: -r.seconds):
            print(f"  {result.check.name:28s} {result.seconds:6.2f} s  {'FAIL' if result.failed else 'pass'}"
                  f"  {result.count} examples")
        if args.report:
            _timed("write report with plots", lambda: write_report(report, root / "report.md"))
        _timed("diff the version against itself", lambda: diff_versions(version, version))
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (this process)")
        print(f"peak RSS of `genies validate` alone, in its own process: {_validate_process_peak_mb(version):.0f} MB "
              f"(issue target <= 750 MB)")


if __name__ == "__main__":
    main()
