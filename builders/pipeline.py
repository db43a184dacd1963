"""The build pipeline: registered builders -> checked records -> group-aware splits -> one exported version.

For every selected distribution the pipeline runs its builder, rejects records that break the schema's
invariants (with the reason, written to `rejects.jsonl`), keeps one record per prompt, splits whole
groups into train/test with the requested sizes, balances the preferred response's position and hands
the splits to `export_version`. A distribution that cannot be built here is *skipped* with exactly what
it needs (a builder, the LLM engine, a source); one whose builder breaks is *failed*, and a build with a
failure exports nothing, so a half-built version is never presented as a result.

A build is planned by its plan fingerprint: a hash of the code its builders reach (their modules and what
those import, the executor, the catalog data, the card template, the recipe specs it runs), the source
specs (pinned revisions and checksums), the templates its builders declare, the selection, the seed and
the sizes. Throughput settings never enter it. The build fingerprint, and so the default version, adds
what was built: the set of distributions built and the revisions of the sources each actually read, so
one selection built on machines with different sources gets different versions.

If a version of the same plan exists (the named one, or without --version the most complete
default-named one) and nothing in it was skipped for a reason the environment could lift (a missing
source or LLM), the rebuild is a no-op. Otherwise an existing named version is refused before any source
is read or request sent: its content could not come out the same, and versions are immutable. The
version's lock is held from that check to the export, so two builds of one version never race.
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
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from builders.catalog import Catalog
from builders.codegraph import module_files, reachable
from builders.coverage import NOT_SELECTED, shifts_with_status
from builders.discovery import catalog as shared_catalog
from builders.discovery import discover, resolve, resolved
from builders.errors import GeniesError, check_name
from builders.export import (
    MANIFEST,
    DistributionExport,
    ExportResult,
    Version,
    export_version,
    writing_version,
)
from builders.registry import BuildContext, Builder, Reject
from builders.resources import SOURCES_DIR, SPEC_FILE, TEMPLATES_DIR
from builders.schema import PROMPT_FIELDS, Record, records_to_table, table_to_records
from builders.sources import SourceUnavailable, source_available
from builders.splits import balance_positions, dedupe_by_prompt, group_split
from builders.templating import (
    check_template,
    template_dirs,
    template_id,
    template_variables,
)

PACKAGE_DIR = Path(__file__).resolve().parent
FINGERPRINT_FORMAT = "genies-build/3"  # 3: the fingerprint covers what was built and the source revisions read
CARD_TEMPLATES = "card"
NO_LLM_REASON = "needs the LLM engine (set OPENAI_BASE_URL and OPENAI_API_KEY)"
NO_BUILDER_REASON = "no builder yet"

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
    mirror: str | Path | tuple[str | Path, ...] | None = None  # one directory, several joined by ':', or a tuple
    cache_dir: Path | None = None
    fetch: bool = False
    offline: bool = False

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size"):
            if getattr(self, name) < 0:
                raise GeniesError(f"{name} must not be negative", "pass a size of 0 or more")
        if self.limit is not None and self.limit < 1:
            raise GeniesError(f"--limit must be at least 1, got {self.limit}", "omit --limit for full sizes")
        for directory in self.mirror_dirs:
            if directory and not Path(directory).is_dir():
                raise GeniesError(f"mirror directory {directory} does not exist", "check the --mirror / GENIES_MIRROR path")

    @property
    def mirror_dirs(self) -> list[str]:
        """Every mirror directory named, whether given as one `:`-joined string or one per --mirror."""
        given = self.mirror if isinstance(self.mirror, tuple) else (self.mirror or "",)
        return [part for m in given for part in str(m).split(os.pathsep) if part]

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
    rows_dropped: dict[str, int] = field(default_factory=dict)  # per source: rows its reader dropped
    export: DistributionExport | None = None  # what the version holds of it, once `_convert`ed

    def __post_init__(self) -> None:
        self.row_counts = self.row_counts or {split: len(rows) for split, rows in self.splits.items()}
        if not self.sources and self.context is not None:
            self.sources = sorted(self.context.sources_used)
        if not self.rows_dropped and self.context is not None:
            self.rows_dropped = {n: u.rows_dropped for n, u in sorted(self.context.sources_used.items())}

    @property
    def sources_label(self) -> str:
        """The sources, each with the rows its reader dropped when there were any."""
        return ", ".join(f"{s} ({self.rows_dropped[s]:,} rows dropped)" if self.rows_dropped.get(s) else s
                         for s in self.sources)

    def rows(self, split: str) -> int:
        return self.row_counts.get(split, 0)

    def records(self, split: str) -> list[Record]:
        """The split's records; read back from its table once the build has let the records go."""
        if split in self.splits or self.export is None or split not in self.export.splits:
            return self.splits.get(split, [])
        return table_to_records(self.export.splits[split])

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
    found = resolved(names)
    if not names and category is None and benchmark is None:
        return sorted(set(catalog.distributions) | set(discover()))
    unknown = [n for n in names if n not in catalog.distributions and n not in found]
    if unknown:
        check_name(unknown[0], sorted(set(catalog.distributions) | set(discover())), "distribution")
    chosen = set(names)
    if category is not None or benchmark is not None:
        chosen |= set(catalog.distributions_in(catalog.select_shifts(category=category, benchmark=benchmark)))
    return sorted(chosen)


def _digest_tree(root: Path, pattern: str) -> list[tuple[str, str]]:
    files = sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    return [(p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _builder_modules(builders: Iterable[Builder]) -> set[str]:
    """The modules whose code makes these builders' rows: each builder's own and, for a family member,
    its base's (recursively)."""
    modules, todo = set(), list(builders)
    while todo:
        builder = todo.pop()
        modules.add(builder.module)
        base = resolve(builder.base) if builder.base else None
        if base is not None:
            todo.append(base)
    return modules


def code_version(builders: Iterable[Builder]) -> str:
    """Hash of the code these builders reach: their modules and every package module those import,
    the executor's own modules, the catalog data, the dataset card template and the specs of the
    recipes they run. An edit elsewhere (evaluation, publishing, another category) changes nothing.

    The catalog's TOML counts as code: families.toml maps a member's name to its parameters (a language
    code to the language named in the translation prompt).
    """
    builders = list(builders)
    files = module_files()
    modules = reachable(_builder_modules(builders) | {__name__})
    parts = {"builders": sorted((m, _digest(files[m])) for m in modules),
             "catalog": _digest_tree(PACKAGE_DIR / "catalog", "*.toml"),
             "templates": _digest_tree(TEMPLATES_DIR / CARD_TEMPLATES, "*"),
             "specs": _spec_files(builders)}
    return _hash(parts)


def _spec_files(builders: Iterable[Builder]) -> list[tuple[str, str]]:
    """The recipe specs a selection reads: `<folder>/spec.toml` of each folder its templates come from, and
    of each distribution's own folder."""
    folders = {t.split("/")[0] for b in builders for t in b.templates} | {b.name for b in builders}
    found: dict[str, str] = {}
    for folder in sorted(folders):
        for directory in template_dirs():
            path = Path(directory) / folder / SPEC_FILE
            if path.is_file():
                found.setdefault(f"{folder}/{SPEC_FILE}", _digest(path))
    return sorted(found.items())


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
    builders = list(resolved(names).values())
    train, test = options.sizes
    return {
        "format": FINGERPRINT_FORMAT,
        "code": code_version(builders),
        "plugins": _plugin_files(builders),
        "source_specs": _hash(_digest_tree(SOURCES_DIR, "*")) if SOURCES_DIR.is_dir() else None,
        "templates": sorted({template_id(t) for b in builders for t in b.templates}),
        "distributions": names,
        "seed": options.seed,
        "sizes": {"train": train, "test": test},
        "llm_model": llm_model,
    }


def build_fingerprint(inputs: dict[str, Any]) -> str:
    """The plan's fingerprint: what was asked for, in which code and settings (`fingerprint_inputs`)."""
    return _hash(inputs)


def built_from(results: Iterable[DistributionResult]) -> dict[str, dict[str, str]]:
    """Each built distribution with the revision of every source it actually read."""
    return {r.name: {s.name: s.revision for s in r.context.sources_used.values()} if r.context else {}
            for r in sorted(results, key=lambda r: r.name) if r.status == BUILT}


def content_fingerprint(plan: str, built: dict[str, dict[str, str]]) -> str:
    """The build's fingerprint, and so its default version: the plan plus the set of distributions built
    and the source revisions they read. The same selection built where 6 of its distributions could be
    built and where 78 could gives two fingerprints; two builds with one fingerprint hold the same data."""
    return _hash({"format": FINGERPRINT_FORMAT, "plan": plan, "built": built})


def _package_version() -> str:
    try:
        return package_version("genies-builder")
    except PackageNotFoundError:
        return "0.0.0"


def default_version(fingerprint: str) -> str:
    """`<package version>+<fingerprint prefix>`: a new code, source, seed or size gives a new version."""
    return f"{_package_version()}+{fingerprint[:8]}"


def _check_templates(builder: Builder) -> None:
    """Fail before building if a template is missing, malformed, or a prompt format reads unknown fields."""
    for name in builder.templates:
        if name.startswith("prompts/"):
            check_template(name, PROMPT_FIELDS)
        else:
            template_variables(name)


def _check_all_templates(names: Iterable[str]) -> None:
    """Check every selected builder's templates before any builder runs (a typo fails in seconds)."""
    for name, builder in resolved(names).items():
        try:
            _check_templates(builder)
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


@dataclass(frozen=True)
class Buildability:
    """Whether a distribution can be built here, and if not, the skip `build` would report (kind, reason)."""

    kind: str = ""
    reason: str = ""
    needs: str = ""

    @property
    def buildable(self) -> bool:
        return not self.kind

    @property
    def label(self) -> str:
        if self.buildable:
            return f"yes ({self.reason})" if self.reason else "yes"
        return self.reason


def _blocker(builder: Builder | None, llm: bool) -> tuple[str, str] | None:
    """The skip that no builder, or a missing LLM engine, causes: the checks `build` makes before it runs
    a builder, and `list` makes to say what can be built."""
    if builder is None:
        return NEEDS_BUILDER, NO_BUILDER_REASON
    if builder.needs_llm and not llm:
        return NEEDS_LLM, NO_LLM_REASON
    return None


def buildability(name: str, catalog: Catalog, options: BuildOptions, llm: bool) -> Buildability:
    """What `build` would do with `name` here: its builder and LLM checks, then the catalog's sources
    looked up as a build reads them (the mirrors, the cache). A distribution none of whose sources is here
    needs one; one that lacks some, or its LLM part (`uses_llm`), builds in part and says so in its notes."""
    builder = resolve(name)
    blocker = _blocker(builder, llm)
    if blocker is not None:
        return Buildability(*blocker)
    info = catalog.distributions.get(name)
    sources = list(info.sources) if info else []
    missing = [s for s in sources if not source_available(s, options.mirror, options.cache_dir)]
    if sources and len(missing) == len(sources):
        return Buildability(NEEDS_SOURCE, f"needs source {', '.join(missing)}", missing[0])
    uses_llm = bool(builder and builder.uses_llm) or bool(info and info.needs_llm)
    partial = [f"source {s}" for s in missing] + (["an LLM"] if uses_llm and not llm else [])
    return Buildability(reason=f"in part: missing {', '.join(partial)}" if partial else "")


def build_distribution(
    name: str, options: BuildOptions, llm: Any = None, built: dict[str, DistributionResult] | None = None
) -> DistributionResult:
    """Run one builder through validation, dedup, split and balancing; never raises for builder errors.

    `built` holds the results of this build so far: a family member's base is taken from there, or built
    and added, so a base is built once however many of its members are selected.
    """
    built = {} if built is None else built
    builder = resolve(name)
    blocker = _blocker(builder, llm is not None)
    if blocker is not None:
        return _skip(name, *blocker)
    assert builder is not None, "a missing builder is a blocker"
    train, test = options.sizes
    ctx = BuildContext(
        distribution=name, seed=options.seed, mirror=options.mirror, cache_dir=options.cache_dir,
        offline=options.offline or not options.fetch, train_size=train, test_size=test, llm=llm,
    )
    started = time.perf_counter()
    try:
        _check_templates(builder)
        if builder.base is not None:
            _receive_base(ctx, _base_result(builder.base, options, llm, built))
        splits = _split(_checked(builder.fn(ctx), ctx), ctx, options)
    except SourceUnavailable as exc:
        lacks = f": mirror lacks {exc.missing_file}" if getattr(exc, "missing_file", None) else ""
        result = _skip(name, NEEDS_SOURCE, f"needs source {exc.source}{lacks}")
        result.needs, result.detail = exc.source or "?", exc.message
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


def _base_result(base: str, options: BuildOptions, llm: Any, built: dict[str, DistributionResult]) -> DistributionResult:
    if base not in built:
        built[base] = build_distribution(base, options, llm, built)
    return built[base]


def _receive_base(ctx: BuildContext, base: DistributionResult) -> None:
    """Hand a member its base's exported rows (train, then test) and the sources they came from; a base
    that could not be built stops the member for the same reason."""
    if base.skip_kind == NEEDS_SOURCE:
        raise SourceUnavailable(base.detail, source=base.needs)
    if base.status != BUILT:
        raise GeniesError(f"base distribution {base.name} {base.label}", f"build {base.name} on its own to see why")
    ctx.sources_used.update(base.context.sources_used if base.context else {})
    ctx.base_rows = [row for split in ("train", "test") for row in base.splits.get(split, [])]


def _jsonable(value: Any) -> Any:
    """JSON for what json cannot encode itself: records as rows, dataclasses as dicts, sets sorted."""
    if isinstance(value, Record):
        return value.to_row()
    if is_dataclass(value) and not isinstance(value, type):
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
    """What the version holds of a built distribution: its splits as tables (converted once, here, for both
    the card's audit and the writer) and what the manifest says about it."""
    ctx, builder = result.context, resolve(result.name)
    assert ctx is not None and builder is not None, "only built distributions are exported"
    notes: dict[str, Any] = {"rejected": len(ctx.rejects)}
    if ctx.notes:
        notes["build_notes"] = list(ctx.notes)
    records = [r for rows in result.splits.values() for r in rows]
    return DistributionExport(
        name=result.name,
        splits={split: records_to_table(rows) for split, rows in result.splits.items()},
        sources={s.name: {"revision": s.revision, "license": s.license} for s in ctx.sources_used.values()},
        templates=[template_id(t) for t in builder.templates],
        llm_models=sorted({r.provenance.llm_model for r in records if r.provenance.llm_model}),
        notes=notes,
        dedupe_sources=sorted(set(ctx.sources_used) - {r.provenance.source for r in records}),
    )


def _card_notes(results: list[DistributionResult]) -> str:
    lines = [f"- **{r.name}**: {note}" for r in results if r.context for note in r.context.notes]
    skipped = [f"- {r.name}: {r.reason}" for r in results if r.status == SKIPPED]
    failed = [f"- {r.name}: {r.reason}" for r in results if r.status == FAILED]
    parts = []
    if lines:
        parts.append("Build notes:\n\n" + "\n".join(lines))
    if failed:
        parts.append("Failed in this build (exported with --allow-failed, so this version is partial):\n\n"
                     + "\n".join(failed))
    if skipped:
        parts.append("Not in this version:\n\n" + "\n".join(skipped))
    return "\n\n".join(parts)


def _existing_manifest(final: Path) -> dict[str, Any] | None:
    """The manifest of the version already at `final`, verified (a damaged version is refused), or None."""
    return Version.open(final).manifest if (final / MANIFEST).is_file() else None


def _liftable_skips(manifest: dict[str, Any], request: BuildRequest) -> list[str]:
    """Distributions the existing version skipped that this build could make (a source or LLM appeared)."""
    skipped = manifest.get("build", {}).get("skipped", {})
    return sorted(
        name for name, s in skipped.items()
        if (s.get("kind") == NEEDS_LLM and request.llm is not None)
        or (s.get("kind") == NEEDS_SOURCE
            and source_available(s["needs"], request.options.mirror, request.options.cache_dir))
    )


def _input_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Which fingerprint inputs differ, by name, with the old and new value when it is short."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after:
            shown = f"{before} -> {after}" if len(f"{before}{after}") <= 60 else "changed"
            changes.append(f"{key} {shown}")
    return changes


def _refuse_conflict(final: Path, manifest: dict[str, Any], plan: str, inputs: dict[str, Any],
                     request: BuildRequest) -> None:
    """Refuse, before anything is read or sent, a build whose result could not be the existing version."""
    if manifest.get("build", {}).get("plan_fingerprint") != plan:
        changes = _input_changes(manifest.get("build", {}).get("inputs", {}), inputs)
        why = f"it was built from other inputs ({'; '.join(changes) or 'not by genies build'})"
    elif liftable := _liftable_skips(manifest, request):
        why = f"it skipped {', '.join(liftable)}, which this build could now make"
    else:
        return
    raise GeniesError(f"version {final} already exists with different content: {why}; nothing was built",
                      "versions are immutable: choose a new --version (or omit it to derive one from the "
                      "fingerprint), or delete the old one if it was never published")


def _default_named_build(request: BuildRequest, plan: str) -> dict[str, Any] | None:
    """Without --version: the most complete default-named version of this plan that nothing this build
    could make would add to, or None."""
    found = []
    for path in sorted((Path(request.out) / request.dataset).glob(f"*/{MANIFEST}")):
        manifest = _existing_manifest(path.parent) or {}
        if manifest.get("version") == default_version(manifest.get("build_fingerprint", "")) \
                and manifest.get("build", {}).get("plan_fingerprint") == plan and not _liftable_skips(manifest, request):
            found.append(manifest)
    return min(found, key=lambda m: (-len(m.get("distributions", {})), m["version"]), default=None)


def _noop(request: BuildRequest, manifest: dict[str, Any], final: Path) -> BuildReport:
    """The report of a rebuild that finds its version already there."""
    report = BuildReport(request.dataset, manifest["version"], manifest["build_fingerprint"],
                         _results_from_manifest(manifest), noop=True)
    report.export = ExportResult(final, "unchanged", manifest)
    return report


def _results_from_manifest(manifest: dict[str, Any]) -> list[DistributionResult]:
    """The table of a no-op rebuild, read back from the existing version instead of rebuilding it."""
    dropped = manifest.get("source_rows_dropped", {})
    results = [
        DistributionResult(name, BUILT, reason="unchanged", row_counts=dict(summary.get("splits", {})),
                           sources=list(summary.get("sources", [])),
                           rows_dropped={s: dropped[s] for s in summary.get("sources", []) if s in dropped})
        for name, summary in manifest.get("distributions", {}).items()
    ]
    for name, skip in manifest.get("build", {}).get("skipped", {}).items():
        results.append(_skip(name, skip.get("kind", ""), skip.get("reason", "")))
    for name, failure in manifest.get("build", {}).get("failed", {}).items():
        results.append(DistributionResult(name, FAILED, reason=failure.get("reason", "")))
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
    allow_failed: bool = False
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
    plan = build_fingerprint(inputs)
    if request.version is None:
        existing = _default_named_build(request, plan)
        if existing is not None:
            report = _noop(request, existing, Path(request.out) / request.dataset / existing["version"])
        else:
            report = _build_and_write(request, plan, inputs, on_start, on_done)
    else:
        with writing_version(request.out, request.dataset, request.version) as final:
            existing = _existing_manifest(final)
            if existing is not None:
                _refuse_conflict(final, existing, plan, inputs, request)
                report = _noop(request, existing, final)
            else:
                report = _build_and_write(request, plan, inputs, on_start, on_done)
    report.seconds = time.perf_counter() - started
    return report


def _build_and_write(
    request: BuildRequest,
    plan: str,
    inputs: dict[str, Any],
    on_start: Callable[[str], None] | None,
    on_done: Callable[[DistributionResult], None] | None,
) -> BuildReport:
    """Build every selected distribution, then export what built under the named version or the one the
    build fingerprint derives (taking that version's lock only then, since its name is known only now)."""
    results: list[DistributionResult] = []
    built: dict[str, DistributionResult] = {}
    bases = _bases(request.names)
    for name in request.names:
        if on_start:
            on_start(name)
        result = built[name] if name in built else build_distribution(name, request.options, request.llm, built)
        built[name] = result
        results.append(result)
        if on_done:
            on_done(result)
        _convert(result, keep_records=name in bases)
    fingerprint = content_fingerprint(plan, built_from(results))
    report = BuildReport(request.dataset, request.version or default_version(fingerprint), fingerprint, results)
    _refuse_incomplete(report, request.strict, request.allow_failed, request.options)
    if request.version is not None:
        report.export = _write_version(report, request, inputs, plan)
    else:
        with writing_version(request.out, request.dataset, report.version):
            report.export = _write_version(report, request, inputs, plan)
    return report


def _bases(names: Iterable[str]) -> set[str]:
    """The distributions whose records some selected family member reads (its base, and the base's base)."""
    bases, todo = set(), [resolve(name) for name in names]
    while todo:
        builder = todo.pop()
        if builder is not None and builder.base is not None and builder.base not in bases:
            bases.add(builder.base)
            todo.append(resolve(builder.base))
    return bases


def _convert(result: DistributionResult, keep_records: bool) -> None:
    """Turn a built distribution into what the version holds (`_export`: Arrow tables) as soon as it is
    built, and let its Python records go unless a later family member reads them: held until the export,
    the records of a full build cost several times their tables."""
    if result.status != BUILT or result.export is not None:
        return
    result.export = _export(result)
    if result.context is not None:
        result.context.base_rows = []
    if not keep_records:
        result.splits = {}


def skip_hints(results: Iterable[DistributionResult], options: BuildOptions) -> list[str]:
    """One hint per missing piece the skips share: which sources (and where they were looked for), the LLM
    engine, or a builder. Said once per piece, not once per distribution."""
    skipped = [r for r in results if r.status == SKIPPED]
    hints = []
    sources = sorted({r.needs for r in skipped if r.skip_kind == NEEDS_SOURCE})
    if sources and options.mirror_dirs:
        hints.append(f"source(s) {', '.join(sources)} are in neither the mirror ({', '.join(options.mirror_dirs)}) "
                     "nor the cache: check the mirror path (`genies sources list --mirror DIR` says what each "
                     "source needs and where it was found) or `genies sources pull NAME`")
    elif sources:
        hints.append(f"source(s) {', '.join(sources)}: no mirror given; pass --mirror DIR (or set GENIES_MIRROR) "
                     "to the folder holding the upstream files, or `genies sources pull NAME`")
    if any(r.skip_kind == NEEDS_LLM for r in skipped):
        hints.append("the LLM engine: set OPENAI_BASE_URL (and OPENAI_API_KEY) to an OpenAI-compatible server "
                     "(docs/llm-engine.md)")
    if any(r.skip_kind == NEEDS_BUILDER for r in skipped):
        hints.append("a builder: see docs/adding-a-category.md")
    return hints


LLM_FAILURE_MARKS = ("connection refused", "DNS failure", "TLS failure", "gave up after")


def _failure_hint(failed: Iterable[DistributionResult]) -> str:
    """The piece to fix: the LLM engine when a failure is the server's (unreachable, refusing, giving up),
    else the failing builder."""
    if any(mark in f"{r.reason}\n{r.detail}" for r in failed for mark in LLM_FAILURE_MARKS):
        return "check the LLM engine (OPENAI_BASE_URL: is the server running and reachable?)"
    return "fix the failing builder"


def _refuse_incomplete(report: BuildReport, strict: bool, allow_failed: bool = False,
                       options: BuildOptions | None = None) -> None:
    hint = "; ".join(skip_hints(report.results, options or BuildOptions()))
    failed, skipped = report.with_status(FAILED), report.with_status(SKIPPED)
    if failed and not allow_failed:
        raise BuildFailed(
            f"{len(failed)} distribution(s) failed: {', '.join(r.name for r in failed)}; nothing was exported",
            f"{_failure_hint(failed)} (details above), leave these distributions out of the selection, "
            "or export what built with --allow-failed",
            report,
        )
    if strict and skipped:
        raise BuildFailed(
            f"--strict: {len(skipped)} distribution(s) skipped: {', '.join(r.name for r in skipped)}",
            f"provide what they need ({hint}) or drop --strict",
            report,
        )
    if not report.with_status(BUILT):
        raise BuildFailed(
            "nothing could be built from this selection",
            f"{_failure_hint(failed)} (details above)" if failed else f"missing here: {hint or 'see the table'}",
            report,
        )


def source_rows_dropped(results: Iterable[DistributionResult]) -> dict[str, int]:
    """Rows each source's reader dropped (malformed lines, rows the normalizer refused), by source name."""
    return dict(sorted({name: n for r in results for name, n in r.rows_dropped.items()}.items()))


def _write_version(report: BuildReport, request: BuildRequest, inputs: dict[str, Any], plan: str) -> ExportResult:
    built = report.with_status(BUILT)
    catalog = request.catalog or shared_catalog()
    shifts = shifts_with_status(catalog.shifts_table(), {r.name for r in built}, _absent(report, catalog))
    all_rejects = [rej for r in built if r.context for rej in r.context.rejects]
    build_section = {
        "inputs": inputs,
        "plan_fingerprint": plan,
        "built_from": built_from(built),
        "limit": request.options.limit,
        "skipped": {
            r.name: {"kind": r.skip_kind, "reason": r.reason, **({"needs": r.needs} if r.needs else {})}
            for r in report.with_status(SKIPPED)
        },
    }
    if failed := report.with_status(FAILED):
        build_section["failed"] = {r.name: {"reason": r.reason} for r in failed}
    manifest_extra: dict[str, Any] = {"build": build_section, "source_rows_dropped": source_rows_dropped(built)}
    extra_files = {"rejects.jsonl": rejects_jsonl(all_rejects)} if all_rejects else {}
    used_keys = getattr(request.llm, "used_keys", None)
    if used_keys:
        from builders.llm.replay import EXPORT_FILE, export_requests

        data, rows = export_requests(request.llm.cache, used_keys)
        extra_files[EXPORT_FILE] = data
        manifest_extra["llm_requests"] = {"path": EXPORT_FILE, "sha256": hashlib.sha256(data).hexdigest(),
                                          "rows": rows}
    exports = [r.export or _export(r) for r in built]
    return export_version(
        request.out,
        request.dataset,
        report.version,
        exports,
        shifts,
        build_fingerprint=report.fingerprint,
        seed=request.options.seed,
        manifest_extra=manifest_extra,
        extra_files=extra_files,
        card_context={"notes": _card_notes(report.results), "reproduce": _reproduce(report, request),
                      "shortcut_audit": _shortcut_audit(exports)},
    )


def _absent(report: BuildReport, catalog: Catalog) -> dict[str, dict[str, str]]:
    """Why each distribution not in the version is absent: its skip or failure reason, or not selected."""
    reasons = {name: {"reason": NOT_SELECTED} for name in catalog.distributions}
    reasons.update({r.name: {"reason": r.reason} for r in report.results if r.status != BUILT})
    return reasons


def _shortcut_audit(exports: list[DistributionExport]) -> list[dict[str, Any]]:
    """The card's shortcut audit rows (`genies validate` reports the same rules with example ids), read
    from the tables about to be written."""
    from builders.validation.shortcuts import audit_tables, card_rows

    return card_rows(audit_tables({e.name: e.splits for e in exports}))


def _reproduce(report: BuildReport, request: BuildRequest) -> dict[str, Any]:
    """The command that built this version and the one that rebuilds it offline from its own LLM answers."""
    options = request.options
    train, test = options.sizes
    command = ["genies", "build", *request.names, "--seed", str(options.seed), "--train-size", str(train),
               "--test-size", str(test), *(["--limit", str(options.limit)] if options.limit else []),
               "--dataset", request.dataset, "--version", report.version]
    uses_llm = bool(getattr(request.llm, "used_keys", None))
    return {
        "genies_version": _package_version(),
        "command": " ".join(command),
        "replay_command": " ".join([*command, "--replay", "DIR_OR_ORG/NAME@REVISION", "--offline"]) if uses_llm else None,
    }
