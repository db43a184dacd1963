"""The catalog of categories, shifts and distributions, loaded from TOML data files.

The catalog is data: the files beside this module hold the 8 GENIES categories, the 56 shifts and the
distribution registry, plus `families.toml`: parametric families (perturbation, lingual) whose default
members join the distributions and shifts, and whose other members join on demand (`Catalog.include`).
Plugins (new categories) contribute more entries through `extra_dirs`, each holding any of
`categories.toml`, `shifts.toml`, `distributions.toml`, `families.toml`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.catalog.families import Family, Member, family_from_toml
from builders.errors import GeniesError, check_name

CATALOG_DIR = Path(__file__).parent
BUILD_KINDS = ("DET", "PROC", "LLM", "DET+LLM", "PROC+LLM")

SHIFTS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("target", pa.string()),
        pa.field("category", pa.string()),
        pa.field("label", pa.string()),
        pa.field("target_reference", pa.string()),
        pa.field("benchmarks", pa.list_(pa.string())),
    ]
)


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    description: str = ""


@dataclass(frozen=True)
class Shift:
    source: str
    target: str
    category: str
    label: str
    target_reference: str | None = None
    benchmarks: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def reference(self) -> str:
        """The distribution whose target-tuned accuracy is the ceiling for this shift."""
        return self.target_reference or self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "category": self.category,
            "label": self.label,
            "target_reference": self.target_reference,
            "benchmarks": list(self.benchmarks),
        }


@dataclass(frozen=True)
class DistributionInfo:
    name: str
    description: str
    build: str
    sources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    intended_cues: tuple[str, ...] = ()

    @property
    def needs_llm(self) -> bool:
        return "LLM" in self.build

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "build": self.build,
            "sources": list(self.sources),
            "categories": list(self.categories),
            "intended_cues": list(self.intended_cues),
        }


@dataclass
class Catalog:
    categories: dict[str, Category] = field(default_factory=dict)
    shifts: list[Shift] = field(default_factory=list)
    distributions: dict[str, DistributionInfo] = field(default_factory=dict)
    families: dict[str, Family] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)

    @cached_property
    def benchmarks(self) -> list[str]:
        return sorted({b for s in self.shifts for b in s.benchmarks})

    def category(self, name: str) -> Category:
        return self.categories[check_name(name, self.categories, "category")]

    def distribution(self, name: str) -> DistributionInfo:
        return self.distributions[check_name(name, self.distributions, "distribution")]

    def select_shifts(
        self,
        *,
        category: str | None = None,
        benchmark: str | None = None,
        names: Iterable[str] = (),
    ) -> list[Shift]:
        """Shifts filtered by category, benchmark suite and/or `source->target` names."""
        chosen = self.shifts
        if category is not None:
            self.category(category)
            chosen = [s for s in chosen if s.category == category]
        if benchmark is not None:
            check_name(benchmark, self.benchmarks, "benchmark")
            chosen = [s for s in chosen if benchmark in s.benchmarks]
        names = list(names)
        if names:
            by_name = {s.name: s for s in self.shifts}
            wanted = {check_name(n, by_name, "shift") for n in names}
            chosen = [s for s in chosen if s.name in wanted]
        return chosen

    def distributions_in(self, shifts: Iterable[Shift]) -> list[str]:
        """Every distribution a set of shifts touches (sources, targets and target references)."""
        names: set[str] = set()
        for s in shifts:
            names.update({s.source, s.target, s.reference})
        return sorted(names)

    def member(self, name: str) -> Member | None:
        """The family member `name` stands for (its base being a known distribution or member), else None."""
        for family in self.families.values():
            member = family.parse(name)
            if member is not None and (member.base in self.distributions or self.member(member.base)):
                return member
        return None

    def include(self, names: Iterable[str]) -> None:
        """Add the family members among `names` (and their shifts) that the catalog does not list yet."""
        for name in names:
            member = None if name in self.distributions else self.member(name)
            if member is not None:
                self.include([member.base])
                _attach_member(self, member)

    def without_members(self) -> Catalog:
        """The catalog without family members and their shifts: what a release of fixed distributions
        (e.g. the original GENIES release) is compared with."""
        shifts = [s for s in self.shifts if s.target not in self.members]
        roles = _roles(shifts)
        distributions = {
            name: replace(info, categories=tuple(sorted(roles.get(name, ()))))
            for name, info in self.distributions.items() if name not in self.members
        }
        return Catalog(dict(self.categories), shifts, distributions, dict(self.families))

    def shifts_table(self) -> pa.Table:
        return pa.Table.from_pylist([s.to_dict() for s in self.shifts], schema=SHIFTS_SCHEMA)

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": [
                {"name": c.name, "label": c.label, "description": c.description}
                for c in self.categories.values()
            ],
            "shifts": [s.to_dict() for s in self.shifts],
            "distributions": [d.to_dict() for d in self.distributions.values()],
            "families": [f.to_dict() for f in self.families.values()],
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise GeniesError(f"catalog file {path} is not valid TOML: {exc}", "fix the file and retry") from exc


def _merge_dir(catalog: Catalog, directory: Path, pending: dict[str, dict[str, Any]]) -> None:
    cats = directory / "categories.toml"
    if cats.exists():
        for entry in _read_toml(cats).get("category", []):
            catalog.categories[entry["name"]] = Category(
                entry["name"], entry["label"], entry.get("description", "")
            )
    shifts = directory / "shifts.toml"
    if shifts.exists():
        for entry in _read_toml(shifts).get("shift", []):
            category = entry["category"]
            if category not in catalog.categories:
                raise GeniesError(
                    f"{shifts}: shift {entry['source']}->{entry['target']} names unknown category {category!r}",
                    "declare the category in a categories.toml",
                )
            catalog.shifts.append(
                Shift(
                    source=entry["source"],
                    target=entry["target"],
                    category=category,
                    label=catalog.categories[category].label,
                    target_reference=entry.get("target_reference"),
                    benchmarks=tuple(entry.get("benchmarks", ())),
                )
            )
    dists = directory / "distributions.toml"
    if dists.exists():
        pending.update(_read_toml(dists))
    families = directory / "families.toml"
    if families.exists():
        for entry in _read_toml(families).get("family", []):
            family = family_from_toml(entry, str(families))
            if family.category not in catalog.categories:
                raise GeniesError(f"{families}: family {family.name!r} names unknown category {family.category!r}",
                                  "declare the category in a categories.toml")
            catalog.families[family.name] = family


def _member_build(base_build: str, adds_llm: bool) -> str:
    """A member is built like its base, plus LLM calls when its family needs them."""
    if not adds_llm or "LLM" in base_build:
        return base_build
    return f"{base_build}+LLM"


def _attach_member(catalog: Catalog, member: Member) -> None:
    """Register a member as a distribution and its shift base -> member in the family's category."""
    family, base = member.family, catalog.distributions[member.base]
    category = catalog.categories[family.category]
    catalog.members[member.name] = member
    catalog.shifts.append(Shift(member.base, member.name, category.name, category.label))
    catalog.distributions[member.name] = DistributionInfo(
        name=member.name,
        description=member.describe(),
        build=_member_build(base.build, family.llm),
        sources=base.sources,
        categories=(category.name,),
        intended_cues=base.intended_cues,
    )
    if category.name not in base.categories:
        catalog.distributions[base.name] = replace(base, categories=tuple(sorted((*base.categories, category.name))))


def _roles(shifts: Iterable[Shift]) -> dict[str, set[str]]:
    """The categories each distribution takes part in (as source, target or target reference)."""
    roles: dict[str, set[str]] = {}
    for s in shifts:
        for name in (s.source, s.target, s.reference):
            roles.setdefault(name, set()).add(s.category)
    return roles


def _finish_distributions(catalog: Catalog, pending: dict[str, dict[str, Any]]) -> None:
    roles = _roles(catalog.shifts)
    for name, entry in pending.items():
        build = entry.get("build", "")
        if build not in BUILD_KINDS:
            raise GeniesError(f"distribution {name}: build {build!r} is not one of {', '.join(BUILD_KINDS)}")
        catalog.distributions[name] = DistributionInfo(
            name=name,
            description=entry.get("description", ""),
            build=build,
            sources=tuple(entry.get("sources", ())),
            categories=tuple(sorted(roles.get(name, ()))),
            intended_cues=tuple(entry.get("intended_cues", ())),
        )
    missing = sorted(set(roles) - set(catalog.distributions))
    if missing:
        raise GeniesError(f"shifts name distributions missing from the registry: {', '.join(missing)}")


def load_catalog(extra_dirs: Iterable[Path] = ()) -> Catalog:
    """The built-in catalog merged with the catalog files of any plugin directories."""
    catalog = Catalog()
    pending: dict[str, dict[str, Any]] = {}
    for directory in (CATALOG_DIR, *extra_dirs):
        _merge_dir(catalog, Path(directory), pending)
    _finish_distributions(catalog, pending)
    for family in catalog.families.values():
        for member in family.defaults():
            if member.base not in catalog.distributions:
                raise GeniesError(f"family {family.name!r}: default base {member.base!r} is not a distribution",
                                  "fix the family's grid")
            if member.name not in catalog.distributions:
                _attach_member(catalog, member)
    return catalog
