"""The child side of the code sandbox: run untrusted programs against test cases, one fork per test.

This file is executed as a script (`python -I -S harness.py`) by `builders.sandbox` inside bubblewrap, as
PID 1 of a fresh PID namespace, and must import nothing but the standard library. It stays alive and
serves jobs: one JSON line on stdin, one JSON list of results on stdout, so interpreter start-up is paid
once per worker, not once per program. Each test runs in a forked child (its own session) with CPU,
address-space, file-size, open-file and process limits, stdin/stdout redirected to files in a fresh
directory of the sandbox's private tmpfs, so a crash, an infinite loop or a memory bomb only ever costs
that one test. After each test every other process of the namespace is killed, so nothing a program
started (a `setsid()` child included) outlives its verdict or touches the next test. As PID 1 the
harness cannot be killed from inside the namespace (the kernel drops such signals to an init without a
handler), and it is not dumpable, so a program cannot read its memory either. It refuses to run anywhere
but as PID 1: outside the sandbox it would protect nothing.

Job: {"programs": [source, ...], "mode": "stdio" | "call", "fn_name": str | null, "sys_path": [dir, ...],
      "inputs": [...], "outputs": [...], "cpu_seconds": float, "wall_seconds": float,
      "memory_bytes": int, "output_bytes": int, "stop_after": int | null}
Result per program: {"outcomes": ["pass" | "wrong" | "error" | "timeout", ...], "digests": [str, ...]}
(one entry per test run; a run stops after `stop_after` failing tests, and after its first timeout: a
program that hangs once would most likely hang again, at full cost each time).
"""

from __future__ import annotations

import builtins
import ctypes
import hashlib
import io
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
from typing import Any

CALL_PRELUDE = "from typing import *\n"
PR_SET_DUMPABLE = 4
TIMEOUT_SIGNALS = {signal.SIGXCPU, signal.SIGKILL}
FLOAT_TOLERANCE = 1e-6


def main() -> None:
    """Serve jobs, one JSON line in and one JSON line out, until stdin closes (the parent went away)."""
    builtins.exit = builtins.quit = sys.exit  # normally added by `site`, which `-S` skips; solutions use them
    harden()
    with tempfile.TemporaryDirectory(prefix="genies-sandbox-") as workdir:
        for line in sys.stdin:
            job = json.loads(line)
            sys.path.extend(p for p in job.get("sys_path", ()) if p not in sys.path)
            results = [run_program(source, job, workdir) for source in job["programs"]]
            sys.stdout.write(json.dumps(results) + "\n")
            sys.stdout.flush()


def harden() -> None:
    """Refuse to run unless PID 1 of a namespace; leave no signal handler a program could trigger; make
    this process non-dumpable so no program can read or trace its memory."""
    if os.getpid() != 1:
        sys.exit("sandbox_harness: not PID 1 of its own namespace; builders.sandbox starts it inside bwrap")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.exit("sandbox_harness: prctl(PR_SET_DUMPABLE) failed")


def sweep() -> None:
    """Kill every process of the namespace but this one, and reap them (they are all ours as PID 1)."""
    while others := [int(name) for name in os.listdir("/proc") if name.isdigit() and name != "1"]:
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in others:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def run_program(source: str, job: dict[str, Any], workdir: str) -> dict[str, list[str]]:
    """Outcome and behaviour digest of each test, in order; a program that does not compile errors on all."""
    try:
        code = compile(source, "<solution>", "exec")
    except (SyntaxError, ValueError):
        return {"outcomes": ["error"], "digests": [digest("error", "syntax")]}
    outcomes, digests, failures = [], [], 0
    for test_input, expected in zip(job["inputs"], job["outputs"]):
        outcome, actual = run_test(code, test_input, expected, job, workdir)
        outcomes.append(outcome)
        digests.append(digest(outcome, actual))
        failures += outcome != "pass"
        if outcome == "timeout" or failures == job["stop_after"]:
            break
    return {"outcomes": outcomes, "digests": digests}


def digest(outcome: str, actual: str) -> str:
    """What a test run produced, short: two programs with equal digests behaved the same on that test."""
    return hashlib.sha256(f"{outcome}\x1f{actual}".encode("utf-8", "replace")).hexdigest()[:16]


def run_test(code, test_input: Any, expected: Any, job: dict[str, Any], workdir: str) -> tuple[str, str]:
    """Run one test in a fresh directory, so nothing a program writes is seen by the next one."""
    testdir = tempfile.mkdtemp(dir=workdir)
    try:
        return run_test_in(code, test_input, expected, job, testdir)
    finally:
        shutil.rmtree(testdir, ignore_errors=True)


def run_test_in(code, test_input: Any, expected: Any, job: dict[str, Any], workdir: str) -> tuple[str, str]:
    stdin_path = os.path.join(workdir, "stdin")
    stdout_path = os.path.join(workdir, "stdout")
    result_path = os.path.join(workdir, "result.json")
    with open(stdin_path, "w", encoding="utf-8") as f:
        f.write(as_text(test_input) if job["mode"] == "stdio" else "")
    pid = os.fork()
    if pid == 0:
        try:
            run_child(code, test_input, job, workdir, stdin_path, stdout_path, result_path)
        finally:
            os._exit(70)
    status = wait_with_deadline(pid, job["wall_seconds"])
    sweep()
    if status is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) in TIMEOUT_SIGNALS):
        return "timeout", ""
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return "error", f"exit {status}"
    if job["mode"] == "stdio":
        actual = read_text(stdout_path)
        return ("pass" if texts_match(actual, as_text(expected)) else "wrong"), normalize_text(actual)
    actual_json = read_text(result_path)
    value = json.loads(actual_json)
    return ("pass" if values_match(value, expected) else "wrong"), actual_json


def wait_with_deadline(pid: int, wall_seconds: float) -> int | None:
    """Exit status of `pid`, or None when it ran past the wall-clock deadline and was killed."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], wall_seconds)
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    _, status = os.waitpid(pid, 0)
    return status


def run_child(code, test_input, job, workdir, stdin_path, stdout_path, result_path) -> None:
    """Inside the fork: limit resources, redirect the standard streams, run the program, exit."""
    cpu = max(1, math.ceil(job["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (job["memory_bytes"], job["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["output_bytes"], job["output_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (job["open_files"], job["open_files"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (job["processes"], job["processes"]))
    os.setsid()
    os.closerange(3, 1 << 16)
    os.chdir(workdir)
    redirect_fd(os.open(stdin_path, os.O_RDONLY), 0)
    redirect_fd(os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    redirect_fd(os.open(os.devnull, os.O_WRONLY), 2)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8")
    sys.setrecursionlimit(10_000)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        if job["mode"] == "stdio":
            exec(code, namespace)
        else:
            exec(CALL_PRELUDE, namespace)
            exec(code, namespace)
            value = find_function(namespace, job["fn_name"])(*test_input)
            with open(result_path, "w", encoding="utf-8") as f:
                json.dump(value, f, default=repr)
    except SystemExit:
        pass
    except BaseException:
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def redirect_fd(fd: int, target: int) -> None:
    os.dup2(fd, target)
    os.close(fd)


def find_function(namespace: dict[str, Any], fn_name: str):
    """LeetCode-style problems define `class Solution` with the method; Codewars-style a bare function."""
    solution_class = namespace.get("Solution")
    if isinstance(solution_class, type) and hasattr(solution_class, fn_name):
        return getattr(solution_class(), fn_name)
    return namespace[fn_name]


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def as_text(value: Any) -> str:
    """APPS stores stdin/stdout as a string, occasionally as a list of lines."""
    if isinstance(value, list):
        return "\n".join(map(str, value))
    return str(value)


def normalize_text(text: str) -> str:
    return " ".join(text.split())


def texts_match(actual: str, expected: str) -> bool:
    """Whitespace-insensitive token comparison; numeric tokens may differ by a relative 1e-6."""
    actual_tokens, expected_tokens = actual.split(), expected.split()
    if len(actual_tokens) != len(expected_tokens):
        return False
    return all(a == e or numbers_close(a, e) for a, e in zip(actual_tokens, expected_tokens))


def numbers_close(a: str, e: str) -> bool:
    try:
        x, y = float(a), float(e)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)


def values_match(actual: Any, expected: Any) -> bool:
    """Call-based APPS tests often wrap the expected return value in a one-element list."""
    if values_equal(actual, expected):
        return True
    return isinstance(expected, list) and len(expected) == 1 and values_equal(actual, expected[0])


def values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return a == b


if __name__ == "__main__":
    main()
