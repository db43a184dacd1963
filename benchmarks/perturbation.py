"""Benchmark the perturbation category: word edits per second, and the default grid built from one base.

Builds the base once at full size (600 train / 250 test), then every member of the default grid for that
base (3 placements x p = 0.1 ... 0.9), and prints per member the build time, the measured edit rate next
to p and its deviation in standard deviations (Binomial(N, p) over the N words edited).

Usage: python benchmarks/perturbation.py [--mirror ../shared/sources] [--base arc_easy]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

from builders.categories.perturbation import perturb_text, word_list
from builders.pipeline import BuildOptions, build_distribution

PLACEMENTS = ("prompt", "response", "both")
GRID = tuple(round(0.1 * k, 1) for k in range(1, 10))
SAMPLE = "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden barn. " * 20


def words_per_second(seconds: float = 1.0) -> float:
    """Raw throughput of `perturb_text` at p = 0.5 on a 400-word text."""
    words, rng, done, started = word_list(), random.Random(0), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        perturb_text(SAMPLE, 0.5, rng, words)
        done += len(SAMPLE.split())
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "sources")
    parser.add_argument("--base", default="arc_easy")
    args = parser.parse_args()
    print(f"perturb_text: {words_per_second():,.0f} words/s (p = 0.5)")
    options = BuildOptions(mirror=args.mirror)
    started = time.perf_counter()
    base = build_distribution(args.base, options)
    print(f"{args.base}: {base.label}, {base.rows('train')} + {base.rows('test')} rows in {time.perf_counter() - started:.1f} s")
    print(f"{'member':45} {'s':>6} {'words':>7} {'rate':>7} {'p':>4} {'dev/sd':>7}")
    total = time.perf_counter()
    for placement in PLACEMENTS:
        for p in GRID:
            name = f"{args.base}__perturb_{placement}_p{p}"
            started = time.perf_counter()
            result = build_distribution(name, options)
            seconds = time.perf_counter() - started
            infos = [r.meta["perturbation"] for split in result.splits.values() for r in split]
            words = sum(i["words"] for i in infos)
            rate = sum(sum(i["edits"].values()) for i in infos) / words
            deviation = (rate - p) / math.sqrt(p * (1 - p) / words)
            print(f"{name:45} {seconds:6.2f} {words:7,} {rate:7.4f} {p:4.1f} {deviation:+7.2f}")
    print(f"{len(PLACEMENTS) * len(GRID)} members in {time.perf_counter() - total:.1f} s (base built once and reused)")


if __name__ == "__main__":
    main()
