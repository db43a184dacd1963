"""Lint, import order and types are part of the test suite, so the README's one test command checks them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("tool", [("ruff", "check", "."), ("mypy",)], ids=["ruff", "mypy"])
def test_the_code_passes(tool: tuple[str, ...]) -> None:
    """Both read their settings from pyproject.toml."""
    result = subprocess.run([sys.executable, "-m", *tool], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
