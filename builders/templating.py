"""Jinja2 templates as files: sandboxed, strict about undefined variables, identified by content hash.

Templates never draw randomness themselves: any random choice is made by the caller's seeded RNG and
passed in as a variable, so a template renders the same text on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from builders.errors import GeniesError
from builders.resources import TEMPLATES_DIR

_extra_dirs: list[Path] = []


def add_template_dir(directory: Path) -> None:
    """Let a plugin category ship its own templates; earlier directories win on name clashes."""
    directory = Path(directory)
    if directory not in _extra_dirs:
        _extra_dirs.append(directory)
        environment.cache_clear()


@lru_cache(maxsize=2)
def environment(autoescape: bool = False) -> SandboxedEnvironment:
    """Text templates (prompts, cards) are rendered verbatim; HTML pages escape every variable, because
    the text they show is data: a prompt holding `<script>` must stay text."""
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(TEMPLATES_DIR), *map(str, _extra_dirs)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )


def template_dirs() -> list[Path]:
    """Where templates are looked up: the package's `templates/`, then the directories plugins added."""
    return [TEMPLATES_DIR, *_extra_dirs]


def template_source(name: str) -> str:
    try:
        env = environment()
        assert env.loader is not None
        source, _, _ = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound as exc:
        raise GeniesError(f"template {name!r} not found", f"templates live under {TEMPLATES_DIR}") from exc
    return source


def template_id(name: str) -> str:
    """`name@hash`: what a record's `template` column holds, so a changed template changes the build."""
    digest = hashlib.sha256(template_source(name).encode("utf-8")).hexdigest()[:12]
    return f"{name}@{digest}"


def template_variables(name: str) -> set[str]:
    """Variables a template reads from its context (checked against record fields before a build)."""
    env = environment()
    try:
        return meta.find_undeclared_variables(env.parse(template_source(name)))
    except jinja2.TemplateSyntaxError as exc:
        raise GeniesError(f"template {name!r} line {exc.lineno}: {exc.message}", "fix the template") from exc


def check_template(name: str, available: Iterable[str]) -> None:
    """Fail before any work starts if a template reads a variable the records do not provide."""
    missing = template_variables(name) - set(available)
    if missing:
        raise GeniesError(
            f"template {name!r} uses undefined variable(s): {', '.join(sorted(missing))}",
            f"available fields: {', '.join(sorted(available))}",
        )


def render(name: str, **variables: Any) -> str:
    return _render(environment(), name, variables)


def render_html(name: str, **variables: Any) -> str:
    """Render an HTML page: the same strict rules as `render`, with every variable autoescaped."""
    return _render(environment(autoescape=True), name, variables)


def _render(env: SandboxedEnvironment, name: str, variables: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(**variables)
    except jinja2.UndefinedError as exc:
        raise GeniesError(f"template {name!r}: {exc.message}", "pass every variable the template uses") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise GeniesError(f"template {name!r} line {exc.lineno}: {exc.message}", "fix the template") from exc
