"""Run checks on a version and collect the results into one `ValidationReport`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builders.errors import GeniesError, check_name
from builders.export import Version
from builders.validation.data import LoadedVersion, load_version
from builders.validation.fidelity import compare_versions
from builders.validation.registry import CHECKS, SEVERITIES, Check, Finding


@dataclass
class CheckResult:
    check: Check
    findings: list[Finding]
    seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.findings)

    @property
    def count(self) -> int:
        return sum(f.count for f in self.findings)

    def by_scope(self) -> dict[str, Finding]:
        """Findings keyed by distribution or shift, merging a scope reported more than once."""
        merged: dict[str, Finding] = {}
        for finding in self.findings:
            merged[finding.scope] = merged[finding.scope].merged(finding) if finding.scope in merged else finding
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.check.name,
            "severity": self.check.severity,
            "description": self.check.description,
            "status": "fail" if self.failed else "pass",
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "findings": {scope: f.to_dict() for scope, f in self.by_scope().items()},
        }


@dataclass
class ValidationReport:
    loaded: LoadedVersion
    results: list[CheckResult]
    seconds: float

    @property
    def errors(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed and r.check.severity == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed and r.check.severity == "warning"]

    @property
    def infos(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed and r.check.severity == "info"]

    def result(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.check.name == name)

    def to_dict(self) -> dict[str, Any]:
        manifest = self.loaded.manifest
        return {
            "version": {"path": str(self.loaded.version.path), "dataset": manifest.get("dataset"),
                        "version": manifest.get("version"), "content_sha256": manifest.get("content_sha256")},
            "examples": self.loaded.frame.height,
            "distributions": len(self.loaded.distributions),
            "seconds": round(self.seconds, 3),
            "summary": {"errors": len(self.errors), "warnings": len(self.warnings), "infos": len(self.infos),
                        "passed": sum(not r.failed for r in self.results)},
            "checks": [r.to_dict() for r in self.results],
            **({"against": against(self.loaded, self.loaded.reference)} if self.loaded.reference is not None else {}),
        }


def against(loaded: LoadedVersion, reference: LoadedVersion) -> dict[str, Any]:
    """The fidelity comparison with the reference version: where it is and each distribution side by side."""
    return {"path": str(reference.version.path), "dataset": reference.manifest.get("dataset"),
            "version": reference.manifest.get("version"),
            "distributions": {c.dist: c.to_dict() for c in compare_versions(loaded)}}


def select_checks(names: Iterable[str] | None, with_reference: bool = False) -> list[Check]:
    """The named checks (every check when none are named, less those that need a reference version when
    there is none), errors first; unknown names get the closest suggestions."""
    chosen = [CHECKS[check_name(n.strip(), CHECKS, "check")] for n in names or () if n.strip()]
    unrunnable = [c.name for c in chosen if c.needs_reference and not with_reference]
    if unrunnable:
        raise GeniesError(f"check {', '.join(unrunnable)} compares with a reference version",
                          "pass --against REFERENCE (e.g. an imported release), or leave the check out")
    runnable = [c for c in CHECKS.values() if with_reference or not c.needs_reference]
    order = list(CHECKS)
    return sorted(chosen or runnable, key=lambda c: (SEVERITIES.index(c.severity), order.index(c.name)))


def validate_version(
    ref: str | Path | Version,
    checks: Iterable[str] | None = None,
    on_check: Callable[[Check], None] | None = None,
    against: str | Path | Version | None = None,
) -> ValidationReport:
    """Load a version once (and the reference version `against`, if given) and run the selected checks on
    it; `on_check` is called as each one starts."""
    started = time.perf_counter()
    selected = select_checks(checks, with_reference=against is not None)
    loaded = load_version(ref)
    if against is not None:
        loaded.reference = load_version(against)
    results = []
    for chosen in selected:
        if on_check is not None:
            on_check(chosen)
        t0 = time.perf_counter()
        findings = chosen.fn(loaded)
        results.append(CheckResult(chosen, findings, time.perf_counter() - t0))
    return ValidationReport(loaded, results, time.perf_counter() - started)
