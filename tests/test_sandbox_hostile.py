"""Hostile programs run through `Sandbox.run` are contained (docs/code-mutation.md, "Threat model").

Each probe is a program whose output says what it managed to do; the suite expects the output of a
contained program, so a `correct` verdict means the attack failed, and the test also checks the host side
(files, sockets, processes, the harness itself).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from builders.errors import GeniesError
from builders.sandbox import HARNESS, Limits, Sandbox, TestSuite

SECRET = "sk-genies-hostile-probe-0123456789"
MARKER = "genies-hostile-marker"
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux namespaces")


def expect(output: str) -> TestSuite:
    return TestSuite("stdio", ("\n",), (f"{output}\n",))


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A sandbox whose harness starts while the build process holds a secret in its environment."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return Sandbox(Limits(wall_seconds=5.0), workers=1)


def _harness_pid(sandbox: Sandbox) -> int:
    harness = sandbox._idle.get_nowait()
    sandbox._idle.put(harness)
    assert harness.process is not None and harness.process.poll() is None, "the harness died"
    return harness.process.pid


def test_a_program_cannot_delete_or_change_anything_outside_its_work_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    program = f"""
import os, shutil
done = []
for attempt in (lambda: shutil.rmtree({str(victim)!r}), lambda: open({str(victim / 'keep.txt')!r}, 'w').write('x'),
                lambda: os.remove({str(HARNESS)!r}), lambda: open('/usr/genies-probe', 'w'),
                lambda: shutil.rmtree({str(Path(sys.base_prefix).resolve() / 'lib')!r})):
    try:
        attempt()
        done.append('changed')
    except Exception:
        pass
print('contained' if not done else ' '.join(done))
"""
    [verdict] = sandbox.run([program], expect("contained"))
    assert verdict.status == "correct"
    assert (victim / "keep.txt").read_text() == "precious" and HARNESS.is_file()
    assert not Path("/usr/genies-probe").exists()


def test_no_secret_is_readable_and_nothing_reaches_a_socket(sandbox: Sandbox, tmp_path: Path) -> None:
    received: list[bytes] = []
    path_socket = tmp_path / "leak.sock"
    servers = [socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX), socket.socket()]
    servers[0].bind(str(path_socket))
    servers[1].bind("\0genies-hostile-leak")
    servers[2].bind(("127.0.0.1", 0))
    port = servers[2].getsockname()[1]

    def serve(server: socket.socket) -> None:
        server.listen()
        server.settimeout(20)
        try:
            connection, _ = server.accept()
            received.append(connection.recv(4096))
        except OSError:
            pass

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    program = f"""
import os, socket
found = []
for pid in [p for p in os.listdir('/proc') if p.isdigit()] + [str(os.getppid()), 'self', '1']:
    try:
        found.append(open(f'/proc/{{pid}}/environ', 'rb').read().decode('latin-1'))
    except Exception:
        pass
leak = {SECRET!r} in ' '.join(found) or {SECRET!r} in str(os.environ)
sent = []
for family, address in ((socket.AF_UNIX, {str(path_socket)!r}), (socket.AF_UNIX, '\\0genies-hostile-leak'),
                        (socket.AF_INET, ('127.0.0.1', {port}))):
    try:
        with socket.socket(family) as s:
            s.settimeout(2)
            s.connect(address)
            s.sendall(b'leak ' + ' '.join(found).encode())
            sent.append(str(address))
    except Exception:
        pass
print('leaked' if leak else 'no secret', 'sent' if sent else 'no socket')
"""
    [verdict] = sandbox.run([program], expect("no secret no socket"))
    for server in servers:
        server.close()
    assert verdict.status == "correct"
    assert received == []


def test_no_process_a_program_starts_outlives_its_verdict(sandbox: Sandbox) -> None:
    python = str(Path(sys.executable).resolve())
    program = f"""
import os, subprocess
for _ in range(3):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv({python!r}, [{python!r}, '-c', 'import time; time.sleep(120)', {MARKER!r}])
        os._exit(0)
print('started')
"""
    count = "import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    first, second = sandbox.run([program, count], expect("started"), stop_after=None)
    assert first.status == "correct"
    assert sandbox.run([count], expect("2"))[0].status == "correct", "only the harness and the counter run"
    host = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True)
    assert host.stdout == "", f"processes survived the verdict: {host.stdout}"


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM", "SIGINT", "SIGSTOP"])
def test_the_harness_survives_a_program_that_signals_its_parent(sandbox: Sandbox, signal_name: str) -> None:
    [warm] = sandbox.run(["print('warm')"], expect("warm"))
    pid = _harness_pid(sandbox)
    program = f"import os, signal\nos.kill(os.getppid(), signal.{signal_name})\nos.kill(1, signal.{signal_name})\nprint('alive')"
    [verdict] = sandbox.run([program], expect("alive"))
    assert warm.status == verdict.status == "correct"
    assert _harness_pid(sandbox) == pid
    assert sandbox.run(["print(6 * 7)"], expect("42"))[0].status == "correct"


def test_a_fork_bomb_costs_one_test_and_leaves_nothing(sandbox: Sandbox) -> None:
    program = """
import os, time
children = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError:
    pass
print('forked', 'all' if children == 300 else 'limited')
"""
    [verdict] = sandbox.run([program], expect("forked limited"))
    limited = verdict.status == "correct"
    count = "import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    assert sandbox.run([count], expect("2"))[0].status == "correct"
    if os.geteuid() != 0:
        assert limited, "RLIMIT_NPROC applies to a build that does not run as root"


def test_without_bubblewrap_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GeniesError, match="bubblewrap"):
        Sandbox().run(["print(1)"], expect("1"))


def test_the_harness_refuses_to_run_outside_the_sandbox() -> None:
    result = subprocess.run([sys.executable, "-I", "-S", str(HARNESS)], input="", capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "not PID 1" in result.stderr
