"""The registry of checks: each check is one small function with a name, a severity and a description.

A check reads a `LoadedVersion` and returns `Finding`s, one per distribution or shift that fails it; no
finding means it passed. Adding a check is writing one decorated function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from builders.registries import Registry
from builders.validation.data import LoadedVersion

SEVERITIES = ("error", "warning", "info")
MAX_EXAMPLES = 5


@dataclass
class Finding:
    """One distribution or shift failing a check: how many examples, out of how many, and a few ids."""

    scope: str
    count: int
    total: int
    examples: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "examples": self.examples[:MAX_EXAMPLES],
                "detail": self.detail}

    def merged(self, other: Finding) -> Finding:
        """One finding for a scope a check reported twice (e.g. two response counts in one distribution)."""
        return Finding(self.scope, self.count + other.count, max(self.total, other.total),
                       list(dict.fromkeys(self.examples + other.examples))[:MAX_EXAMPLES],
                       "; ".join(d for d in (self.detail, other.detail) if d))


CheckFn = Callable[[LoadedVersion], list[Finding]]


@dataclass(frozen=True)
class Check:
    name: str
    severity: str
    description: str
    fn: CheckFn
    needs_reference: bool = False


CHECKS: Registry[Check] = Registry("check")


def check(name: str, severity: str, description: str, needs_reference: bool = False) -> Callable[[CheckFn], CheckFn]:
    """Register `fn` as the check `name`; one that `needs_reference` compares with another version and runs
    only when one is given (`genies validate --against`)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")

    def register(fn: CheckFn) -> CheckFn:
        CHECKS.add(name, Check(name, severity, description, fn, needs_reference), fn.__module__)
        return fn

    return register


def flagged_per_distribution(frame: pl.DataFrame, mask: pl.Expr, detail: str = "") -> list[Finding]:
    """One finding per distribution that has rows where `mask` is true."""
    counted = frame.group_by("dist").agg(
        count=mask.fill_null(True).sum(),
        total=pl.len(),
        examples=pl.col("id").filter(mask.fill_null(True)).head(MAX_EXAMPLES),
    )
    return [
        Finding(row["dist"], int(row["count"]), int(row["total"]), [e for e in row["examples"] if e], detail)
        for row in counted.filter(pl.col("count") > 0).sort("dist").iter_rows(named=True)
    ]


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"
