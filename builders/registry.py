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

A builder declares its inputs: the templates it renders, whether it needs the LLM engine (`needs_llm`) or
uses it when one is there (`uses_llm`, e.g. a deterministic part topped up by a recipe). A parametric
family (declared as data in a `families.toml`, e.g. `{base}__perturb_{placement}_p{p}{ops}`) registers
one function for all its members with `@distribution_family("perturbation")`; the executor builds a
member's base once and hands its rows to the member's builder in `ctx.base_rows`. No builder calls the
pipeline.

Which modules get imported, and when, is `builders.discovery`'s business; this module only records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builders.registries import Registry
from builders.schema import Record
from builders.splits import seeded_rng

if TYPE_CHECKING:
    from builders.catalog.families import Member
    from builders.llm import Engine

BuilderFn = Callable[["BuildContext"], Iterable[Record]]
FamilyBuilderFn = Callable[["BuildContext", "Member"], Iterable[Record]]


@dataclass(frozen=True)
class Builder:
    """A registered builder and the inputs it declares; `base` names the distribution a family member
    is derived from (its rows arrive in `ctx.base_rows`)."""

    name: str
    fn: BuilderFn
    needs_llm: bool = False
    templates: tuple[str, ...] = ()
    module: str = ""
    uses_llm: bool = False
    base: str | None = None

    @property
    def may_call_llm(self) -> bool:
        return self.needs_llm or self.uses_llm


@dataclass(frozen=True)
class FamilyBuilder:
    fn: FamilyBuilderFn
    needs_llm: bool
    templates: tuple[str, ...]
    module: str


BUILDERS: Registry[Builder] = Registry("distribution")
FAMILIES: Registry[FamilyBuilder] = Registry("family")
PLUGIN_CATALOG_DIRS: list[Path] = []


def distribution(
    name: str,
    *,
    needs_llm: bool = False,
    uses_llm: bool = False,
    templates: Iterable[str] = (),
) -> Callable[[BuilderFn], BuilderFn]:
    """Register `fn` as the builder of distribution `name`."""

    def register(fn: BuilderFn) -> BuilderFn:
        BUILDERS.add(name, Builder(name, fn, needs_llm, tuple(templates), fn.__module__, uses_llm), fn.__module__)
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
        FAMILIES.add(family, FamilyBuilder(fn, needs_llm, tuple(templates), fn.__module__), fn.__module__)
        return fn

    return register


def member_builder(member: Member, base: Builder) -> Builder | None:
    """Register the builder of a family member whose family is registered; return it."""
    family = FAMILIES.get(member.family.name)
    if family is None:
        return None
    fn = family.fn

    def build_member(ctx: BuildContext) -> Iterable[Record]:
        return fn(ctx, member)

    built = Builder(member.name, build_member, family.needs_llm or base.needs_llm,
                    tuple(dict.fromkeys((*base.templates, *family.templates))), family.module,
                    uses_llm=base.uses_llm, base=base.name)
    return BUILDERS.add(member.name, built, family.module)


def register_catalog_dir(directory: Path) -> None:
    """A plugin calls this so its `categories.toml`/`shifts.toml`/`distributions.toml` join the catalog."""
    directory = Path(directory).resolve()
    if directory not in PLUGIN_CATALOG_DIRS:
        PLUGIN_CATALOG_DIRS.append(directory)


@dataclass
class SourceUse:
    """A source a build read: what the manifest records about it, with the rows its reader dropped."""

    name: str
    revision: str
    license: str
    rows_dropped: int = 0


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
    mirror: str | Path | tuple[str | Path, ...] | None = None
    cache_dir: Path | None = None
    offline: bool = False
    train_size: int = 600
    test_size: int = 250
    llm: Engine | None = None  # set by the pipeline when an LLM is configured; see docs/llm-engine.md
    base_rows: list[Record] = field(default_factory=list)  # a family member's base rows (train, then test)
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
        dropped = int(loaded.rejects.get("total", 0)) if loaded.rejects else 0
        self.sources_used[name] = SourceUse(name, loaded.revision, loaded.spec.license, dropped)
        return loaded.table

    def note(self, text: str) -> None:
        """Say something the build summary and dataset card should show (e.g. a part not built yet)."""
        self.notes.append(text)

    def reject(self, reason: str, raw: Any = None) -> None:
        """Record why a candidate example was dropped, keeping its raw material."""
        self.rejects.append(Reject(self.distribution, reason, raw))
