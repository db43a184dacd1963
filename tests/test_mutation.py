"""Program mutation and the code sandbox: mutants are precise text edits that really change behaviour,
and verdicts come from running code with limits, never from reading it."""

from __future__ import annotations

import ast
import random
import socket

import pytest

from builders.mutation import (
    ALL_KINDS,
    apply_mutations,
    buggy_variants,
    find_mutations,
    mutants,
)
from builders.sandbox import Limits, Sandbox, TestSuite

WINDOW_SUM = """import sys

# read the whole input — naïve but fine
def main():
    data = sys.stdin.read().split()
    n, k = int(data[0]), int(data[1])
    a = list(map(int, data[2:2 + n]))
    window = sum(a[:k])
    best = window
    for i in range(k, n):
        window += a[i] - a[i - k]  # slide right
        if window > best:
            best = window
    print(best)


main()
"""
WINDOW_TESTS = TestSuite(
    "stdio",
    ("5 2\n1 2 3 4 5\n", "3 3\n-1 -2 -3\n", "4 1\n4 1 1 9\n", "6 3\n1 -5 2 2 2 -1\n", "1 1\n-7\n",
     "7 2\n5 -1 5 -1 5 -1 6\n"),
    ("9\n", "-6\n", "9\n", "6\n", "-7\n", "5\n"),
)
FAST = Limits(cpu_seconds=1, wall_seconds=2)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(FAST)


def test_every_single_mutation_edits_only_its_span_and_changes_the_ast():
    original = ast.dump(ast.parse(WINDOW_SUM))
    found = find_mutations(WINDOW_SUM, ALL_KINDS)
    assert {m.kind for m in found} >= {"comparison", "arithmetic", "constant", "range_bound", "drop_statement"}
    for mutation in found:
        mutated = apply_mutations(WINDOW_SUM, [mutation])
        assert mutated[: mutation.start] == WINDOW_SUM[: mutation.start]
        assert mutated.endswith(WINDOW_SUM[mutation.end:])
        assert ast.dump(ast.parse(mutated)) != original, mutation.describe(WINDOW_SUM)


def test_operator_edits_land_on_the_operator_after_non_ascii_text_and_inside_parentheses():
    source = "s = 'héllo wörld'; t = (len(s)) < (3)  # ünïcode < here\nu = 'ß' + s\n"
    found = {apply_mutations(source, [m]) for m in find_mutations(source, ["comparison", "arithmetic"])}
    assert "s = 'héllo wörld'; t = (len(s)) <= (3)  # ünïcode < here\nu = 'ß' + s\n" in found
    assert "s = 'héllo wörld'; t = (len(s)) > (3)  # ünïcode < here\nu = 'ß' + s\n" in found
    assert "s = 'héllo wörld'; t = (len(s)) < (3)  # ünïcode < here\nu = 'ß' - s\n" in found


def test_multi_word_operators_and_augmented_assignment():
    source = "if x not in seen and y is not None:\n    total -= 1\n"
    edits = {source[m.start:m.end] + "->" + m.replacement for m in find_mutations(source)}
    assert {"not in->in", "is not->is", "and->or", "-=->+="} <= edits


def test_no_mutant_contains_a_telltale_identity_operand():
    source = "x = a[-1] + 1\ny = b * 2 - c[1]\n"
    mutated = [apply_mutations(source, [m]) for m in find_mutations(source, ["constant"])]
    assert mutated and not any(s in code for code in mutated for s in ("-0", "+ 0", "* 1", "- 0"))


def test_mutants_are_deterministic_given_the_seeded_rng():
    first = mutants(WINDOW_SUM, random.Random(7), 10)
    again = mutants(WINDOW_SUM, random.Random(7), 10)
    other = mutants(WINDOW_SUM, random.Random(8), 10)
    assert [code for code, _ in first] == [code for code, _ in again]
    assert [code for code, _ in first] != [code for code, _ in other]
    assert len({code for code, _ in first}) == 10


def test_buggy_variants_fail_the_tests_behave_differently_and_carry_no_surface_cue(sandbox):
    assert sandbox.run([WINDOW_SUM], WINDOW_TESTS)[0].status == "correct"
    variants = buggy_variants(WINDOW_SUM, WINDOW_TESTS, 3, rng=random.Random(1), sandbox=sandbox)
    assert len(variants) == 3
    rerun = Sandbox(FAST).run([v.code for v in variants], WINDOW_TESTS, stop_after=None)
    assert all(v.status == "incorrect" for v in rerun)
    assert len({v.behaviour for v in rerun}) == 3
    for variant in variants:
        assert variant.code.count("#") == WINDOW_SUM.count("#")
        assert len(variant.code.splitlines()) == len(WINDOW_SUM.splitlines())
        assert variant.length_delta == len(variant.code) - len(WINDOW_SUM)
    assert sum(v.length_delta == 0 for v in variants) >= 2


def test_egregious_variants_fail_at_least_the_requested_share_of_tests(sandbox):
    variants = buggy_variants(WINDOW_SUM, WINDOW_TESTS, 3, rng=random.Random(3), sandbox=sandbox,
                              mutations_per_variant=3, min_failed_fraction=0.5)
    assert variants
    for variant in variants:
        assert len(variant.mutations) == 3
        assert variant.verdict.failed >= len(WINDOW_TESTS) / 2


def test_unparsable_solution_gives_no_variants(sandbox):
    assert buggy_variants("def f(:\n", WINDOW_TESTS, 3, rng=random.Random(0), sandbox=sandbox) == []


@pytest.mark.parametrize(
    ("program", "status"),
    [
        ("a, b = map(int, input().split())\nprint(a + b)\n", "correct"),
        ("import sys\nprint(sum(map(int, sys.stdin.read().split())))\nsys.exit(3)\n", "correct"),
        ("print(sum(map(int, open(0).read().split())))\n", "correct"),
        ("import numpy as np\nprint(int(np.array(input().split(), dtype=int).sum()))\nexit()\n", "correct"),
        ("a, b = map(int, input().split())\nprint(a - b)\n", "incorrect"),
        ("raise RuntimeError('boom')\n", "incorrect"),
        ("x = [0] * (10 ** 10)\n", "incorrect"),
        ("print('x' * 10 ** 8)\n", "incorrect"),
        ("def f(:\n", "incorrect"),
        ("while True:\n    pass\n", "unknown"),
    ],
)
def test_sandbox_verdicts(sandbox, program, status):
    suite = TestSuite("stdio", ("1 2\n", "10 -5\n"), ("3\n", "5"))
    assert sandbox.run([program], suite)[0].status == status


def test_call_based_suites_accept_wrapped_outputs_and_solution_classes(sandbox):
    suite = TestSuite.from_apps('{"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]}')
    programs = [
        "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a + b\n",
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a * b\n",
    ]
    assert [v.status for v in sandbox.run(programs, suite)] == ["correct", "correct", "incorrect"]


def test_programs_run_in_a_private_directory(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = TestSuite("stdio", ("",), ("ok",))
    here = str(tmp_path)
    program = f"import os\nopen('leak.txt', 'w').write('x')\nprint('ok' if os.getcwd() != {here!r} else 'no')\n"
    assert sandbox.run([program], suite)[0].status == "correct"
    assert not (tmp_path / "leak.txt").exists()


def test_programs_cannot_reach_the_network(sandbox):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('reached')\n"
        assert sandbox.run([program], TestSuite("stdio", ("",), ("reached",)))[0].status == "incorrect"


def test_verdicts_are_cached_in_memory_and_on_disk(tmp_path, monkeypatch):
    suite = TestSuite("stdio", ("1 2\n",), ("3\n",))
    program = "print(sum(map(int, input().split())))\n"
    first = Sandbox(FAST, cache_dir=tmp_path).run([program], suite)
    fresh = Sandbox(FAST, cache_dir=tmp_path)
    monkeypatch.setattr(fresh, "_execute", lambda *a: pytest.fail("a cached verdict was recomputed"))
    assert fresh.run([program], suite) == first


def test_apps_input_output_must_hold_matching_tests():
    with pytest.raises(ValueError):
        TestSuite.from_apps("")
    with pytest.raises(ValueError):
        TestSuite.from_apps('{"inputs": ["1"], "outputs": []}')
    suite = TestSuite.from_apps('{"inputs": ["1", "2", "3"], "outputs": ["1", "2", "3"]}', max_tests=2)
    assert suite.mode == "stdio" and len(suite) == 2
