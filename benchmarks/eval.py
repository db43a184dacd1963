"""Benchmark: `genies eval` over the 15 GENIES shifts on a full-size version, with bow (and minilm).

Without an argument it exports a synthetic release-shaped version: the 23 distributions the GENIES
shifts touch, each with the full release's size (about 64,000 examples over 66 distributions, so ~680
train / ~290 test examples of 4 responses, the estimate benchmarks/release_shape.py also uses) and its
text lengths (60-word prompts, 40-120-word responses). With a path it evaluates that version instead
(e.g. the original release imported with `genies import-release`). Target (issue 11): bow < 2 minutes.

    python benchmarks/eval.py [VERSION] [--scorers bow,minilm] [--train 680] [--test 290]

Prints, per scorer, wall and CPU seconds, pairs scored, mean source and target accuracy and mean
energy AUROC. minilm's first run encodes every text (its embedding cache is a fresh temporary file
here); a second run on the same texts reads them from the cache.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from builders.catalog import load_catalog
from builders.evaluation.runner import evaluate_shifts, select_shifts
from builders.evaluation.scorers import build_scorer
from builders.evaluation.synthetic import RELEASE_TEXT, synthetic_version
from builders.export import Version


def full_size_version(root: Path, train: int, test: int) -> Version:
    catalog = load_catalog()
    genies = catalog.select_shifts(benchmark="genies")
    start = time.perf_counter()
    path = synthetic_version(root, catalog.shifts_table(), catalog.distributions_in(genies),
                             train=train, test=test, shape=RELEASE_TEXT)
    print(f"exported a synthetic full-size version in {time.perf_counter() - start:.1f}s: {path}")
    return Version.open(path)


def run(version: Version, scorer_spec: str, cache: Path) -> None:
    shifts = select_shifts(version, "genies")
    wall, cpu = time.perf_counter(), time.process_time()
    scorer = build_scorer(scorer_spec, embedding_cache=cache / "embeddings.sqlite")
    rows = [r.row for r in evaluate_shifts(version, shifts, scorer)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = [r for r in rows if r["status"] == "ok"]
    pairs = sum(r["source_pairs"] + r["target_pairs"] for r in done)
    print(f"{scorer_spec:>7}: {len(done)}/{len(rows)} shifts in {wall:.1f}s wall, {cpu:.1f}s CPU "
          f"({pairs:,} test pairs scored across shifts); "
          f"mean source acc {statistics.mean(r['source_accuracy'] for r in done):.3f}, "
          f"mean target acc {statistics.mean(r['target_accuracy'] for r in done):.3f}, "
          f"mean energy AUROC {statistics.mean(r['energy_auroc'] for r in done):.3f}")
    if (cache / "embeddings.sqlite").exists():
        with sqlite3.connect(cache / "embeddings.sqlite") as db:
            (texts,) = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        print(f"{'':>7}  encoded {texts:,} distinct texts: {texts / wall:.1f} texts/s wall, {texts / cpu:.1f} per CPU-second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", help="an exported version; default: a synthetic full-size one")
    parser.add_argument("--scorers", default="bow,minilm")
    parser.add_argument("--train", type=int, default=680)
    parser.add_argument("--test", type=int, default=290)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        version = Version.open(args.version) if args.version else full_size_version(Path(tmp), args.train, args.test)
        for spec in args.scorers.split(","):
            run(version, spec, Path(tmp))


if __name__ == "__main__":
    main()
