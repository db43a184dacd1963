"""Benchmark the `minilm` scorer next to a bare `SentenceTransformer.encode` of the same texts.

The texts are real ones: the GENIES release sample (../shared/genies-release-sample) imported as a
version; without it, a synthetic version with the release's text lengths. Distributions are taken in
name order until at least `--texts` distinct prompt and response texts are covered. For each
distribution the scorer does what `genies eval` does: train the probe on the train pairs, then score
the test pairs with the trained and the zero-shot reward, starting from an empty embedding cache. The
reference encodes the same distinct texts once with a bare `SentenceTransformer(...).encode`. Both are
timed `--runs` times, alternating; the medians and their ratio are printed (target: at most 1.3x).

    python benchmarks/minilm.py [--texts 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import Timing, median_seconds, print_machine, print_ratio  # noqa: E402
from release_shape import SAMPLE  # noqa: E402

from builders.catalog import load_catalog  # noqa: E402
from builders.evaluation.scorers import (  # noqa: E402
    Pairs,
    build_scorer,
    minilm_model_dir,
    pair_rewards,
)
from builders.evaluation.synthetic import RELEASE_TEXT, synthetic_version  # noqa: E402
from builders.export import Version  # noqa: E402
from builders.release import import_release  # noqa: E402

TARGET_RATIO = 1.3


def _version(root: Path) -> Version:
    """The release sample imported, or a synthetic version of release-length texts when it is absent."""
    if (SAMPLE / "distributions").is_dir():
        return Version.open(import_release(SAMPLE, root / "out", "sample").result.path)
    catalog = load_catalog()
    names = sorted(catalog.distributions)[:12]
    path = synthetic_version(root, catalog.shifts_table(), names, train=70, test=30, shape=RELEASE_TEXT)
    return Version.open(path)


def _workload(version: Version, texts: int) -> tuple[list[tuple[Pairs, Pairs]], list[str]]:
    """(train, test) pairs of distributions in name order until `texts` distinct texts, and those texts."""
    work, distinct = [], set()
    for name in sorted(version.manifest["distributions"]):
        train, test = (Pairs.from_records(version.table(name, split)) for split in ("train", "test"))
        work.append((train, test))
        for pairs in (train, test):
            distinct.update(pairs.prompt, pairs.chosen, pairs.rejected)
        if len(distinct) >= texts:
            break
    return work, sorted(distinct)


def _score(work: list[tuple[Pairs, Pairs]], cache: Path) -> None:
    """What `genies eval` does with each distribution, with a fresh embedding cache."""
    cache.unlink(missing_ok=True)
    scorer = build_scorer("minilm", embedding_cache=cache)
    for train, test in work:
        trained = scorer.train(train)
        pair_rewards(trained.reward, test)
        pair_rewards(trained.zero_shot, test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000, help="at least this many distinct texts")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:
        work, texts = _workload(_version(Path(tmp)), args.texts)
        bare = SentenceTransformer(str(minilm_model_dir()), local_files_only=True)
        build_scorer("minilm", embedding_cache=Path(tmp) / "warm.sqlite")  # load the weights once, untimed
        bare_runs, scorer_runs = [], []
        for _ in range(args.runs):
            bare_runs.append(median_seconds(lambda: bare.encode(texts), 1)[0])
            scorer_runs.append(median_seconds(lambda: _score(work, Path(tmp) / "embeddings.sqlite"), 1)[0])
        reference, scorer = (_median(runs) for runs in (bare_runs, scorer_runs))
        print(f"{len(texts)} distinct texts from {len(work)} distributions; medians of {args.runs}")
        print(f"minilm scorer: {len(texts) / scorer.wall:.1f} texts/s wall, {len(texts) / scorer.cpu:.1f} per CPU-second; "
              f"bare encode: {len(texts) / reference.wall:.1f} texts/s wall, {len(texts) / reference.cpu:.1f} per CPU-second")
        print_ratio("minilm scorer (train + score, fresh cache)", scorer, "bare SentenceTransformer.encode", reference,
                    TARGET_RATIO)
        print_machine()


def _median(runs: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in runs), statistics.median(t.cpu for t in runs))


if __name__ == "__main__":
    main()
