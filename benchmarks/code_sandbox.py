"""How fast the code sandbox, program mutation and the APPS builders are.

Prints: sandbox test runs per second (no cache), the cost of making buggy variants for one problem, the
cold / cached build time of the six APPS distributions on the fixture problems, and problems per second
of the `code` builder on synthetic APPS problems (to extrapolate a full build). Not run by pytest.

    python benchmarks/code_sandbox.py
"""

from __future__ import annotations

import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from builders.categories.code import shared_sandbox
from builders.discovery import resolve
from builders.mutation import buggy_variants
from builders.registry import BuildContext
from builders.sandbox import Sandbox, TestSuite

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "builders_code"
CODE_DISTRIBUTIONS = ("code_is_correct", "sycophancy_feedback", "code", "code_easy", "code_hard", "code_low_quality")
SOLUTION = """n, k = map(int, input().split())
a = list(map(int, input().split()))
window = sum(a[:k])
best = window
for i in range(k, n):
    window += a[i] - a[i - k]
    if window > best:
        best = window
print(best)
"""


def random_tests(count: int, rng: random.Random) -> TestSuite:
    inputs, outputs = [], []
    for _ in range(count):
        n = rng.randint(1, 30)
        k = rng.randint(1, n)
        a = [rng.randint(-50, 50) for _ in range(n)]
        inputs.append(f"{n} {k}\n{' '.join(map(str, a))}\n")
        outputs.append(f"{max(sum(a[i:i + k]) for i in range(n - k + 1))}\n")
    return TestSuite("stdio", tuple(inputs), tuple(outputs))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def sandbox_throughput(suite: TestSuite) -> None:
    """Runs per second and the cost per program: a fresh harness start (bwrap + interpreter), then 20
    programs of `len(suite)` tests each on the warm harness."""
    sandbox = Sandbox()
    start, _ = timed(lambda: sandbox.run(["print(1)"], TestSuite("stdio", ("",), ("1",))))
    programs = [SOLUTION.replace("best = window", f"best = window  # variant {i}") for i in range(20)]
    seconds, verdicts = timed(lambda: sandbox.run(programs, suite, stop_after=None))
    runs = sum(len(v.outcomes) for v in verdicts)
    print(f"sandbox: harness start {start * 1000:.0f} ms; {runs} test runs in {seconds:.2f} s = "
          f"{runs / seconds:.0f} runs/s = {1000 * seconds / len(programs):.0f} ms per program of {len(suite)} "
          f"tests (1 harness, no cache)")


def mutation_cost(suite: TestSuite) -> None:
    sandbox = Sandbox()
    seconds, subtle = timed(lambda: buggy_variants(SOLUTION, suite, 3, rng=random.Random(0), sandbox=sandbox))
    print(f"buggy_variants, 3 subtle of 16 candidates: {seconds:.2f} s ({len(subtle)} found)")
    seconds, broken = timed(lambda: buggy_variants(SOLUTION, suite, 3, rng=random.Random(0), sandbox=sandbox,
                                                   mutations_per_variant=3, min_failed_fraction=0.5, candidates=24))
    print(f"buggy_variants, 3 egregious of 24 candidates: {seconds:.2f} s ({len(broken)} found)")


def build_all(cache_dir: Path) -> int:
    rows = 0
    for name in CODE_DISTRIBUTIONS:
        ctx = BuildContext(name, mirror=FIXTURE, cache_dir=cache_dir)
        rows += len(list(resolve(name).fn(ctx)))
    return rows


def builder_times() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold, rows = timed(lambda: build_all(Path(cache)))
        shared_sandbox.cache_clear()
        warm, _ = timed(lambda: build_all(Path(cache)))
    print(f"APPS builders on the fixture mirror: {rows} records, cold {cold:.2f} s, "
          f"rebuild from the on-disk verdict cache {warm:.2f} s")


def synthetic_apps_mirror(root: Path, problems: int) -> None:
    """An APPS-schema mirror of `problems` interview problems, each with its own random tests (no cache hits)."""
    (root / "apps").mkdir(parents=True)
    rng = random.Random(2)
    lines = []
    for problem_id in range(problems):
        suite = random_tests(10, rng)
        lines.append(json.dumps({
            "problem_id": problem_id, "question": f"Problem {problem_id}: the largest sum of k consecutive numbers.",
            "solutions": json.dumps([SOLUTION]), "difficulty": "interview", "url": "", "starter_code": "",
            "input_output": json.dumps({"inputs": list(suite.inputs), "outputs": list(suite.outputs)}),
        }))
    half = problems // 2
    (root / "apps" / "train.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (root / "apps" / "test.jsonl").write_text("\n".join(lines[half:]) + "\n")


def builder_throughput(problems: int = 60) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_apps_mirror(Path(tmp) / "mirror", problems)
        ctx = BuildContext("code", mirror=Path(tmp) / "mirror", cache_dir=Path(tmp) / "cache",
                           train_size=problems, test_size=0)
        seconds, records = timed(lambda: list(resolve("code").fn(ctx)))
    print(f"`code` builder on {problems} synthetic APPS problems (10 tests each): {len(records)} records in "
          f"{seconds:.1f} s = {problems / seconds:.1f} problems/s")


def main() -> None:
    suite = random_tests(20, random.Random(1))
    sandbox_throughput(suite)
    mutation_cost(suite)
    builder_times()
    builder_throughput()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
