"""`genies export`: a version's distributions in the layouts that TRL, RewardBench and RewardBench 2 read.

One file set per distribution and split, each loadable with `datasets.load_dataset`:

- `trl`: `explicit/<dist>/<split>.parquet` with `prompt`, `chosen`, `rejected` as strings (TRL's standard
  explicit-prompt preference format; `RewardTrainer` joins prompt and response itself), and
  `implicit/<dist>/<split>.parquet` with `chosen` and `rejected` as whole conversations, chat-message lists
  of the user's prompt and the assistant's response (TRL's conversational implicit-prompt format, which
  needs a tokenizer with a chat template).
- `rewardbench`: `<dist>/<split>.jsonl` with `prompt` as a one-message chat list, `chosen` and `rejected`
  as strings, `subset` and `id`: the first schema RewardBench's custom-dataset loader takes
  (`rewardbench --dataset FILE --load_json`).
- `rewardbench2`: `<dist>/<split>.parquet`, one best-of-N row per example: `prompt`, `chosen` (a list
  holding the preferred response), `rejected` (the others), `num_correct`, `num_incorrect`,
  `total_completions`, `subset`, `id`, as in RewardBench 2's own dataset.
- `jsonl`: `<dist>/<split>.jsonl`, our records as they are.

Pairs come from `builders.schema.pairwise_view`: one row per (preferred, dispreferred) response. Every
export has a README naming the version, its content hash and the command, and is written whole: a
temporary folder renamed into place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from builders.catalog import Catalog
from builders.errors import GeniesError, check_name
from builders.export import Version
from builders.folders import written_whole
from builders.schema import pairwise_view
from builders.templating import render

MARKER = "genies-export.json"
COMMAND = "genies export"
SPLITS = ("train", "test")

Message = dict[str, str]


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def trl_explicit(table: pa.Table, subset: str) -> list[dict[str, Any]]:
    view = pairwise_view(table).to_pylist()
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "id": r["id"]} for r in view]


def trl_implicit(table: pa.Table, subset: str) -> list[dict[str, Any]]:
    return [
        {"chosen": [user(r["prompt"]), assistant(r["chosen"])],
         "rejected": [user(r["prompt"]), assistant(r["rejected"])], "id": r["id"]}
        for r in pairwise_view(table).to_pylist()
    ]


def rewardbench(table: pa.Table, subset: str) -> list[dict[str, Any]]:
    return [
        {"prompt": [user(r["prompt"])], "chosen": r["chosen"], "rejected": r["rejected"], "subset": subset,
         "id": f"{r['id']}-{i}"}
        for i, r in enumerate(pairwise_view(table).to_pylist())
    ]


def rewardbench2(table: pa.Table, subset: str) -> list[dict[str, Any]]:
    rows = []
    for record in table.select(["id", "prompt", "responses", "preferred"]).to_pylist():
        responses, preferred = record["responses"], record["preferred"]
        rows.append({
            "id": record["id"], "prompt": record["prompt"], "chosen": [responses[preferred]],
            "rejected": [r for i, r in enumerate(responses) if i != preferred], "num_correct": 1,
            "num_incorrect": len(responses) - 1, "total_completions": len(responses), "subset": subset,
        })
    return rows


def records(table: pa.Table, subset: str) -> list[dict[str, Any]]:
    return table.to_pylist()


Convert = Callable[[pa.Table, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Layout:
    """One file set of a format: a folder under the output, a file suffix, and how rows are made."""

    folder: str
    suffix: str
    convert: Convert


FORMATS: dict[str, tuple[Layout, ...]] = {
    "trl": (Layout("explicit", "parquet", trl_explicit), Layout("implicit", "parquet", trl_implicit)),
    "rewardbench": (Layout("", "jsonl", rewardbench),),
    "rewardbench2": (Layout("", "parquet", rewardbench2),),
    "jsonl": (Layout("", "jsonl", records),),
}


def write_rows(rows: list[dict[str, Any]], path: Path, suffix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == "jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


def selection(version: Version, catalog: Catalog, *, distributions: Iterable[str] = (), shift: str | None = None,
              benchmark: str | None = None) -> tuple[list[str], list[str]]:
    """(distributions to export, distributions the selection names that the version lacks)."""
    named = [n.strip() for n in distributions if n.strip()]
    if sum(bool(x) for x in (named, shift, benchmark)) > 1:
        raise GeniesError("--distributions, --shift and --benchmark each choose what to export; pass one",
                          "leave all three out to export every distribution of the version")
    present = version.distributions
    if shift or benchmark:
        chosen = catalog.select_shifts(benchmark=benchmark, names=[shift] if shift else ())
        wanted = catalog.distributions_in(chosen)
    else:
        wanted = [check_name(n, present, "distribution") for n in named] or present
    found = [n for n in wanted if n in present]
    missing = [n for n in wanted if n not in present]
    if not found:
        raise GeniesError(f"none of {', '.join(wanted)} is in {version.path}",
                          f"the version holds: {', '.join(present)}")
    return found, missing


@dataclass(frozen=True)
class ExportedFile:
    path: str
    distribution: str
    split: str
    rows: int


def export_downstream(version: Version, fmt: str, names: list[str], out: Path, command: str, *,
                      missing: Iterable[str] = ()) -> list[ExportedFile]:
    """Write `names` of `version` in format `fmt` under `out`, with a README (naming `command`, the command
    line that reproduces the export) and a marker file."""
    layouts = FORMATS[check_name(fmt, FORMATS, "format")]
    written = []
    with written_whole(out, MARKER, COMMAND) as tmp:
        for name in names:
            for split in SPLITS:
                table = version.table(name, split)
                for layout in layouts:
                    rel = Path(layout.folder, name, f"{split}.{layout.suffix}").as_posix()
                    rows = layout.convert(table, name)
                    write_rows(rows, tmp / rel, layout.suffix)
                    written.append(ExportedFile(rel, name, split, len(rows)))
        manifest = version.manifest
        about = {"dataset": manifest.get("dataset"), "version": manifest.get("version"),
                 "content_sha256": manifest.get("content_sha256"), "path": str(version.path), "format": fmt,
                 "command": command, "missing": sorted(missing), "files": {f.path: f.rows for f in written}}
        (tmp / "README.md").write_text(render("export/README.md.j2", about=about, files=written,
                                              layouts=layouts, example=written[0]))
        (tmp / MARKER).write_text(json.dumps(about, indent=2) + "\n")
    return written
