"""The build pipeline: registered builders -> checked records -> group-aware splits -> one exported version.

For every selected distribution the pipeline runs its builder, rejects records that break the schema's
invariants (with the reason, written to `rejects.jsonl`), keeps one record per prompt, splits whole
groups into train/test with the requested sizes, balances the preferred response's position and hands
the splits to `export_version`. A distribution that cannot be built here is *skipped* with exactly what
it needs (a builder, the LLM engine, a source); one whose builder breaks is *failed*, and a build with a
failure exports nothing, so a half-built version is never presented as a result.

A build is identified by its fingerprint: a hash of the code (the `builders/` package and `templates/`),
the source specs (pinned revisions and checksums), the templates its builders declare, the selection,
the seed and the sizes. Throughput settings never enter it. If the target version already exists with
the same fingerprint and nothing in it was skipped for a reason the environment could lift (a missing
source or LLM), the rebuild is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.catalog import Catalog
from builders.errors import GeniesError, check_name
from builders.export import MANIFEST, DistributionExport, ExportResult, export_version
from builders.registry import Builder, BuildContext, Reject, discover, resolve
from builders.resources import SOURCES_DIR, TEMPLATES_DIR
from builders.schema import Record
from builders.sources import SourceUnavailable, source_available
from builders.splits import balance_positions, dedupe_by_prompt, group_split
from builders.templating import check_template, template_id, template_variables

PACKAGE_DIR = Path(__file__).resolve().parent
FINGERPRINT_FORMAT = "genies-build/1"
PROMPT_FIELDS = ("instruction", "input")  # what a prompt-format template (templates/prompts/) may read
NO_LLM_REASON = "needs the LLM engine (set OPENAI_BASE_URL and OPENAI_API_KEY)"

BUILT, SKIPPED, FAILED = "built", "skipped", "failed"
NEEDS_BUILDER, NEEDS_LLM, NEEDS_SOURCE = "no_builder", "needs_llm", "needs_source"


@dataclass(frozen=True)
class BuildOptions:
    """What changes a build's content (all part of the fingerprint) plus where raw data is read from.

    Sources come from the mirror (`mirror` or GENIES_MIRROR) or the source cache; only with `fetch` may
    the source builders download a missing upstream (`genies sources pull` is the usual way to do that).
    `offline` also keeps the LLM engine on its cache.
    """

    seed: int = 0
    train_size: int = 600
    test_size: int = 250
    limit: int | None = None
    mirror: str | Path | None = None
    cache_dir: Path | None = None
    fetch: bool = False
    offline: bool = False

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size"):
            if getattr(self, name) < 0:
                raise GeniesError(f"{name} must not be negative", "pass a size of 0 or more")
        if self.limit is not None and self.limit < 1:
            raise GeniesError(f"--limit must be at least 1, got {self.limit}", "omit --limit for full sizes")
        for directory in str(self.mirror or "").split(os.pathsep):
            if directory and not Path(directory).is_dir():
                raise GeniesError(f"mirror directory {directory} does not exist", "check the --mirror / GENIES_MIRROR path")

    @property
    def sizes(self) -> tuple[int, int]:
        """Rows wanted per split: the configured sizes, each capped by `limit`."""
        if self.limit is None:
            return self.train_size, self.test_size
        return min(self.train_size, self.limit), min(self.test_size, self.limit)


@dataclass
class DistributionResult:
    """What happened to one distribution; `reason` says what a skipped one needs or why it failed."""

    name: str
    status: str
    reason: str = ""
    skip_kind: str = ""
    needs: str = ""  # the source a `needs_source` skip waits for
    splits: dict[str, list[Record]] = field(default_factory=dict)
    context: BuildContext | None = None
    detail: str = ""
    seconds: float = 0.0
    row_counts: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.row_counts = self.row_counts or {split: len(rows) for split, rows in self.splits.items()}
        if not self.sources and self.context is not None:
            self.sources = sorted(self.context.sources_used)

    def rows(self, split: str) -> int:
        return self.row_counts.get(split, 0)

    @property
    def label(self) -> str:
        return f"{self.status}: {self.reason}" if self.reason else self.status


@dataclass
class BuildReport:
    """The outcome of `run_build`: per-distribution results and what happened to the version."""

    dataset: str
    version: str
    fingerprint: str
    results: list[DistributionResult]
    export: ExportResult | None = None
    noop: bool = False
    seconds: float = 0.0

    @property
    def path(self) -> Path | None:
        return self.export.path if self.export else None

    def with_status(self, status: str) -> list[DistributionResult]:
        return [r for r in self.results if r.status == status]

    @property
    def total_rows(self) -> int:
        return sum(r.rows("train") + r.rows("test") for r in self.results)


@dataclass
class _PipelineContext(BuildContext):
    """A BuildContext that remembers which source it was asked for, to name it when loading fails."""

    requested_sources: list[str] = field(default_factory=list)

    def source(self, name: str):
        self.requested_sources.append(name)
        return super().source(name)


def select_distributions(
    catalog: Catalog,
    names: Iterable[str] = (),
    category: str | None = None,
    benchmark: str | None = None,
) -> list[str]:
    """The distributions a build covers: named ones plus those of the chosen shifts; everything by default.

    Named members of a parametric family (e.g. `arc_easy__perturb_response_p0.35`) join the catalog and
    the registry here, so their shifts are exported and their builders fingerprinted.
    """
    names = list(names)
    catalog.include(names)
    for name in names:
        resolve(name)
    known = sorted(set(catalog.distributions) | set(discover()))
    chosen = {check_name(n, known, "distribution") for n in names}
    if category is not None or benchmark is not None:
        chosen |= set(catalog.distributions_in(catalog.select_shifts(category=category, benchmark=benchmark)))
    return sorted(chosen) if chosen else known


def _digest_tree(root: Path, pattern: str) -> list[tuple[str, str]]:
    files = sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    return [(p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def code_version() -> str:
    """Hash of the pipeline's own code, catalog data and templates: a change to any changes every fingerprint.

    The catalog's TOML counts as code: families.toml maps a member's name to its parameters (a language
    code to the language named in the translation prompt).
    """
    parts = {"builders": _digest_tree(PACKAGE_DIR, "*.py"), "catalog": _digest_tree(PACKAGE_DIR / "catalog", "*.toml"),
             "templates": _digest_tree(TEMPLATES_DIR, "*")}
    return _hash(parts)


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _plugin_files(builders: Iterable[Builder]) -> list[tuple[str, str]]:
    """Builder modules that live outside this package (plugins) are code too."""
    found = set()
    for b in builders:
        path = Path(getattr(sys.modules.get(b.module), "__file__", "") or "")
        if path.is_file() and PACKAGE_DIR not in path.resolve().parents:
            found.add((b.module, hashlib.sha256(path.read_bytes()).hexdigest()))
    return sorted(found)


def fingerprint_inputs(names: list[str], options: BuildOptions, llm_model: str | None = None) -> dict[str, Any]:
    """Everything a build's content depends on, and nothing it does not (no paths, no throughput knobs)."""
    registry = discover()
    builders = [registry[n] for n in names if n in registry]
    train, test = options.sizes
    return {
        "format": FINGERPRINT_FORMAT,
        "code": code_version(),
        "plugins": _plugin_files(builders),
        "source_specs": _hash(_digest_tree(SOURCES_DIR, "*")) if SOURCES_DIR.is_dir() else None,
        "templates": sorted({template_id(t) for b in builders for t in b.templates}),
        "distributions": names,
        "seed": options.seed,
        "sizes": {"train": train, "test": test},
        "llm_model": llm_model,
    }


def build_fingerprint(inputs: dict[str, Any]) -> str:
    return _hash(inputs)


def default_version(fingerprint: str) -> str:
    """`<package version>+<fingerprint prefix>`: a new code, source, seed or size gives a new version."""
    try:
        base = package_version("genies-builder")
    except PackageNotFoundError:
        base = "0.0.0"
    return f"{base}+{fingerprint[:8]}"


def _check_templates(builder: Builder) -> None:
    """Fail before building if a template is missing, malformed, or a prompt format reads unknown fields."""
    for name in builder.templates:
        if name.startswith("prompts/"):
            check_template(name, PROMPT_FIELDS)
        else:
            template_variables(name)


def _check_all_templates(names: Iterable[str]) -> None:
    """Check every selected builder's templates before any builder runs (a typo fails in seconds)."""
    registry = discover()
    for name in names:
        if name in registry:
            try:
                _check_templates(registry[name])
            except GeniesError as exc:
                raise GeniesError(f"distribution {name}: {exc.message}", exc.hint) from exc


def _skip(name: str, kind: str, reason: str) -> DistributionResult:
    return DistributionResult(name, SKIPPED, reason=reason, skip_kind=kind)


def _checked(records: Iterable[Record], ctx: BuildContext) -> list[Record]:
    """Records that keep the schema's invariants; the others become rejects with their reasons."""
    kept = []
    for record in records:
        problems = record.problems()
        if record.distribution != ctx.distribution:
            problems.append(f"names distribution {record.distribution!r}")
        if not record.group:
            problems.append("has no group")
        if problems:
            ctx.reject("; ".join(problems), record)
        else:
            kept.append(record)
    return kept


def _split(records: list[Record], ctx: BuildContext, options: BuildOptions) -> dict[str, list[Record]]:
    unique, duplicates = dedupe_by_prompt(records)
    for record in duplicates:
        ctx.reject("duplicate prompt", {"id": record.id, "group": record.group})
    train, test = options.sizes
    splits = group_split(unique, options.seed, train, test)
    return {name: balance_positions(rows, options.seed) for name, rows in splits.items()}


def build_distribution(name: str, options: BuildOptions, llm: Any = None) -> DistributionResult:
    """Run one builder through validation, dedup, split and balancing; never raises for builder errors."""
    builder = resolve(name)
    if builder is None:
        return _skip(name, NEEDS_BUILDER, "no builder yet")
    if builder.needs_llm and llm is None:
        return _skip(name, NEEDS_LLM, NO_LLM_REASON)
    train, test = options.sizes
    ctx = _PipelineContext(
        distribution=name, seed=options.seed, mirror=options.mirror, cache_dir=options.cache_dir,
        offline=options.offline or not options.fetch, train_size=train, test_size=test, llm=llm,
    )
    started = time.perf_counter()
    try:
        _check_templates(builder)
        splits = _split(_checked(builder.fn(ctx), ctx), ctx, options)
    except SourceUnavailable as exc:
        needed = ctx.requested_sources[-1] if ctx.requested_sources else "?"
        result = _skip(name, NEEDS_SOURCE, f"needs source {needed}")
        result.needs, result.detail = needed, exc.message
        return result
    except GeniesError as exc:
        return DistributionResult(name, FAILED, reason=exc.message, context=ctx, detail=str(exc))
    except Exception as exc:  # a builder bug: report it with its traceback, keep building the others
        return DistributionResult(
            name, FAILED, reason=f"{type(exc).__name__}: {exc}", context=ctx, detail=traceback.format_exc()
        )
    seconds = time.perf_counter() - started
    if not any(splits.values()):
        reasons = sorted({r.reason for r in ctx.rejects})[:3]
        why = f"builder produced no valid records ({'; '.join(reasons) or 'it yielded none'})"
        return DistributionResult(name, FAILED, reason=why, context=ctx, seconds=seconds)
    return DistributionResult(name, BUILT, splits=splits, context=ctx, seconds=seconds)


def _jsonable(value: Any) -> Any:
    """JSON for what json cannot encode itself: records as rows, dataclasses as dicts, sets sorted."""
    if isinstance(value, Record):
        return value.to_row()
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def rejects_jsonl(rejects: Iterable[Reject]) -> bytes:
    """One JSON line per reject, in build order: deterministic bytes for identical builds."""
    lines = [
        json.dumps({"distribution": r.distribution, "reason": r.reason, "raw": r.raw},
                   sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
        for r in rejects
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _export(result: DistributionResult) -> DistributionExport:
    ctx = result.context
    notes: dict[str, Any] = {"rejected": len(ctx.rejects)}
    if ctx.notes:
        notes["build_notes"] = list(ctx.notes)
    return DistributionExport(
        name=result.name,
        splits=result.splits,
        sources={s.name: {"revision": s.revision, "license": s.license} for s in ctx.sources_used.values()},
        templates=[template_id(t) for t in discover()[result.name].templates],
        llm_models=sorted({r.provenance.llm_model for rows in result.splits.values() for r in rows
                           if r.provenance.llm_model}),
        notes=notes,
    )


def _card_notes(results: list[DistributionResult]) -> str:
    lines = [f"- **{r.name}**: {note}" for r in results if r.context for note in r.context.notes]
    skipped = [f"- {r.name}: {r.reason}" for r in results if r.status == SKIPPED]
    parts = []
    if lines:
        parts.append("Build notes:\n\n" + "\n".join(lines))
    if skipped:
        parts.append("Not in this version:\n\n" + "\n".join(skipped))
    return "\n\n".join(parts)


def _existing_manifest(root: Path, dataset: str, version: str) -> dict[str, Any] | None:
    path = Path(root) / dataset / version / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _is_noop(manifest: dict[str, Any] | None, fingerprint: str, request: BuildRequest) -> bool:
    """Same fingerprint, and nothing skipped last time could be built now (a source or LLM appeared)."""
    if manifest is None or manifest.get("build_fingerprint") != fingerprint:
        return False
    skipped = manifest.get("build", {}).get("skipped", {}).values()
    if request.llm is not None and any(s.get("kind") == NEEDS_LLM for s in skipped):
        return False
    return not any(
        s.get("kind") == NEEDS_SOURCE and source_available(s["needs"], request.options.mirror, request.options.cache_dir)
        for s in skipped
    )


def _results_from_manifest(manifest: dict[str, Any]) -> list[DistributionResult]:
    """The table of a no-op rebuild, read back from the existing version instead of rebuilding it."""
    results = [
        DistributionResult(name, BUILT, reason="unchanged", row_counts=dict(summary.get("splits", {})),
                           sources=list(summary.get("sources", [])))
        for name, summary in manifest.get("distributions", {}).items()
    ]
    for name, skip in manifest.get("build", {}).get("skipped", {}).items():
        results.append(_skip(name, skip.get("kind", ""), skip.get("reason", "")))
    return sorted(results, key=lambda r: r.name)


class BuildFailed(GeniesError):
    """Raised after building when the results must not be exported; carries the report for the table."""

    def __init__(self, message: str, hint: str, report: BuildReport) -> None:
        super().__init__(message, hint)
        self.report = report


@dataclass
class BuildRequest:
    """One `genies build`: what to build, with which options, into which version."""

    names: list[str]
    options: BuildOptions = field(default_factory=BuildOptions)
    out: Path = Path("artifacts")
    dataset: str = "genies"
    version: str | None = None
    strict: bool = False
    llm: Any = None
    catalog: Catalog | None = None


def run_build(
    request: BuildRequest,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[DistributionResult], None] | None = None,
) -> BuildReport:
    """Build the requested distributions and export them as one version (or do nothing if it exists)."""
    started = time.perf_counter()
    _check_all_templates(request.names)
    inputs = fingerprint_inputs(request.names, request.options, getattr(request.llm, "model", None))
    fingerprint = build_fingerprint(inputs)
    version = request.version or default_version(fingerprint)
    existing = _existing_manifest(request.out, request.dataset, version)
    if _is_noop(existing, fingerprint, request):
        report = BuildReport(request.dataset, version, fingerprint, _results_from_manifest(existing), noop=True)
        report.export = ExportResult(Path(request.out) / request.dataset / version, "unchanged", existing)
        report.seconds = time.perf_counter() - started
        return report
    results = []
    for name in request.names:
        if on_start:
            on_start(name)
        result = build_distribution(name, request.options, request.llm)
        results.append(result)
        if on_done:
            on_done(result)
    report = BuildReport(request.dataset, version, fingerprint, results)
    _refuse_incomplete(report, request.strict)
    report.export = _write_version(report, request, inputs)
    report.seconds = time.perf_counter() - started
    return report


def _refuse_incomplete(report: BuildReport, strict: bool) -> None:
    failed, skipped = report.with_status(FAILED), report.with_status(SKIPPED)
    if failed:
        raise BuildFailed(
            f"{len(failed)} distribution(s) failed: {', '.join(r.name for r in failed)}; nothing was exported",
            "fix the builder (details above), or leave these distributions out of the selection",
            report,
        )
    if strict and skipped:
        raise BuildFailed(
            f"--strict: {len(skipped)} distribution(s) skipped: {', '.join(r.name for r in skipped)}",
            "provide what they need (--mirror DIR, an LLM server) or drop --strict",
            report,
        )
    if not report.with_status(BUILT):
        raise BuildFailed(
            "nothing could be built from this selection",
            "procedural distributions need nothing; for the others pass --mirror DIR or set GENIES_MIRROR",
            report,
        )


def _write_version(report: BuildReport, request: BuildRequest, inputs: dict[str, Any]) -> ExportResult:
    built = report.with_status(BUILT)
    names = {r.name for r in built}
    catalog = request.catalog
    if catalog is None:
        from builders.catalog import load_catalog
        from builders.registry import plugin_catalog_dirs

        catalog = load_catalog(plugin_catalog_dirs())
    shifts = catalog.shifts_table().filter(pa.array([s.source in names and s.target in names for s in catalog.shifts]))
    all_rejects = [rej for r in built for rej in r.context.rejects]
    build_section = {
        "inputs": inputs,
        "limit": request.options.limit,
        "skipped": {
            r.name: {"kind": r.skip_kind, "reason": r.reason, **({"needs": r.needs} if r.needs else {})}
            for r in report.with_status(SKIPPED)
        },
    }
    return export_version(
        request.out,
        request.dataset,
        report.version,
        [_export(r) for r in built],
        shifts,
        build_fingerprint=report.fingerprint,
        seed=request.options.seed,
        manifest_extra={"build": build_section},
        extra_files={"rejects.jsonl": rejects_jsonl(all_rejects)} if all_rejects else {},
        card_context={"notes": _card_notes(report.results)},
    )
