"""A distribution's generation recipe as data: `templates/<distribution>/spec.toml`, checked on load.

The spec says which steps run, how many responses an item has, which templates write the LLM prompts,
the seed examples, and the quality thresholds. Every problem is reported as a GeniesError that names the
file and the field, with the closest valid key when a name is misspelt, so a spec author never meets a
traceback. docs/recipes.md describes every field.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import builders.recipes.steps_more  # noqa: F401 (its steps join STEPS before a spec names them)
import builders.recipes.syntax_change  # noqa: F401 (likewise)
from builders.errors import GeniesError, check_name
from builders.recipes.steps import STEPS

DEFAULT_STEPS = ("generate", "worse", "check", "quality", "dedupe", "balance_length")
REFUSAL_MODES = ("reject", "preferred", "allow")
LENGTH_MODES = ("balance", "off")


@dataclass(frozen=True)
class Seed:
    """One example item written by us: what the generator imitates, and what the worse answers look like."""

    instruction: str
    answer: str
    input: str = ""
    worse: tuple[str, ...] = ()


@dataclass(frozen=True)
class Upstream:
    """Where the `upstream` step reads items from: a source and the columns holding each part."""

    source: str
    instruction: str = "instruction"
    input: str = ""
    answer: str = "output"
    key: str = "row_key"
    max_answer_chars: int = 2000


@dataclass(frozen=True)
class Quality:
    """Thresholds of the `quality` step; see docs/recipes.md for what each rejection reason means."""

    min_chars: int = 1
    max_chars: int = 4000
    max_length_ratio: float = 3.0
    refusals: str = "reject"
    length_cue: str = "balance"
    max_extreme_share: float = 0.5


@dataclass(frozen=True)
class Spec:
    """Everything the generic recipe needs to build one distribution."""

    name: str
    path: Path
    description: str
    preferred_is: str
    steps: tuple[str, ...] = DEFAULT_STEPS
    responses: int = 4
    prompt: str = "prompts/alpaca.j2"
    prompt_with_input: str = "prompts/alpaca_input.j2"
    register: bool = True
    per_call: int = 5
    overgenerate: float = 1.6
    max_rounds: int = 3
    temperature: float = 1.0
    max_tokens: int = 2000
    dedupe_threshold: float = 0.7
    language: str = ""
    translate: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    quality: Quality = field(default_factory=Quality)
    upstream: Upstream | None = None
    seeds: tuple[Seed, ...] = ()

    @property
    def worse_count(self) -> int:
        return self.responses - 1

    def template(self, part: str) -> str:
        """The distribution's own template for `part` (task, flaws, ...): `<name>/<part>.j2`."""
        return f"{self.name}/{part}.j2"


def _fail(path: Path, where: str, problem: str, hint: str | None = "see docs/recipes.md for the spec format") -> GeniesError:
    return GeniesError(f"{path}: {where}: {problem}", hint)


def _typed(path: Path, where: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """`value` if it has the expected TOML type (an int is accepted where a float is expected)."""
    expected = (int, float) if kind is float else kind
    if isinstance(value, bool) and kind is not bool or not isinstance(value, expected):
        name = getattr(kind, "__name__", str(kind))
        raise _fail(path, where, f"expected {name}, got {type(value).__name__} {value!r}")
    return float(value) if kind is float and isinstance(value, (int, float)) else value


def _known_keys(path: Path, table: dict[str, Any], cls: type, where: str, extra: tuple[str, ...] = ()) -> None:
    known = [f.name for f in fields(cls) if f.name not in ("name", "path")] + list(extra)
    for key in table:
        try:
            check_name(key, known, f"field of {where or 'the spec'}")
        except GeniesError as exc:
            raise _fail(path, where or key, exc.message, exc.hint) from None


def _strings(path: Path, where: str, value: Any) -> tuple[str, ...]:
    items = _typed(path, where, value, list)
    return tuple(_typed(path, f"{where}[{i}]", item, str) for i, item in enumerate(items))


def _section(path: Path, raw: dict[str, Any], name: str, cls: type) -> Any:
    """A sub-table (e.g. [quality]) as its dataclass, each value checked against the field's type."""
    table = _typed(path, f"[{name}]", raw.get(name, {}), dict)
    _known_keys(path, table, cls, f"[{name}]")
    types = _scalar_types(cls)
    values = {key: _typed(path, f"{name}.{key}", value, types[key]) for key, value in table.items()}
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    for key in required:
        if key not in values:
            raise _fail(path, f"{name}.{key}", "missing", f"add {key} = ... under [{name}]")
    return cls(**values)


def _seed(path: Path, index: int, raw: Any) -> Seed:
    where = f"seeds[{index}]"
    table = _typed(path, where, raw, dict)
    _known_keys(path, table, Seed, where)
    for required in ("instruction", "answer"):
        if not str(table.get(required, "")).strip():
            raise _fail(path, f"{where}.{required}", "missing or empty")
    return Seed(
        instruction=_typed(path, f"{where}.instruction", table["instruction"], str),
        answer=_typed(path, f"{where}.answer", table["answer"], str),
        input=_typed(path, f"{where}.input", table.get("input", ""), str),
        worse=_strings(path, f"{where}.worse", table.get("worse", [])),
    )


SCALAR_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _scalar_types(cls: type) -> dict[str, type]:
    """The scalar fields of a spec dataclass and their TOML types (read from the annotations)."""
    return {f.name: SCALAR_TYPES[f.type] for f in fields(cls) if f.type in SCALAR_TYPES}


def load_spec(path: Path) -> Spec:
    """Read and check one spec file; the distribution is named after the file's directory."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "file", "does not exist", "create templates/<distribution>/spec.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, "TOML", str(exc), "fix the syntax") from None
    _known_keys(path, raw, Spec, "")
    values: dict[str, Any] = {key: _typed(path, key, raw[key], kind)
                              for key, kind in _scalar_types(Spec).items() if key in raw and key != "name"}
    for required in ("description", "preferred_is"):
        if not str(values.get(required, "")).strip():
            raise _fail(path, required, "missing or empty", f'add {required} = "..." to the spec')
    spec = Spec(
        name=path.parent.name,
        path=path,
        steps=_strings(path, "steps", raw.get("steps", list(DEFAULT_STEPS))),
        translate=_strings(path, "translate", raw.get("translate", [])),
        meta=_typed(path, "meta", raw.get("meta", {}), dict),
        quality=_section(path, raw, "quality", Quality),
        upstream=_section(path, raw, "upstream", Upstream) if "upstream" in raw else None,
        seeds=tuple(_seed(path, i, s) for i, s in enumerate(_typed(path, "seeds", raw.get("seeds", []), list))),
        **values,
    )
    _check_consistency(spec)
    return spec


def _check_consistency(spec: Spec) -> None:
    """Rules that involve several fields: sizes, modes, which steps need which sections."""
    path = spec.path
    for i, step in enumerate(spec.steps):
        try:
            check_name(step, sorted(STEPS), "recipe step")
        except GeniesError as exc:
            raise _fail(path, f"steps[{i}]", exc.message, exc.hint) from None
    if not 2 <= spec.responses <= 4:
        raise _fail(path, "responses", f"must be 2 to 4 (a record has 2-4 responses), got {spec.responses}")
    for name, value, low in (("per_call", spec.per_call, 1), ("max_rounds", spec.max_rounds, 1),
                             ("max_tokens", spec.max_tokens, 16)):
        if value < low:
            raise _fail(path, name, f"must be at least {low}, got {value}")
    if spec.overgenerate < 1.0:
        raise _fail(path, "overgenerate", f"must be 1.0 or more, got {spec.overgenerate}")
    if not 0.0 < spec.dedupe_threshold <= 1.0:
        raise _fail(path, "dedupe_threshold", f"must be in (0, 1], got {spec.dedupe_threshold}")
    for where, mode, choices in (("quality.refusals", spec.quality.refusals, REFUSAL_MODES),
                                 ("quality.length_cue", spec.quality.length_cue, LENGTH_MODES)):
        if mode not in choices:
            raise _fail(path, where, f"{mode!r} is not one of {', '.join(choices)}")
    if "generate" in spec.steps and len(spec.seeds) < 2:
        raise _fail(path, "seeds", "the generate step needs at least 2 [[seeds]] examples to imitate")
    if "upstream" in spec.steps and spec.upstream is None:
        raise _fail(path, "[upstream]", "the upstream step needs an [upstream] section naming the source")
    if "translate" in spec.steps and not (spec.language and spec.translate):
        raise _fail(path, "translate", "the translate step needs language = \"...\" and translate = [...]")
    bad = sorted(set(spec.translate) - {"instruction", "responses"})
    if bad:
        raise _fail(path, "translate", f"unknown part(s) {', '.join(bad)}: use instruction and/or responses")
    for seed_index, seed in enumerate(spec.seeds):
        if seed.worse and len(seed.worse) != spec.worse_count:
            raise _fail(path, f"seeds[{seed_index}].worse",
                        f"has {len(seed.worse)} answers, the spec asks for {spec.worse_count} (responses - 1)")
