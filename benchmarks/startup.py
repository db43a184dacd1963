"""Benchmark: how long `import builders.cli` takes, and a no-op rebuild of `genies build arc_easy`.

Each number is the median of several fresh processes (imports are what is measured, so nothing may be
cached in this one). It also prints how many `builders` modules the no-op rebuild imports and whether any
recipe or LLM module is among them (`genies build arc_easy` needs neither).

    python benchmarks/startup.py [--mirror ../shared/sources] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = REPO.parent / "shared" / "sources"

IMPORT_PROBE = "import time; t = time.perf_counter(); import builders.cli; print(time.perf_counter() - t)"
MODULES_PROBE = """
import json, sys
from builders.cli import main
sys.argv = ["genies", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
mods = sorted(m for m in sys.modules if m == "builders" or m.startswith("builders."))
print(json.dumps(mods), file=sys.stderr)
"""


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def import_seconds(runs: int) -> float:
    return statistics.median(float(_python("-c", IMPORT_PROBE).stdout.strip()) for _ in range(runs))


def noop_seconds(build_args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        _python("-m", "builders", *build_args)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genies-startup-") as scratch:
        build_args = ["build", "arc_easy", "--mirror", str(args.mirror), "--cache-dir", f"{scratch}/cache",
                      "--out", f"{scratch}/out", "--version", "bench"]
        _python("-m", "builders", *build_args)
        modules = json.loads(_python("-c", MODULES_PROBE, *build_args).stderr.strip().splitlines()[-1])
        print(f"import builders.cli: {import_seconds(args.runs):.3f} s (median of {args.runs})")
        print(f"no-op `genies build arc_easy`: {noop_seconds(build_args, args.runs):.3f} s (median of {args.runs})")
    heavy = [m for m in modules if m.startswith(("builders.recipes", "builders.llm"))]
    print(f"builders modules imported by the no-op rebuild: {len(modules)}")
    print(f"recipe/LLM modules among them: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
