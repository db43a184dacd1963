"""A static site for browsing one version: shifts, distributions, examples, validation and eval results.

The site is plain HTML, CSS and a little JavaScript, with no server and no network fetch, so it opens from
`file://` and can be uploaded beside the data. Layout of the output directory:

    index.html                     the categories and their shifts, headline figures, validation summary
    d/<distribution>.html          what it tests, its shape, its findings, and an example browser
    d/<distribution>/<split>-NNNN.js   the examples in chunks of CHUNK_ROWS
    s/<source>/<target>.html       a shift: source and target examples side by side, its eval row
    assets/                        site.css, site.js, and eval plots when `--eval` is given
    genies-site.json               what the site shows (version, content hash), marking the folder as a site

Why the chunks are `.js` files: browsers refuse `fetch()` of local files, but load a `<script src>` from
`file://`. Each chunk is one call, `geniesSite.chunk(key, rows)`, whose argument is the rows as JSON, so a
2,500-row distribution costs its page nothing until the reader pages or searches.

Every page is rendered from `templates/site/` with autoescaping, and the example browser writes text with
`textContent`, never as markup: example text is data, and a prompt holding `<script>` shows as text.

Validation findings are rendered generically, by check name, severity and scope (a distribution or a
`source->target` shift), so a new check appears on the site without a change here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from builders.catalog import Catalog
from builders.coverage import missing_reason, shift_status
from builders.errors import GeniesError
from builders.export import Version
from builders.folders import refuse_foreign_folder, written_whole
from builders.resources import TEMPLATES_DIR
from builders.templating import render_html

MARKER = "genies-site.json"
COMMAND = "genies site"
CHUNK_ROWS = 50
SIDE_BY_SIDE_ROWS = 5
SPLIT_ORDER = ("train", "test")
ASSETS = ("site.css", "site.js")
FINDING_FIELDS = ("count", "total", "examples", "detail")
EVAL_HEADLINE = {
    "source_accuracy": "source accuracy", "target_accuracy": "target accuracy",
    "zero_shot_accuracy": "zero-shot accuracy", "differential_elicitation": "differential elicitation",
    "target_ece": "target ECE", "energy_auroc": "energy AUROC",
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_EXAMPLE_COLUMNS = ("id", "group", "prompt", "responses", "preferred", "meta", "provenance")


@dataclass(frozen=True)
class SiteResult:
    path: Path
    pages: int
    files: int
    bytes: int
    examples: int
    seconds: float


def file_name(name: str) -> str:
    """A distribution or shift end as a path segment: the name itself when it is safe, else a slug + hash."""
    if _SAFE_NAME.fullmatch(name) and not name.startswith("."):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] + f"-{digest}"


def distribution_href(name: str) -> str:
    return f"d/{file_name(name)}.html"


def shift_href(source: str, target: str) -> str:
    return f"s/{file_name(source)}/{file_name(target)}.html"


def shift_rows(version: Version, catalog: Catalog) -> list[dict[str, Any]]:
    """The version's shifts, then every catalog shift it lacks (a version may export only built shifts)."""
    built = set(version.distributions)
    skipped = version.manifest.get("build", {}).get("skipped", {})
    rows = version.shifts().to_pylist()
    seen = {(r["source"], r["target"]) for r in rows}
    catalog_rows = [s.to_dict() for s in catalog.shifts if s.target not in catalog.members or s.target in built]
    rows += [r for r in catalog_rows if (r["source"], r["target"]) not in seen]
    for row in rows:
        row["name"] = f"{row['source']}->{row['target']}"
        row["status"] = shift_status(row, built, skipped)
        row["built"] = row["status"] == "built"
        row["href"] = shift_href(row["source"], row["target"])
        row["benchmarks"] = list(row.get("benchmarks") or [])
    return rows


def categories_with_shifts(rows: list[dict[str, Any]], catalog: Catalog) -> list[dict[str, Any]]:
    """Shift rows grouped by category, in catalog order, then any category the catalog does not know."""
    order = list(catalog.categories)
    names = sorted({r["category"] for r in rows}, key=lambda c: (order.index(c) if c in order else len(order), c))
    return [
        {
            "name": name,
            "label": catalog.categories[name].label if name in catalog.categories else "",
            "description": catalog.categories[name].description if name in catalog.categories else "",
            "shifts": [r for r in rows if r["category"] == name],
        }
        for name in names
    ]


def findings_by_scope(validation: Mapping[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Every check's verdict per scope (distribution or shift): failing ones with their finding, any check,
    any severity, and any extra field a check adds to its findings."""
    scoped: dict[str, list[dict[str, Any]]] = {}
    for check in (validation or {}).get("checks", []):
        for scope, finding in check.get("findings", {}).items():
            scoped.setdefault(scope, []).append({
                "check": check["name"], "severity": check.get("severity", ""),
                "description": check.get("description", ""),
                **{k: finding.get(k) for k in FINDING_FIELDS},
                "extra": {k: v for k, v in finding.items() if k not in FINDING_FIELDS},
            })
    return scoped


def check_summaries(validation: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"name": c["name"], "severity": c.get("severity", ""), "status": c.get("status", ""),
         "description": c.get("description", ""), "count": c.get("count", 0), "scopes": sorted(c.get("findings", {}))}
        for c in (validation or {}).get("checks", [])
    ]


def _version_id(version: Version) -> dict[str, Any]:
    manifest = version.manifest
    return {"dataset": manifest.get("dataset"), "version": manifest.get("version"),
            "content_sha256": manifest.get("content_sha256"), "path": str(version.path)}


def check_matches_version(what: str, source: Path, content_sha256: str | None, version: Version) -> None:
    """Refuse results computed on another version: a site must not pair one version's data with another's."""
    expected = version.manifest.get("content_sha256")
    if content_sha256 and expected and content_sha256 != expected:
        raise GeniesError(
            f"{what} {source} is for content {content_sha256[:12]}, but {version.path} has {expected[:12]}",
            f"rerun it on {version.path}, or leave the option out",
        )


def read_validation(path: Path, version: Version) -> dict[str, Any]:
    """A `genies validate --json` document for this version."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GeniesError(f"cannot read validation results {path}: {exc}",
                          "pass the file written by `genies validate VERSION --json FILE`") from exc
    if not isinstance(report, dict) or "checks" not in report:
        raise GeniesError(f"{path} is not a `genies validate --json` document (no `checks`)",
                          "pass the file written by `genies validate VERSION --json FILE`")
    check_matches_version("validation results", path, report.get("version", {}).get("content_sha256"), version)
    return report


@dataclass
class EvalResults:
    rows: list[dict[str, Any]]
    scorer: str
    plots: list[Path]

    def by_shift(self) -> dict[str, dict[str, Any]]:
        return {r["shift"]: r for r in self.rows}

    def headline(self) -> dict[str, Any]:
        done = [r for r in self.rows if r.get("status") == "ok"]
        means = {}
        for column, label in EVAL_HEADLINE.items():
            values = [r[column] for r in done if r.get(column) is not None]
            means[label] = sum(values) / len(values) if values else None
        return {"scorer": self.scorer, "evaluated": len(done), "selected": len(self.rows), "means": means}


def read_eval(directory: Path, version: Version) -> EvalResults:
    """The output folder of `genies eval` for this version: results.json, and the plots beside it."""
    directory = Path(directory)
    results, parquet = directory / "results.json", directory / "results.parquet"
    if not results.exists():
        raise GeniesError(f"no results.json in {directory}", "pass the --out folder of `genies eval VERSION`")
    document = json.loads(results.read_text())
    rows = document["rows"] if isinstance(document, dict) else document  # a list before coverage was recorded
    meta = (pq.read_schema(parquet).metadata or {}) if parquet.exists() else {}
    content = meta.get(b"genies.content_sha256", b"").decode() or None
    check_matches_version("eval results", directory, content, version)
    scorer = meta.get(b"genies.scorer", b"").decode() or next((r.get("scorer") for r in rows if r.get("scorer")), "")
    return EvalResults(rows, scorer or "", sorted(directory.glob("*.png")))


def _provenance(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (value or {}).items() if v not in (None, "", [])}


def example_rows(table: pa.Table) -> list[dict[str, Any]]:
    """What the example browser shows of each record: text, labels, id, group, meta and provenance."""
    rows = table.select([c for c in _EXAMPLE_COLUMNS if c in table.column_names]).to_pylist()
    for row in rows:
        row["provenance"] = _provenance(row.get("provenance"))
    return rows


def _ordered_splits(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def version_splits(version: Version, name: str) -> list[str]:
    folder = version.path / "distributions" / name
    return _ordered_splits(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.arrow")))


def write_chunks(table: pa.Table, key: str, folder: Path, split: str) -> int:
    """The split's examples as `<split>-NNNN.js` chunk files; returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, start in enumerate(range(0, table.num_rows, CHUNK_ROWS), start=1):
        rows = example_rows(table.slice(start, CHUNK_ROWS))
        chunk_key = json.dumps(f"{key}/{split}/{count - 1}")
        payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
        (folder / f"{split}-{count - 1:04d}.js").write_text(f"geniesSite.chunk({chunk_key},{payload});\n")
    return count


def shape(tables: Mapping[str, pa.Table]) -> dict[str, Any]:
    """Rows per split, how many responses the examples have, and where the preferred one sits."""
    k: Counter[int] = Counter()
    positions: Counter[int] = Counter()
    for table in tables.values():
        k.update(pc.list_value_length(table["responses"]).to_pylist())
        positions.update(table["preferred"].to_pylist())
    total = sum(k.values()) or 1
    return {
        "rows": {split: t.num_rows for split, t in tables.items()},
        "responses": [{"k": n, "count": c, "share": c / total} for n, c in sorted(k.items())],
        "positions": [{"position": p, "count": c, "share": c / total} for p, c in sorted(positions.items())],
    }


@dataclass
class SiteContext:
    """Everything the pages are rendered from."""

    version: Version
    catalog: Catalog
    shifts: list[dict[str, Any]]
    validation: dict[str, Any] | None
    evaluation: EvalResults | None

    @cached_property
    def findings(self) -> dict[str, list[dict[str, Any]]]:
        return findings_by_scope(self.validation)

    def shifts_of(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.shifts if name in (s["source"], s["target"], s.get("target_reference"))]

    def describe(self, name: str) -> dict[str, Any]:
        info = self.catalog.distributions.get(name)
        summary = self.version.manifest.get("distributions", {}).get(name, {})
        return {
            "name": name,
            "description": info.description if info else "",
            "build": info.build if info else "",
            "in_catalog": info is not None,
            "sources": summary.get("sources", []),
            "licenses": summary.get("licenses", []),
            "llm_models": summary.get("llm_models", []),
        }


def _page(out: Path, href: str, template: str, **context: Any) -> None:
    depth = href.count("/")
    path = out / href
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(template, root="../" * depth, **context))


def _browser(name: str, chunks: Mapping[str, int], rows: Mapping[str, int], root: str,
             split: str = "") -> dict[str, Any]:
    """What an example browser element needs: where the chunks are, how many each split has, which to show."""
    shown = split if split in chunks else next(iter(chunks), "")
    return {"dist": name, "base": f"{root}d/{file_name(name)}", "chunks": dict(chunks), "rows": dict(rows),
            "split": shown}


def write_distribution(ctx: SiteContext, out: Path, name: str) -> tuple[dict[str, Any], int]:
    """A distribution's page and chunk files; returns its row in the home page's list and its example count."""
    tables = {split: ctx.version.table(name, split) for split in version_splits(ctx.version, name)}
    folder = out / "d" / file_name(name)
    chunks = {split: write_chunks(table, name, folder, split) for split, table in tables.items()}
    info = ctx.describe(name)
    dist_shape = shape(tables)
    findings = ctx.findings.get(name, [])
    _page(out, distribution_href(name), "site/distribution.html.j2", version=_version_id(ctx.version), dist=info,
          shape=dist_shape, findings=findings, checks=check_summaries(ctx.validation),
          shifts=ctx.shifts_of(name), browser=_browser(name, chunks, dist_shape["rows"], "../"),
          validated=ctx.validation is not None)
    row = {**info, "href": distribution_href(name), "rows": dist_shape["rows"], "chunks": chunks,
           "failing": sorted({f["check"] for f in findings})}
    return row, sum(t.num_rows for t in tables.values())


def write_shift(ctx: SiteContext, out: Path, shift: dict[str, Any], written: Mapping[str, dict[str, Any]]) -> None:
    """A shift's page: its two ends side by side (or why one is missing), its findings and its eval row."""
    skipped = ctx.version.manifest.get("build", {}).get("skipped", {})
    sides = []
    for role in ("source", "target"):
        name, dist = shift[role], written.get(shift[role])
        sides.append({
            "role": role, "name": name, "href": dist["href"] if dist else None,
            "browser": _browser(name, dist["chunks"], dist["rows"], "../../", "train" if role == "source" else "test")
            if dist else None,
            "reason": None if dist else missing_reason(name, skipped),
        })
    evaluation = ctx.evaluation.by_shift().get(shift["name"]) if ctx.evaluation else None
    _page(out, shift["href"], "site/shift.html.j2", version=_version_id(ctx.version), shift=shift, sides=sides,
          findings=ctx.findings.get(shift["name"], []), evaluation=evaluation, eval_columns=EVAL_HEADLINE,
          plots=_plot_hrefs(ctx.evaluation), rows_shown=SIDE_BY_SIDE_ROWS, validated=ctx.validation is not None)


def _plot_hrefs(evaluation: EvalResults | None) -> list[str]:
    return [f"assets/eval/{p.name}" for p in evaluation.plots] if evaluation else []


def write_assets(out: Path, evaluation: EvalResults | None) -> None:
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        shutil.copyfile(TEMPLATES_DIR / "site" / name, assets / name)
    for plot in evaluation.plots if evaluation else []:
        (assets / "eval").mkdir(exist_ok=True)
        shutil.copyfile(plot, assets / "eval" / plot.name)


def _render_site(ctx: SiteContext, out: Path) -> int:
    write_assets(out, ctx.evaluation)
    dist_rows, examples = [], 0
    for name in ctx.version.distributions:
        row, rows = write_distribution(ctx, out, name)
        dist_rows.append(row)
        examples += rows
    written = {row["name"]: row for row in dist_rows}
    for shift in ctx.shifts:
        write_shift(ctx, out, shift, written)
    summary = (ctx.validation or {}).get("summary")
    _page(out, "index.html", "site/index.html.j2", version=_version_id(ctx.version),
          categories=categories_with_shifts(ctx.shifts, ctx.catalog), distributions=dist_rows,
          shifts_built=sum(s["built"] for s in ctx.shifts), shifts_total=len(ctx.shifts),
          examples=examples, split_rows=_split_totals(dist_rows), validation=summary,
          checks=check_summaries(ctx.validation), other_findings=_unscoped(ctx),
          evaluation=ctx.evaluation.headline() if ctx.evaluation else None, plots=_plot_hrefs(ctx.evaluation))
    (out / MARKER).write_text(json.dumps({**_version_id(ctx.version), "distributions": len(dist_rows),
                                          "shifts": len(ctx.shifts), "examples": examples}, indent=2) + "\n")
    return examples


def _split_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for row in rows:
        totals.update(row["rows"])
    return {split: totals[split] for split in _ordered_splits(totals)}


def _unscoped(ctx: SiteContext) -> dict[str, list[dict[str, Any]]]:
    """Findings whose scope is neither a distribution of the version nor a shift on the site."""
    known = set(ctx.version.distributions) | {s["name"] for s in ctx.shifts}
    return {scope: f for scope, f in ctx.findings.items() if scope not in known}


def build_site(
    version: Version,
    out: Path,
    catalog: Catalog,
    *,
    validation: dict[str, Any] | None = None,
    evaluation: EvalResults | None = None,
) -> SiteResult:
    """Write the site for `version` into `out`, atomically: a temporary folder renamed into place."""
    started = time.perf_counter()
    out = Path(out)
    refuse_foreign_folder(out, MARKER, COMMAND)
    catalog.include(version.distributions)
    ctx = SiteContext(version, catalog, shift_rows(version, catalog), validation, evaluation)
    with written_whole(out, MARKER, COMMAND) as tmp:
        examples = _render_site(ctx, tmp)
        files = [p for p in tmp.rglob("*") if p.is_file()]
        pages, size = sum(p.suffix == ".html" for p in files), sum(p.stat().st_size for p in files)
    return SiteResult(out, pages, len(files), size, examples, time.perf_counter() - started)
