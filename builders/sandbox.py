"""Decide whether code is correct by running it: test suites, verdicts and a sandbox with a verdict cache.

Labels such as "this code is correct" must come from running the code, never from trusting its source.
Programs run in a separate interpreter (`builders/sandbox_harness.py`, `python -I -S`) inside a
bubblewrap sandbox (`bwrap`): fresh user, PID, network, IPC, UTS and mount namespaces, a read-only view of
the interpreter and the system libraries and nothing else of the host, a private tmpfs as working
directory, no environment, and `--die-with-parent`. The harness is PID 1 of its namespace (a program
cannot signal it) and forks one child per test with CPU, memory, file-size, open-file and process
limits; after each test every other process of the namespace is killed. When bwrap is missing or
cannot set the namespaces up, running code is refused with an error: there is no unsandboxed fallback.
docs/code-mutation.md states the threat model.

Verdicts are deterministic by construction: a program is *correct* when it passes every test, *incorrect*
when a test gives a wrong answer or raises, and *unknown* when it only ran out of time (timing depends on
the machine, so a timeout never decides a label). Results are cached per (code, tests, limits) in memory
and, given a cache directory, in SQLite, so a rebuild runs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import shutil
import signal
import site
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builders.errors import GeniesError
from builders.schema import canonical_json

HARNESS = Path(__file__).with_name("sandbox_harness.py")
HARNESS_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
SANDBOX_UID = 65534  # "nobody" inside the user namespace
INSIDE_HARNESS = "/sandbox/harness.py"
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin")  # the C library and loader the interpreter links against
BWRAP_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; install.sh does it) on a Linux "
              "kernel that allows user namespaces; untrusted code is never run without it")
VerdictStatus = Literal["correct", "incorrect", "unknown"]


@dataclass(frozen=True)
class TestSuite:
    """A problem's tests: stdin→stdout pairs (`stdio`) or argument lists→return values (`call`)."""

    __test__ = False  # not a pytest test class, despite the name

    mode: Literal["stdio", "call"]
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    fn_name: str | None = None

    @classmethod
    def from_apps(cls, input_output: str, max_tests: int | None = None) -> TestSuite:
        """Parse APPS's `input_output` JSON; raise ValueError when it holds no usable test."""
        try:
            data = json.loads(input_output) if input_output else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"input_output is not JSON: {exc}") from exc
        inputs, outputs = data.get("inputs") or [], data.get("outputs") or []
        if not inputs or len(inputs) != len(outputs):
            raise ValueError(f"input_output has {len(inputs)} inputs and {len(outputs)} outputs")
        fn_name = data.get("fn_name")
        if fn_name and not all(isinstance(args, list) for args in inputs):
            raise ValueError("call-based inputs must be argument lists")
        stop = max_tests or len(inputs)
        return cls("call" if fn_name else "stdio", tuple(inputs[:stop]), tuple(outputs[:stop]), fn_name)

    @property
    def digest(self) -> str:
        payload = canonical_json([self.mode, self.fn_name, list(self.inputs), list(self.outputs)])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Verdict:
    """What running one program on a suite showed.

    `behaviour` identifies what the program did up to its first failure (test index and output digest):
    two programs with different behaviours are certainly different programs semantically.
    """

    outcomes: tuple[str, ...]
    digests: tuple[str, ...]

    @property
    def status(self) -> VerdictStatus:
        if any(o in ("wrong", "error") for o in self.outcomes):
            return "incorrect"
        if "timeout" in self.outcomes or not self.outcomes:
            return "unknown"
        return "correct"

    @property
    def failed(self) -> int:
        return sum(o in ("wrong", "error") for o in self.outcomes)

    @property
    def behaviour(self) -> str:
        return "|".join(self.digests)


@dataclass(frozen=True)
class Limits:
    """Per-test resource limits. Generous on purpose: a timeout only ever discards an example."""

    cpu_seconds: float = 2.0
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30
    output_bytes: int = 8 << 20
    open_files: int = 64
    processes: int = 64  # enforced by the kernel only when the build does not run as root (docs/code-mutation.md)


class Sandbox:
    """Runs programs on test suites in long-lived harness processes (one per concurrent caller), cached.

    Thread-safe: callers in `workers` threads each get a harness of their own.
    """

    def __init__(self, limits: Limits = Limits(), workers: int | None = None, cache_dir: Path | None = None):
        self.limits = limits
        self.workers = workers or min(2, os.cpu_count() or 1)
        self._memory: dict[str, Verdict] = {}
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Harness] = queue.SimpleQueue()
        self._store = _VerdictStore(Path(cache_dir) / "code_verdicts.sqlite") if cache_dir else None

    def run(self, programs: Sequence[str], suite: TestSuite, *, stop_after: int | None = 1) -> list[Verdict]:
        """Verdict of each program (in order); cached programs are not run again.

        A program stops running after `stop_after` failing tests (None: run every test), which is all a
        verdict of "incorrect" or "fails at least k tests" needs.
        """
        keys = [self._key(p, suite, stop_after) for p in programs]
        pending = {k: p for k, p in zip(keys, programs) if self._cached(k) is None}
        if pending:
            fresh = self._execute(list(pending.values()), suite, stop_after)
            self._remember(dict(zip(pending, fresh)))
        return [self._cached(k) for k in keys]

    def _key(self, program: str, suite: TestSuite, stop_after: int | None) -> str:
        payload = canonical_json([program, suite.digest, stop_after, vars(self.limits)])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _cached(self, key: str) -> Verdict | None:
        with self._lock:
            verdict = self._memory.get(key)
            if verdict is None and self._store is not None:
                verdict = self._store.get(key)
                if verdict is not None:
                    self._memory[key] = verdict
            return verdict

    def _remember(self, verdicts: dict[str, Verdict]) -> None:
        with self._lock:
            self._memory.update(verdicts)
            if self._store is not None:
                self._store.put_many({k: v for k, v in verdicts.items() if v.status != "unknown"})

    def _execute(self, programs: list[str], suite: TestSuite, stop_after: int | None) -> list[Verdict]:
        job = {
            "programs": programs,
            "mode": suite.mode,
            "fn_name": suite.fn_name,
            "inputs": list(suite.inputs),
            "outputs": list(suite.outputs),
            "stop_after": stop_after,
            "sys_path": [p for p in site.getsitepackages() if Path(p).resolve().is_relative_to(_prefix())],
            **vars(self.limits),
        }
        budget = 30 + len(programs) * len(suite) * self.limits.wall_seconds
        try:
            harness = self._idle.get_nowait()
        except queue.Empty:
            harness = _Harness()
        try:
            results = harness.run(job, budget)
        finally:
            self._idle.put(harness)
        if results is None:
            return [Verdict((), ()) for _ in programs]
        return [Verdict(tuple(r["outcomes"]), tuple(r["digests"])) for r in results]


def _prefix() -> Path:
    """The interpreter's installation (its stdlib and site-packages): the one host folder the sandbox sees."""
    return Path(sys.base_prefix).resolve()


def _system_binds() -> list[str]:
    """Read-only binds of the system library folders, as symlinks where the host has symlinks (merged /usr)."""
    args: list[str] = []
    for directory in SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", directory, directory]
    return args


def bwrap_command() -> list[str]:
    """The command that starts the harness inside bubblewrap (see the module docstring), or a clear error."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise GeniesError("the code sandbox needs bubblewrap (`bwrap`), which is not installed", BWRAP_HINT)
    prefix, python = _prefix(), Path(sys.executable).resolve()
    return [
        bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        "--ro-bind", str(prefix), str(prefix), *_system_binds(),
        *(["--ro-bind", str(python), str(python)] if not python.is_relative_to(prefix) else []),
        "--ro-bind", str(HARNESS), INSIDE_HARNESS,
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp",
        "--clearenv", *[part for k, v in HARNESS_ENV.items() for part in ("--setenv", k, v)],
        str(python), "-I", "-S", INSIDE_HARNESS,
    ]


class _Harness:
    """One sandboxed harness serving jobs over pipes; it exits by itself when our end of stdin closes."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def run(self, job: dict[str, Any], budget: float) -> list[dict[str, list[str]]] | None:
        """The harness's results, or None if it did not answer within `budget` seconds (its whole process
        group is then killed, and with bwrap gone the namespace and everything in it dies)."""
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                bwrap_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=HARNESS_ENV, start_new_session=True,
            )
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self._fail()
        ready, _, _ = select.select([self.process.stdout], [], [], budget)
        if not ready:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None
        line = self.process.stdout.readline()
        if not line:
            self._fail()
        return json.loads(line)

    def _fail(self) -> None:
        self.process.wait()
        raise GeniesError(
            f"the code sandbox could not run (exit {self.process.returncode}): {self.process.stderr.read()[-500:]}",
            BWRAP_HINT,
        )


class _VerdictStore:
    """Verdicts on disk, so a rebuild (or another distribution over the same problems) runs nothing."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> Verdict | None:
        row = self._db.execute("SELECT value FROM verdicts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        outcomes, digests = json.loads(row[0])
        return Verdict(tuple(outcomes), tuple(digests))

    def put_many(self, verdicts: dict[str, Verdict]) -> None:
        rows = [(k, json.dumps([v.outcomes, v.digests])) for k, v in verdicts.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?)", rows)
