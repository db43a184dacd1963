"""Benchmark the raw-table cache: cold load (verify, read, normalize, write) vs warm load (memory-map).

Target: a warm load at least 10x faster than a cold one, for every source.

Usage: python benchmarks/sources_cache.py [--mirror ../shared/sources] [--repeat 5] [NAMES...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from builders.sources import list_sources, load_source
from builders.sources.mirror import holding_mirror

REPO = Path(__file__).resolve().parent.parent


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench(name: str, mirror: Path, cache: Path, repeat: int) -> tuple[int, float, float, float]:
    """(rows, cold seconds, warm seconds with the mirror named, warm seconds offline without it)."""
    cold, loaded = timed(lambda: load_source(name, mirror=mirror, cache_dir=cache))
    warm = statistics.median(timed(lambda: load_source(name, mirror=mirror, cache_dir=cache))[0] for _ in range(repeat))
    offline = statistics.median(
        timed(lambda: load_source(name, mirror=[], cache_dir=cache, offline=True))[0] for _ in range(repeat)
    )
    return loaded.table.num_rows, cold, warm, offline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "sources")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import datasets  # noqa: F401  (imported up front so the first cold load does not pay for it)

    specs = [s for s in list_sources() if (not args.names or s.name in args.names) and holding_mirror(s, [args.mirror])]
    print(f"{'source':28} {'rows':>8} {'cold s':>8} {'warm ms':>8} {'offline ms':>10} {'speedup':>8}")
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            rows, cold, warm, offline = bench(spec.name, args.mirror, Path(tmp), args.repeat)
            speedup = cold / max(warm, offline)
            worst = min(worst, speedup)
            print(f"{spec.name:28} {rows:>8,} {cold:>8.2f} {warm * 1e3:>8.1f} {offline * 1e3:>10.1f} {speedup:>7.0f}x")
    print(f"worst warm/cold speedup: {worst:.0f}x (target >= 10x): {'PASS' if worst >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
