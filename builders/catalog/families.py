"""Parametric families of distributions: `{base}__perturb_{placement}_p{p}{ops}` and the like.

A family (declared in a `families.toml`) derives a member distribution from any base distribution and
adds one shift, base -> member, in its category. Its `grid` names the default members the catalog lists;
any other name the pattern accepts is a member too, so `arc_easy__perturb_response_p0.35` builds by name.
This module only reads names and data; the builders that make members live in builders/categories/.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from builders.errors import GeniesError

BASE = "base"


@dataclass(frozen=True)
class Member:
    """One member of a family: its name, its base distribution and its other parameters."""

    name: str
    family: Family
    params: Mapping[str, str]

    @property
    def base(self) -> str:
        return self.params[BASE]

    def describe(self) -> str:
        return self.family.description.format(**self.family.named(self.params))

    def value_text(self, param: str) -> str:
        """The text a table-valued parameter stands for (e.g. language "es" -> "Spanish")."""
        return self.family.named(self.params)[param]


@dataclass(frozen=True)
class Family:
    name: str
    category: str
    member: str
    description: str
    llm: bool
    grid: Mapping[str, tuple[str, ...]]
    accept: Mapping[str, str | Mapping[str, str]]

    @property
    def params(self) -> list[str]:
        return [field for _, field, _, _ in string.Formatter().parse(self.member) if field]

    def _pattern(self, param: str) -> str:
        if param == BASE:
            return ".+"
        accepted = self.accept[param]
        if isinstance(accepted, str):
            return f"(?:{accepted})"
        return "|".join(re.escape(v) for v in sorted(accepted, key=len, reverse=True)) or "(?:)"

    @property
    def regex(self) -> re.Pattern[str]:
        parts = []
        for literal, param, _, _ in string.Formatter().parse(self.member):
            parts.append(re.escape(literal))
            if param:
                parts.append(f"(?P<{param}>{self._pattern(param)})")
        return re.compile("".join(parts))

    def parse(self, name: str) -> Member | None:
        """The member this name stands for, or None when the family's pattern does not accept it."""
        match = self.regex.fullmatch(name)
        return Member(name, self, match.groupdict()) if match else None

    def make(self, params: Mapping[str, str]) -> Member:
        return Member(self.member.format(**params), self, dict(params))

    def defaults(self) -> Iterator[Member]:
        names = self.params
        for values in itertools.product(*(self.grid[p] for p in names)):
            yield self.make(dict(zip(names, values)))

    def named(self, params: Mapping[str, str]) -> dict[str, str]:
        """Parameters with each table-valued one replaced by the text its table gives it."""
        return {
            k: (self.accept[k].get(v, v) if isinstance(self.accept.get(k), Mapping) else v) for k, v in params.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "member": self.member,
            "description": self.description,
            "llm": self.llm,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "accept": {k: v if isinstance(v, str) else dict(v) for k, v in self.accept.items()},
        }


def family_from_toml(entry: Mapping[str, Any], where: str) -> Family:
    """A family from its TOML table; every parameter must have a grid, and all but `base` an `accept`."""
    try:
        family = Family(
            name=entry["name"],
            category=entry["category"],
            member=entry["member"],
            description=entry.get("description", ""),
            llm=bool(entry.get("llm", False)),
            grid={k: tuple(str(x) for x in v) for k, v in entry["grid"].items()},
            accept=dict(entry.get("accept", {})),
        )
    except KeyError as exc:
        raise GeniesError(f"{where}: family {entry.get('name', '?')!r} lacks {exc}", "see builders/catalog/families.toml") from exc
    missing_grid = [p for p in family.params if p not in family.grid]
    missing_accept = [p for p in family.params if p != BASE and p not in family.accept]
    if BASE not in family.params or missing_grid or missing_accept:
        raise GeniesError(
            f"{where}: family {family.name!r}: pattern {family.member!r} needs {{base}}, a grid for every parameter "
            f"(missing: {missing_grid}) and an accept for every other one (missing: {missing_accept})",
            "see builders/catalog/families.toml",
        )
    rejected = [m.name for m in family.defaults() if family.parse(m.name) is None]
    if rejected:
        raise GeniesError(f"{where}: family {family.name!r} does not accept its own default {rejected[0]!r}",
                          "make `grid` values match `accept`")
    return family
