"""Benchmark `genies publish` on a full-size, release-shaped version (~64,000 examples, 66 distributions).

Times a dry run (Parquet for every config plus the card), a first publish to the local Hub stand-in
(tests/hub_server.py, classic LFS path), and a republish of the same version (must be a no-op), and
prints repository size, requests sent and peak RSS.

Usage: python benchmarks/publish.py [--examples 64000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import huggingface_hub  # noqa: E402
from release_shape import TOTAL_EXAMPLES, generate  # noqa: E402

from builders.publishing import dry_run, publish_version  # noqa: E402
from builders.release import import_release  # noqa: E402
from tests.hub_server import HubStandIn  # noqa: E402


def _timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"{label}: {time.perf_counter() - start:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=TOTAL_EXAMPLES)
    args = parser.parse_args()
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    huggingface_hub.utils.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        release = generate(root / "release", args.examples)
        report = _timed(f"import {args.examples} examples (setup)", import_release, release, root / "art", "1.0.0")
        version = report.result.path
        _, staged = _timed("dry run (all Parquet + card)", dry_run, version, "bench/genies", root / "dry")
        size_mb = sum(f.parquet_bytes for f in staged.data) / 1e6
        rows = sum(f.rows for f in staged.data if f.config not in ("pairs", "shifts"))
        print(f"  {len(staged.data)} Parquet files, {size_mb:.1f} MB, {rows} examples")
        with HubStandIn() as hub:
            first, _ = _timed("publish to the local stand-in", publish_version, version, "bench/genies",
                              endpoint=hub.endpoint, token=hub.token)
            sent = len(hub.received)
            again, _ = _timed("republish of the same version", publish_version, version, "bench/genies",
                              endpoint=hub.endpoint, token=hub.token)
            print(f"  first: {first.status}, {sent} requests, {len(hub.commits)} commit; "
                  f"again: {again.status}, {len(hub.received) - sent} requests")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
