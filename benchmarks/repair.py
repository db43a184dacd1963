"""Benchmark `genies repair` on a full-size, release-shaped input (target: under 60 s).

Usage: python benchmarks/repair.py [--examples 64000]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_shape import benchmark_release  # noqa: E402

from builders.release import import_release  # noqa: E402
from builders.repair import repair_version  # noqa: E402


def main() -> None:
    with benchmark_release(__doc__) as (root, release):
        imported = import_release(release, root / "out", "1.0.0").result.path
        start = time.perf_counter()
        report = repair_version(str(imported), root / "out", "1.0.1")
        elapsed = time.perf_counter() - start
        rows = sum(sum(c.repaired_sizes.values()) for c in report.changes.values())
        counts = {k: sum(c[k] for c in report.counts().values()) for k in ("removed", "moved", "rewritten", "flagged")}
        print(f"repaired {len(report.changes)} distributions ({rows} examples kept, {counts}, "
              f"{len(report.dropped)} dropped) in {elapsed:.1f} s; target < 60 s")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
