"""Benchmark `genies import-release` on a full-size, release-shaped input (target: under 60 s).

Usage: python benchmarks/import_release.py [--examples 64000]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_shape import benchmark_release  # noqa: E402

from builders.release import import_release  # noqa: E402


def main() -> None:
    with benchmark_release(__doc__) as (root, release):
        size_mb = sum(p.stat().st_size for p in release.rglob("*.json")) / 1e6
        print(f"generated a release of {size_mb:.0f} MB of JSON")
        start = time.perf_counter()
        report = import_release(release, root / "out", "bench")
        elapsed = time.perf_counter() - start
        imported = sum(sum(s.values()) for s in report.distributions.values())
        print(f"imported {len(report.distributions)} distributions, {imported} examples in {elapsed:.1f} s "
              f"({imported / elapsed:,.0f} examples/s); target < 60 s")
        start = time.perf_counter()
        again = import_release(release, root / "out", "bench")
        print(f"re-import of the same version: {again.result.status} in {time.perf_counter() - start:.1f} s")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
