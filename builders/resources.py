"""Where the project's non-Python files live: `templates/` and `sources/` at the repository root.

A source checkout (editable install) reads them in place; a wheel carries them under
`builders/_resources/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    in_checkout = _PACKAGE.parent / name
    if in_checkout.is_dir():
        return in_checkout
    return _PACKAGE / "_resources" / name


TEMPLATES_DIR = _resource_dir("templates")
SOURCES_DIR = _resource_dir("sources")
SPEC_FILE = "spec.toml"  # a recipe spec: templates/<distribution>/spec.toml (docs/recipes.md)
