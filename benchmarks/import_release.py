"""Benchmark `genies import-release` on a full-size, release-shaped input, next to `json.load` of its files.

Prints the median import time of `--runs` imports (each into a fresh output folder), the median time of
`json.load` of every release file in the same run, and their ratio (target: at most 5x).

Usage: python benchmarks/import_release.py [--examples 64000] [--runs 3]
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import json_load_all, median_seconds, print_machine, print_ratio  # noqa: E402
from release_shape import benchmark_release  # noqa: E402

from builders.release import import_release  # noqa: E402

TARGET_RATIO = 5


def main() -> None:
    with benchmark_release(__doc__) as (root, release, runs):
        files = sorted(release.rglob("*.json"))
        print(f"generated a release of {sum(p.stat().st_size for p in files) / 1e6:.0f} MB of JSON in {len(files)} files")

        def fresh_import():
            shutil.rmtree(root / "out", ignore_errors=True)
            return import_release(release, root / "out", "bench")

        reference, _ = median_seconds(lambda: json_load_all(files), runs)
        elapsed, report = median_seconds(fresh_import, runs)
        imported = sum(sum(s.values()) for s in report.distributions.values())
        print(f"imported {len(report.distributions)} distributions, {imported} examples "
              f"({imported / elapsed.wall:,.0f} examples/s wall; median of {runs})")
        print_ratio("import-release", elapsed, "json.load of every file", reference, TARGET_RATIO)
        start = time.perf_counter()
        again = import_release(release, root / "out", "bench")
        print(f"re-import of the same version: {again.result.status} in {time.perf_counter() - start:.1f} s")
        print_machine()


if __name__ == "__main__":
    main()
