"""Benchmark `genies repair` on a full-size, release-shaped version, next to `json.load` of the release files.

The version is the release-shaped input imported with `genies import-release`; the reference is
`json.load` of every release file, measured in the same run, and the ratio is printed.

Usage: python benchmarks/repair.py [--examples 64000] [--runs 3]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import json_load_all, median_seconds, print_machine, print_ratio  # noqa: E402
from release_shape import benchmark_release  # noqa: E402

from builders.release import import_release  # noqa: E402
from builders.repair import repair_version  # noqa: E402


def main() -> None:
    with benchmark_release(__doc__) as (root, release, runs):
        imported = import_release(release, root / "out", "1.0.0").result.path

        def fresh_repair():
            shutil.rmtree(root / "out" / "genies-release" / "1.0.1", ignore_errors=True)
            return repair_version(str(imported), root / "out", "1.0.1")

        reference, _ = median_seconds(lambda: json_load_all(sorted(release.rglob("*.json"))), runs)
        elapsed, report = median_seconds(fresh_repair, runs)
        rows = sum(sum(c.repaired_sizes.values()) for c in report.changes.values())
        counts = {k: sum(c[k] for c in report.counts().values()) for k in ("removed", "moved", "rewritten", "flagged")}
        print(f"repaired {len(report.changes)} distributions ({rows} examples kept, {counts}, "
              f"{len(report.dropped)} dropped; median of {runs})")
        print_ratio("repair", elapsed, "json.load of every release file", reference)
        print_machine()


if __name__ == "__main__":
    main()
