"""`genies` starts fast: importing the CLI and building every command's options loads no heavy backend.

Each command imports its backend (datasets, scipy, matplotlib, torch, scikit-learn) when it runs, so
`genies list` or `genies --help` does not pay seconds of imports for commands it does not use.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from builders.errors import GeniesError
from tests.conftest import REPO

HEAVY = ("datasets", "scipy", "matplotlib", "torch", "sklearn")

PROBE = """
import json, sys
import typer.main
import builders.cli
command = typer.main.get_command(builders.cli.app)  # resolves every command's annotations into options
print(json.dumps({"commands": sorted(command.commands), "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_importing_the_cli_and_its_options_loads_no_heavy_backend():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"build", "eval", "list", "metrics", "publish", "validate"} <= set(probe["commands"])
    assert [name for name in HEAVY if name in probe["loaded"]] == []


def test_an_unknown_check_name_lists_the_valid_checks():
    """`genies validate --help` no longer lists the checks (that would import them), so the error does."""
    from builders.validation import CHECKS, select_checks

    with pytest.raises(GeniesError) as raised:
        select_checks(["zzz"])
    assert raised.value.hint == "valid: " + ", ".join(sorted(CHECKS))
    with pytest.raises(GeniesError, match="did you mean near_duplicates"):
        select_checks(["near_duplicate"])
