"""`genies sources list|pull|verify|lock`: the raw upstream datasets, their licenses, mirrors and cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from builders.cli.common import console, print_json, summary_table
from builders.errors import GeniesError
from builders.sources import (
    SourceSpec,
    SourceUnavailable,
    cached_entry,
    list_sources,
    load_source,
    lock_checksums,
    mirror_dirs,
    raw_schema,
    source_available,
    source_spec,
    verify_source,
)
from builders.sources.fetch import MIRROR_HINT
from builders.sources.mirror import MIRROR_ENV, holding_mirror
from builders.sources.spec import format_checksum_file

sources_app = typer.Typer(
    help=(
        "Raw upstream datasets: list them, pull them into the cache, verify a mirror's checksums.\n\n"
        "Example: [bold]genies sources pull --mirror ../shared/sources[/]"
    ),
    no_args_is_help=True,
)

MirrorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mirror", help=f"Directory holding upstream files (repeatable; default ${MIRROR_ENV}).", show_default=False
    ),
]
CacheOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Raw-table cache (default $GENIES_CACHE or ~/.cache/genies/sources).")
]
NamesArgument = Annotated[list[str] | None, typer.Argument(help="Source names (default: all).", show_default=False)]


def _selected(names: list[str] | None) -> list[SourceSpec]:
    return [source_spec(n) for n in names] if names else list_sources()


def _splits_text(rows_per_split: dict[str, int] | None) -> str:
    if not rows_per_split:
        return "-"
    return ", ".join(f"{split} {rows:,}" for split, rows in rows_per_split.items())


def _describe(spec: SourceSpec, mirrors: list[Path], cache_dir: Path | None) -> dict[str, Any]:
    entry = cached_entry(spec, cache_dir)
    meta = entry.meta() if entry else {}
    holder = holding_mirror(spec, mirrors)
    return {
        **spec.to_dict(),
        "revision": meta.get("revision") or spec.revision or None,
        "cached": entry is not None,
        "rows": meta.get("rows"),
        "rows_per_split": meta.get("rows_per_split"),
        "rejected_rows": (meta.get("rejects") or {}).get("total"),
        "verified": meta.get("verified"),
        "in_mirror": str(holder) if holder else None,
        "columns": {f.name: str(f.type) for f in raw_schema(spec.name)},
    }


def list_command(
    mirror: MirrorOption = None,
    cache_dir: CacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every source: license, rows per split (once pulled), cache state and pinned revision.

    Example: [bold]genies sources list --mirror ../shared/sources[/]
    """
    mirrors = mirror_dirs(mirror)
    described = [_describe(spec, mirrors, cache_dir) for spec in list_sources()]
    if as_json:
        print_json(described)
        return
    console.print(
        summary_table(
            f"Sources ({len(described)})",
            ["source", "license", "rows per split", "cached", "in mirror", "revision / checksum"],
            [
                (
                    d["name"],
                    d["license"],
                    _splits_text(d["rows_per_split"]),
                    "yes" if d["cached"] else "no",
                    "yes" if d["in_mirror"] else "no",
                    _revision_text(d["revision"], d["pinned"]),
                )
                for d in described
            ],
        )
    )


def _revision_text(revision: str | None, pinned: bool) -> str:
    if not revision:
        return "unpinned"
    return _short(revision) if pinned else f"{_short(revision)} (unpinned: content read)"


def _short(revision: str | None) -> str:
    return revision[:19] + "…" if revision and len(revision) > 20 else (revision or "")


def pull_command(
    names: NamesArgument = None,
    mirror: MirrorOption = None,
    cache_dir: CacheOption = None,
    offline: Annotated[bool, typer.Option(help="Never use the network; only mirrors and the cache.")] = False,
) -> None:
    """Load sources into the raw-table cache, from a mirror or (without one) from the upstream.

    Without NAMES, sources that no mirror holds are skipped, not failed, when a mirror is given.

    Example: [bold]genies sources pull --mirror ../shared/sources[/]
    """
    mirrors = mirror_dirs(mirror)
    results = []
    with _progress() as progress:
        task = progress.add_task("pulling sources", total=len(specs := _selected(names)))
        for spec in specs:
            progress.update(task, description=f"pulling {spec.name}")
            results.append(_pull_one(spec, mirrors, cache_dir, offline, explicit=bool(names)))
            progress.advance(task)
    console.print(
        summary_table(
            "Pulled sources", ["source", "status", "rows", "rejected rows", "revision / checksum", "seconds"], results
        )
    )
    failed = [r[0] for r in results if r[1].startswith("failed")]
    if failed:
        raise GeniesError(
            f"{len(failed)} source(s) failed: {', '.join(failed)}", f"see the status column; {MIRROR_HINT}"
        )


def _pull_one(spec: SourceSpec, mirrors: list[Path], cache_dir: Path | None, offline: bool, explicit: bool) -> tuple:
    started = time.perf_counter()
    if mirrors and not explicit and not source_available(spec.name, mirrors, cache_dir):
        return spec.name, "skipped: not in the mirror", "-", "-", _revision_text(spec.revision, spec.pinned), "-"
    try:
        loaded = load_source(spec.name, mirror=mirrors, cache_dir=cache_dir, offline=offline)
    except GeniesError as exc:
        return spec.name, f"failed: {exc.message}", "-", "-", _revision_text(spec.revision, spec.pinned), "-"
    status = "cached" if loaded.origin == "cache" else f"built from {loaded.origin}"
    rejected = (loaded.rejects or {}).get("total", 0)
    seconds = f"{time.perf_counter() - started:.2f}"
    revision = _revision_text(loaded.revision, spec.pinned)
    return spec.name, status, f"{loaded.table.num_rows:,}", str(rejected), revision, seconds


def verify_command(names: NamesArgument = None, mirror: MirrorOption = None) -> None:
    """Check mirrored files against the sha256 recorded in sources/<name>.sha256.

    Example: [bold]genies sources verify --mirror ../shared/sources[/]
    """
    mirrors = mirror_dirs(mirror)
    if not mirrors:
        raise GeniesError("no mirror to verify", f"pass --mirror DIR or set {MIRROR_ENV}")
    rows = []
    with _progress() as progress:
        task = progress.add_task("verifying", total=len(specs := _selected(names)))
        for spec in specs:
            progress.update(task, description=f"verifying {spec.name}")
            rows.append(_verify_one(spec, mirrors, explicit=bool(names)))
            progress.advance(task)
    console.print(summary_table("Mirror verification", ["source", "files", "status"], rows))
    bad = [r[0] for r in rows if r[2].startswith("FAILED")]
    if bad:
        raise GeniesError(
            f"{len(bad)} source(s) failed verification: {', '.join(bad)}", "restore the files named above"
        )


def _verify_one(spec: SourceSpec, mirrors: list[Path], explicit: bool) -> tuple[str, str, str]:
    if not explicit and holding_mirror(spec, mirrors) is None:
        return spec.name, "-", "skipped: not in the mirror"
    try:
        files = verify_source(spec.name, mirrors)
    except (GeniesError, OSError) as exc:
        return spec.name, "-", f"FAILED: {exc}"
    status = (
        "ok (sha256 verified)"
        if files.verified
        else f"unpinned: no checksums recorded; content {_short(files.revision)}"
    )
    return spec.name, str(len(files.relpaths)), status


def lock_command(
    names: Annotated[list[str], typer.Argument(help="Source names.")], mirror: MirrorOption = None
) -> None:
    """Record the sha256 of a source's mirrored files in sources/<name>.sha256 (for maintainers).

    Review the diff before committing: a changed checksum means a different upstream.

    Example: [bold]genies sources lock quotes --mirror ../shared/sources[/]
    """
    mirrors = mirror_dirs(mirror)
    rows = []
    for spec in map(source_spec, names):
        holder = holding_mirror(spec, mirrors)
        if holder is None or spec.spec_path is None:
            raise SourceUnavailable(
                f"source {spec.name!r}: no mirror holds its folder {spec.folder}/", "pass --mirror DIR"
            )
        checksums = lock_checksums(spec, holder)
        spec.spec_path.with_suffix(".sha256").write_text(format_checksum_file(checksums), encoding="utf-8")
        rows.append((spec.name, str(len(checksums)), str(spec.spec_path.with_suffix(".sha256"))))
    console.print(summary_table("Locked sources", ["source", "files", "written"], rows))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def register(app: typer.Typer) -> None:
    sources_app.command("list")(list_command)
    sources_app.command("pull")(pull_command)
    sources_app.command("verify")(verify_command)
    sources_app.command("lock")(lock_command)
    app.add_typer(sources_app, name="sources")
