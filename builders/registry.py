"""The builder registry: which Python function builds which distribution, and what it needs.

A category module under `builders/categories/` registers one builder per distribution:

    @distribution("arc_easy", templates=["prompts/alpaca.j2"])
    def build_arc_easy(ctx: BuildContext) -> Iterable[Record]:
        table = ctx.source("arc_easy")
        ...

A builder yields *all* the examples it can make, unsplit and in any order. The pipeline validates them,
removes duplicates, splits them by `group` and balances response order; builders never do that
themselves. `group` must be `<upstream>:<upstream key>` so that two distributions built from the same
upstream agree on which side of the split an item falls.

A parametric family (declared as data in a `families.toml`, e.g. `{base}__perturb_{placement}_p{p}{ops}`)
registers one function for all its members with `@distribution_family("perturbation")`; a member's
builder is created when the member is first looked up (`resolve(name)`), for the default members as soon
as discovery ends.

Plugins (new categories living outside this package) are Python modules named in the
`GENIES_PLUGINS` environment variable (comma-separated module names or `.py` paths) or exposed through the
`genies.categories` entry-point group; importing them registers their builders.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builders.errors import GeniesError
from builders.schema import Record
from builders.splits import seeded_rng

if TYPE_CHECKING:
    from builders.catalog.families import Member
    from builders.llm import Engine

BuilderFn = Callable[["BuildContext"], Iterable[Record]]
FamilyBuilderFn = Callable[["BuildContext", "Member"], Iterable[Record]]


@dataclass(frozen=True)
class Builder:
    name: str
    fn: BuilderFn
    needs_llm: bool = False
    templates: tuple[str, ...] = ()
    module: str = ""
    catalog_dirs: tuple[Path, ...] = ()


_BUILDERS: dict[str, Builder] = {}
_PLUGIN_CATALOG_DIRS: list[Path] = []


@dataclass(frozen=True)
class FamilyBuilder:
    fn: FamilyBuilderFn
    needs_llm: bool
    templates: tuple[str, ...]


_FAMILIES: dict[str, FamilyBuilder] = {}


def distribution(
    name: str,
    *,
    needs_llm: bool = False,
    templates: Iterable[str] = (),
) -> Callable[[BuilderFn], BuilderFn]:
    """Register `fn` as the builder of distribution `name`."""

    def register(fn: BuilderFn) -> BuilderFn:
        existing = _BUILDERS.get(name)
        if existing is not None and existing.module != fn.__module__:
            raise GeniesError(
                f"distribution {name!r} is registered twice ({existing.module} and {fn.__module__})",
                "give one of them another name",
            )
        _BUILDERS[name] = Builder(name, fn, needs_llm, tuple(templates), fn.__module__)
        return fn

    return register


def distribution_family(
    family: str,
    *,
    needs_llm: bool = False,
    templates: Iterable[str] = (),
) -> Callable[[FamilyBuilderFn], FamilyBuilderFn]:
    """Register `fn(ctx, member)` as the builder of every member of `family` (declared in a families.toml).

    A member's builder needs the LLM when the family or the member's base does, and declares the base's
    templates plus the family's, so the build fingerprint covers both.
    """

    def register(fn: FamilyBuilderFn) -> FamilyBuilderFn:
        _FAMILIES[family] = FamilyBuilder(fn, needs_llm, tuple(templates))
        return fn

    return register


def _materialize(member: Member) -> Builder | None:
    """Register the builder of a family member whose family and base can be built; return it."""
    family = _FAMILIES.get(member.family.name)
    base = resolve(member.base)
    if family is None or base is None:
        return None
    fn = family.fn

    def build_member(ctx: BuildContext) -> Iterable[Record]:
        return fn(ctx, member)

    _BUILDERS[member.name] = Builder(
        member.name, build_member, family.needs_llm or base.needs_llm,
        tuple(dict.fromkeys((*base.templates, *family.templates))), fn.__module__,
    )
    return _BUILDERS[member.name]


def resolve(name: str) -> Builder | None:
    """The builder of `name`; a family member's builder is created on first use."""
    registry = discover()
    if name in registry:
        return registry[name]
    from builders.catalog import load_catalog

    member = load_catalog(_PLUGIN_CATALOG_DIRS).member(name)
    return _materialize(member) if member is not None else None


def _materialize_defaults() -> None:
    from builders.catalog import load_catalog

    for family in load_catalog(_PLUGIN_CATALOG_DIRS).families.values():
        if family.name in _FAMILIES:
            for member in family.defaults():
                _materialize(member)


def register_catalog_dir(directory: Path) -> None:
    """A plugin calls this so its `categories.toml`/`shifts.toml`/`distributions.toml` join the catalog."""
    directory = Path(directory).resolve()
    if directory not in _PLUGIN_CATALOG_DIRS:
        _PLUGIN_CATALOG_DIRS.append(directory)


def plugin_catalog_dirs() -> list[Path]:
    discover()
    return list(_PLUGIN_CATALOG_DIRS)


def _import_plugin(spec: str) -> None:
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.exists():
            raise GeniesError(f"plugin file {path} does not exist", "fix GENIES_PLUGINS")
        module_name = f"genies_plugin_{path.stem}"
        if module_name in sys.modules:
            return
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise GeniesError(f"plugin module {spec!r} cannot be imported: {exc}", "fix GENIES_PLUGINS") from exc


_discovered = False


def discover() -> dict[str, Builder]:
    """Import every category module and plugin once; return the registry."""
    global _discovered
    if not _discovered:
        _discovered = True
        import builders.categories as categories

        for info in pkgutil.iter_modules(categories.__path__):
            importlib.import_module(f"{categories.__name__}.{info.name}")
        for ep in entry_points(group="genies.categories"):
            ep.load()
        for spec in filter(None, (s.strip() for s in os.environ.get("GENIES_PLUGINS", "").split(","))):
            _import_plugin(spec)
        _materialize_defaults()
    return _BUILDERS


def reset_discovery() -> None:
    """Forget discovered plugins (tests that change GENIES_PLUGINS call this)."""
    global _discovered
    _discovered = False


def builder(name: str) -> Builder | None:
    return discover().get(name)


@dataclass
class SourceUse:
    name: str
    revision: str
    license: str


@dataclass
class Reject:
    distribution: str
    reason: str
    raw: Any = None


@dataclass
class BuildContext:
    """Everything a builder may use. Randomness only through `rng`, data only through `source`."""

    distribution: str
    seed: int = 0
    mirror: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    train_size: int = 600
    test_size: int = 250
    llm: Engine | None = None  # set by the pipeline when an LLM is configured; see docs/llm-engine.md
    sources_used: dict[str, SourceUse] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def wanted(self) -> int:
        """How many examples a procedural builder should aim for (both splits, with room for dedup)."""
        return self.train_size + self.test_size

    def rng(self, *key: object):
        return seeded_rng("build", self.seed, self.distribution, *key)

    def source(self, name: str):
        """The raw table of upstream `name` (a pyarrow Table), loaded through the source builders."""
        from builders.sources import load_source

        loaded = load_source(name, mirror=self.mirror, cache_dir=self.cache_dir, offline=self.offline)
        self.sources_used[name] = SourceUse(name, loaded.revision, loaded.spec.license)
        return loaded.table

    def note(self, text: str) -> None:
        """Say something the build summary and dataset card should show (e.g. a part not built yet)."""
        self.notes.append(text)

    def reject(self, reason: str, raw: Any = None) -> None:
        """Record why a candidate example was dropped, keeping its raw material."""
        self.rejects.append(Reject(self.distribution, reason, raw))
