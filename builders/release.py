"""Import the original GENIES release into the canonical schema.

The release has one folder per distribution with `metadata.json`, `train.json` and `test.json`; each
example holds `prompt`, `responses` as an ordered `{text: score}` object with exactly one 1.0, and
distribution-specific fields. The import is faithful: response order, duplicates, odd prompts and every
other defect are kept as published, so `genies validate` can measure them and `genies repair` can fix them
with a changelog. Only what cannot be represented (an unreadable file, an example without exactly one
preferred response) is skipped, and always reported with its file and index.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from builders.catalog import Catalog, load_catalog
from builders.coverage import shifts_with_status
from builders.errors import GeniesError
from builders.export import (
    DistributionExport,
    ExportResult,
    export_version,
    sha256_file,
)
from builders.schema import (
    RECORD_SCHEMA,
    canonical_json,
    content_id,
    table_from_columns,
)
from builders.text import content_group_key, group_key

SPLITS = ("train", "test")
METADATA_FILES = ("metadata.json",)
RELEASE_SOURCE = "genies-release"
COLUMN_FIELDS = ("instruction", "input")
_GROUP_FIELDS = ("instruction", "quote", "statement", "post_content", "instruction_prompt", "prompt")


@dataclass
class Problem:
    """Something skipped during import: which file, which example (index), and why."""

    path: str
    reason: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "index": self.index, "reason": self.reason}


@dataclass
class ImportReport:
    distributions: dict[str, dict[str, int]] = field(default_factory=dict)
    stray: list[Problem] = field(default_factory=list)
    malformed: list[Problem] = field(default_factory=list)
    not_in_catalog: list[str] = field(default_factory=list)
    missing_from_release: list[str] = field(default_factory=list)
    shifts_diff: dict[str, Any] | None = None
    result: ExportResult | None = None

    @property
    def examples_skipped(self) -> int:
        return sum(p.index is not None for p in self.malformed)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.reason.split(":")[0] for p in self.malformed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "distributions": self.distributions,
            "stray_files": [p.to_dict() for p in self.stray],
            "malformed": [p.to_dict() for p in self.malformed],
            "examples_skipped_by_reason": self.skipped_by_reason(),
            "not_in_catalog": self.not_in_catalog,
            "catalog_distributions_missing_from_release": self.missing_from_release,
            "shifts_diff": self.shifts_diff,
        }


def _group_key(example: dict[str, Any]) -> str:
    """A key shared by examples about the same item, even across distributions with other templates."""
    for name in _GROUP_FIELDS:
        value = example.get(name)
        if isinstance(value, str) and value.strip():
            return content_group_key(RELEASE_SOURCE, name, value)
    return group_key(RELEASE_SOURCE, "unknown")


def _template_of(example: dict[str, Any], distribution: str) -> str:
    fmt = example.get("prompt_format")
    if not isinstance(fmt, str):
        return f"release/{distribution}"
    return _format_template(distribution, fmt)


@functools.lru_cache(maxsize=256)
def _format_template(distribution: str, fmt: str) -> str:
    """The template id of a prompt format; a distribution's examples share a handful, so each is hashed once."""
    return f"release/{distribution}@{hashlib.sha256(fmt.encode('utf-8')).hexdigest()[:12]}"


class _DuplicateKeys(dict):
    """A JSON object that remembers whether the file repeated one of its keys."""

    duplicated = False


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A plain dict (the common case, and the cheapest), or a `_DuplicateKeys` where a key repeats."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _DuplicateKeys(pairs)
    marked.duplicated = True
    return marked


def _read_json(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply to read (thousands of levels; no release example is)") from exc


_NUMBERS = {int, float}  # JSON numbers decode to exactly these types (true and false to bool, which is none)


def _example_problem(example: Any) -> str | None:
    if not isinstance(example, dict):
        return f"not an object: example is a {type(example).__name__}"
    if not isinstance(example.get("prompt"), str):
        return "missing prompt: no string 'prompt' field"
    responses = example.get("responses")
    if not isinstance(responses, dict):
        return "bad responses: 'responses' is not a {text: score} object"
    if getattr(responses, "duplicated", False):
        return "duplicate response text: the same response appears twice in 'responses'"
    if len(responses) < 2:
        return f"too few responses: {len(responses)}"
    scores = list(responses.values())
    if not set(map(type, scores)) <= _NUMBERS:
        return "bad scores: a response score is not a number"
    if scores.count(1) != 1:
        return f"not exactly one preferred: {scores.count(1)} responses scored 1.0"
    return None


_COLUMNS = ("id", "distribution", "prompt", "responses", "preferred", "instruction", "input", "template", "group",
            "meta")


def _example_row(example: dict[str, Any], distribution: str) -> tuple[Any, ...]:
    """One release example as the values of `_COLUMNS`; everything distribution-specific goes to `meta`."""
    prompt = example["prompt"]
    responses = list(example["responses"])
    preferred = list(example["responses"].values()).index(1)
    meta = dict(example)
    del meta["prompt"], meta["responses"]
    columns = {name: meta.pop(name) for name in COLUMN_FIELDS if isinstance(meta.get(name), str)}
    return (content_id(distribution, prompt, responses, preferred), distribution, prompt, responses, preferred,
            columns.get("instruction"), columns.get("input"), _template_of(example, distribution),
            _group_key(example), _meta_json(meta))


def _meta_json(meta: dict[str, Any]) -> str:
    """`canonical_json(meta)`; a meta that is only a prompt format, as half the release's are, is encoded once
    per format (a distribution's examples share a handful)."""
    if len(meta) == 1 and isinstance(meta.get("prompt_format"), str):
        return _format_meta(meta["prompt_format"])
    return canonical_json(meta)


@functools.lru_cache(maxsize=256)
def _format_meta(fmt: str) -> str:
    return canonical_json({"prompt_format": fmt})


def examples_to_table(examples: list[tuple[int, dict[str, Any]]], distribution: str, split: str,
                      revision: str) -> pa.Table:
    """A split's valid examples (each with its index in the file) as a `RECORD_SCHEMA` table, built column
    by column without a `Record` per example: on a full release the records and their conversion cost more
    than everything else the import does. Each id is hashed once."""
    rows = [_example_row(example, distribution) for _, example in examples]
    columns = {name: list(values) for name, values in zip(_COLUMNS, zip(*rows))} if rows else {n: [] for n in _COLUMNS}
    count = len(rows)
    provenance = {
        "source": [RELEASE_SOURCE] * count,
        "revision": [revision] * count,
        "row_key": [f"{distribution}/{split}/{index}" for index, _ in examples],
        "llm_model": [None] * count,
        "llm_requests": [[]] * count,
    }
    return table_from_columns(columns, provenance)


def _read_split(path: Path, distribution: str, split: str, report: ImportReport) -> pa.Table:
    rel = f"{distribution}/{path.name}"
    try:
        data = _read_json(path)
    except ValueError as exc:
        report.malformed.append(Problem(rel, f"unreadable file: {exc}"))
        return RECORD_SCHEMA.empty_table()
    if not isinstance(data, list):
        report.malformed.append(Problem(rel, f"unreadable file: top level is a {type(data).__name__}, not a list"))
        return RECORD_SCHEMA.empty_table()
    valid = []
    for index, example in enumerate(data):
        problem = _example_problem(example)
        if problem:
            report.malformed.append(Problem(rel, problem, index))
            continue
        valid.append((index, example))
    return examples_to_table(valid, distribution, split, f"sha256:{sha256_file(path)}")


def _read_metadata(folder: Path, report: ImportReport) -> dict[str, Any]:
    path = folder / "metadata.json"
    if not path.exists():
        return {}
    try:
        data = _read_json(path)
    except ValueError as exc:
        report.malformed.append(Problem(f"{folder.name}/metadata.json", f"unreadable file: {exc}"))
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _distribution_dirs(root: Path) -> list[Path]:
    base = root / "distributions" if (root / "distributions").is_dir() else root
    folders = [p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")
               and any((p / f"{split}.json").exists() for split in SPLITS)]
    if not folders:
        raise GeniesError(
            f"{root} does not look like a GENIES release (no <distribution>/train.json or test.json found)",
            "pass the release folder that holds distributions/ (or the distribution folders themselves)",
        )
    return folders


def _missing_splits(folder: Path) -> list[Problem]:
    """A distribution folder with one split file but not the other: an error of the import, reported like
    an unreadable file, so the empty split it leaves is never mistaken for an empty upstream split."""
    return [Problem(f"{folder.name}/{split}.json", "missing split file: the release folder has no such file")
            for split in SPLITS if not (folder / f"{split}.json").is_file()]


def _stray_reason(path: Path) -> str:
    if path.is_dir():
        return "stray: sub-folder, not part of the release layout"
    if path.name.startswith(".") or path.suffix in (".swp", ".swo", ".bak", "~"):
        return "stray: hidden or editor file"
    if "copy" in path.stem.lower():
        return "stray: a copy of a split file, not a split"
    return "stray: extra file, not train.json, test.json or metadata.json"


def _stray_entries(folder: Path) -> list[Problem]:
    expected = {"train.json", "test.json", *METADATA_FILES}
    return [
        Problem(f"{folder.name}/{p.name}" + ("/" if p.is_dir() else ""), _stray_reason(p))
        for p in sorted(folder.iterdir())
        if p.name not in expected
    ]


def _shift_key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry.get("source", ""), entry.get("target", "")


def compare_release_shifts(shifts_dir: Path, catalog: Catalog) -> dict[str, Any]:
    """Differences between the release's distribution_shifts/ files and our catalog."""
    def load(rel: str) -> list[dict[str, Any]]:
        path = shifts_dir / rel
        return [dict(e) for e in _read_json(path)] if path.exists() else []

    release_all = {_shift_key(e): e for e in load("all.json")}
    for label in ("extreme", "probing"):
        folder = shifts_dir / label
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.stem == "all":
                continue
            for entry in load(f"{label}/{path.name}"):
                info = release_all.setdefault(_shift_key(entry), dict(entry))
                info.update({"category": path.stem, "label": label})
    genies = {_shift_key(e) for e in load("GENIES.json")}
    ours = {(s.source, s.target): s for s in catalog.shifts}
    differences = []
    for key in sorted(set(ours) & set(release_all)):
        theirs, mine = release_all[key], ours[key]
        for attr in ("category", "label", "target_reference"):
            if attr in theirs and theirs.get(attr) != getattr(mine, attr):
                differences.append({"shift": f"{key[0]}->{key[1]}", "field": attr,
                                    "release": theirs.get(attr), "catalog": getattr(mine, attr)})
        if (key in genies) != ("genies" in mine.benchmarks):
            differences.append({"shift": f"{key[0]}->{key[1]}", "field": "genies benchmark",
                                "release": key in genies, "catalog": "genies" in mine.benchmarks})
    for entry in load("GENIES.json"):
        mine = ours.get(_shift_key(entry))
        if mine is not None and entry.get("label") not in (None, mine.label):
            differences.append({"shift": mine.name, "field": "label (GENIES.json)",
                                "release": entry.get("label"), "catalog": mine.label})
    return {
        "release_entries": len(load("all.json")),
        "release_unique": len(release_all),
        "only_in_release": [f"{s}->{t}" for s, t in sorted(set(release_all) - set(ours))],
        "only_in_catalog": [f"{s}->{t}" for s, t in sorted(set(ours) - set(release_all))],
        "differences": differences,
    }


def import_release(
    release_dir: Path,
    out_root: Path,
    version: str,
    *,
    dataset: str = "genies-release",
    progress: Any = None,
) -> ImportReport:
    """Read a GENIES release folder and export it as a version; returns what was read, skipped and why."""
    release_dir = Path(release_dir)
    if not release_dir.is_dir():
        raise GeniesError(f"release folder {release_dir} does not exist", "pass the folder holding distributions/")
    catalog = load_catalog().without_members()
    report = ImportReport()
    exports = []
    folders = _distribution_dirs(release_dir)
    for folder in folders:
        report.stray.extend(_stray_entries(folder))
        report.malformed.extend(_missing_splits(folder))
        metadata = _read_metadata(folder, report)
        splits = {split: _read_split(folder / f"{split}.json", folder.name, split, report)
                  if (folder / f"{split}.json").is_file() else RECORD_SCHEMA.empty_table() for split in SPLITS}
        report.distributions[folder.name] = {s: len(r) for s, r in splits.items()}
        if folder.name not in catalog.distributions:
            report.not_in_catalog.append(folder.name)
        exports.append(DistributionExport(
            name=folder.name,
            splits=splits,
            sources={RELEASE_SOURCE: {"revision": "", "license": ""}},
            notes={"release_metadata": metadata} if metadata else {},
        ))
        if progress is not None:
            progress(folder.name)
    report.missing_from_release = sorted(set(catalog.distributions) - set(report.distributions))
    shifts_dir = release_dir / "distribution_shifts"
    if shifts_dir.is_dir():
        report.shifts_diff = compare_release_shifts(shifts_dir, catalog)
    report.result = export_version(
        out_root, dataset, version, exports, shifts_with_status(catalog.shifts_table(), set(report.distributions), {}),
        manifest_extra={"import": {"release_dir": str(release_dir.resolve()), **report.to_dict()}},
    )
    return report
