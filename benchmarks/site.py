"""Benchmark `genies site` on a full-size, release-shaped version: generation time and the site's size.

The version is made as in benchmarks/validate.py (~64,000 examples in 66 distributions, imported with
`genies import-release`). Validation runs once first and is timed apart, because `genies site` reuses a
report given with `--validation`.

Usage: python benchmarks/site.py [--examples 64000]
       python benchmarks/site.py --version artifacts/genies/1.0.0   (an existing version)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_shape import TOTAL_EXAMPLES, generate

from builders.catalog import load_catalog
from builders.export import Version
from builders.release import import_release
from builders.site import build_site
from builders.validation import validate_version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=TOTAL_EXAMPLES)
    parser.add_argument("--version", type=Path, help="use this existing version instead of generating one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.version is None:
            import_release(generate(root / "release", args.examples), root / "out", "bench")
        version = Version.open(args.version or root / "out" / "genies-release" / "bench")
        start = time.perf_counter()
        report = validate_version(version).to_dict()
        print(f"validate: {time.perf_counter() - start:.1f} s")
        result = build_site(version, root / "site", load_catalog(), validation=report)
        print(f"site: {result.seconds:.1f} s for {result.examples} examples in {len(version.distributions)} "
              f"distributions; {result.pages} pages, {result.files} files, {result.bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
