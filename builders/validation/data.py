"""A whole version as one polars frame, plus the derived columns every check reads.

Checks never read Arrow files themselves: `load_version` memory-maps every split once, records what does
not match `RECORD_SCHEMA` (so the schema check can report it) and coerces the rest, so a version with a
broken column still gets every other check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from builders.export import Version
from builders.schema import RECORD_SCHEMA
from builders.text import response_key, text_key

DEFAULT_SPLITS = ("train", "test")
N_RESPONSES = pl.col("responses").list.len().fill_null(0)


@dataclass
class LoadedVersion:
    """Every example of a version (`frame`, one row per example with a `split` column) and its context."""

    version: Version
    frame: pl.DataFrame
    schema_problems: dict[str, list[str]] = field(default_factory=dict)
    reference: LoadedVersion | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute something several checks share (e.g. the overlap join) once per loaded version."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def manifest(self) -> dict:
        return self.version.manifest

    @property
    def distributions(self) -> list[str]:
        return self.version.distributions

    def shifts(self) -> list[dict]:
        if not (self.version.path / "shifts").is_dir():
            return []
        return self.version.shifts().to_pylist()


def splits_of(version: Version, name: str) -> list[str]:
    """The splits a distribution was saved with (its dataset_dict.json), train/test when it has none."""
    listing = version.path / "distributions" / name / "dataset_dict.json"
    if listing.exists():
        return list(json.loads(listing.read_text()).get("splits", DEFAULT_SPLITS))
    return list(DEFAULT_SPLITS)


def schema_differences(schema: pa.Schema) -> list[str]:
    """What separates a split's schema from `RECORD_SCHEMA`, in words."""
    problems = []
    for expected in RECORD_SCHEMA:
        if expected.name not in schema.names:
            problems.append(f"missing column {expected.name!r}")
        elif not schema.field(expected.name).type.equals(expected.type):
            problems.append(f"column {expected.name!r} is {schema.field(expected.name).type}, expected {expected.type}")
    problems += [f"unexpected column {name!r}" for name in schema.names if name not in RECORD_SCHEMA.names]
    return problems


def conform(table: pa.Table) -> pa.Table:
    """The table with exactly `RECORD_SCHEMA`: castable columns cast, missing or broken ones null."""
    columns = []
    for expected in RECORD_SCHEMA:
        if expected.name in table.column_names:
            try:
                columns.append(table.column(expected.name).cast(expected.type))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        columns.append(pa.nulls(table.num_rows, expected.type))
    return pa.Table.from_arrays(columns, schema=RECORD_SCHEMA)


def _split_table(version: Version, name: str, split: str, problems: dict[str, list[str]]) -> pa.Table | None:
    directory = version.path / "distributions" / name / split
    if not directory.is_dir():
        problems.setdefault(name, []).append(f"split {split!r} is listed but {directory} is missing")
        return None
    table = version.table(name, split)
    for problem in schema_differences(table.schema):
        problems.setdefault(name, []).append(f"{split}: {problem}")
    return labelled(conform(table), name, split)


def labelled(table: pa.Table, name: str, split: str) -> pa.Table:
    """A split's records with the `split` and `dist` columns every frame of examples carries."""
    for column, value in {"split": split, "dist": name}.items():
        table = table.append_column(column, pa.array([value] * table.num_rows, pa.string()))
    return table


def frame_of(tables: list[pa.Table]) -> pl.DataFrame:
    """One frame of examples (with derived columns) from `labelled` split tables; checks and the repair's
    audit read the same shape whether the examples come from disk or from memory."""
    if tables:
        return with_derived_columns(pl.from_arrow(pa.concat_tables(tables)))
    empty = RECORD_SCHEMA.empty_table().append_column("split", pa.array([], pa.string()))
    return with_derived_columns(pl.from_arrow(empty.append_column("dist", pa.array([], pa.string()))))


def examples(tables: list[pa.Table]) -> pl.DataFrame:
    """The examples of non-empty `labelled` split tables with only a row number and `n_responses` derived:
    what the shortcut audit reads, without the text keys every other check needs (those cost a Python
    call per text)."""
    return pl.from_arrow(pa.concat_tables(tables)).with_row_index("row").with_columns(n_responses=N_RESPONSES)


def load_version(ref: str | Path | Version) -> LoadedVersion:
    """Read every split of every distribution of a version into one frame (memory-mapped, no copies kept)."""
    version = ref if isinstance(ref, Version) else Version.open(ref)
    problems: dict[str, list[str]] = {}
    tables = []
    for name in version.distributions:
        for split in splits_of(version, name):
            table = _split_table(version, name, split, problems)
            if table is not None:
                tables.append(table)
    return LoadedVersion(version, frame_of(tables), problems)


def normalized(text: str | pl.Expr) -> pl.Expr:
    """`text_key` of each value of a column (or expression): what "the same prompt" means for every check,
    repair and the build."""
    expression = pl.col(text) if isinstance(text, str) else text
    return expression.map_elements(text_key, return_dtype=pl.String)


def response_keys(column: str) -> pl.Expr:
    """`response_key` of each response of a list column: what "the same response" means everywhere."""
    return pl.col(column).map_elements(lambda texts: [response_key(t or "") for t in texts],
                                       return_dtype=pl.List(pl.String))


def with_text_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with the normalized prompt and instruction and the prompt's hash: the keys overlap reads."""
    return frame.with_columns(prompt_norm=normalized("prompt"), instruction_norm=normalized("instruction")).with_columns(
        prompt_key=pl.col("prompt_norm").hash())


def with_derived_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns shared by several checks, computed once: row number, normalized texts and their keys,
    response lengths, the preferred response and its length."""
    responses = pl.col("responses")
    return with_text_keys(frame.with_row_index("row")).with_columns(
        responses_norm=response_keys("responses"),
        n_responses=N_RESPONSES,
        lengths=responses.list.eval(pl.element().str.len_chars()),
        preferred_text=responses.list.get(pl.col("preferred"), null_on_oob=True),
    ).with_columns(
        preferred_length=pl.col("lengths").list.get(pl.col("preferred"), null_on_oob=True),
        max_length=pl.col("lengths").list.max(),
        min_length=pl.col("lengths").list.min(),
    )


def distribution_stats(frame: pl.DataFrame) -> pl.DataFrame:
    """Per distribution: rows per split, mean prompt / preferred / other-response lengths, and the share of
    examples whose preferred response sits at each position (what `validate` plots and `diff` compares)."""
    other_mean = (pl.col("lengths").list.sum() - pl.col("preferred_length")) / (pl.col("n_responses") - 1)
    positions = [(pl.col("preferred") == p).mean().alias(f"pos{p}") for p in range(4)]
    return (
        frame.group_by("dist")
        .agg(
            *positions,
            rows=pl.len(),
            train=(pl.col("split") == "train").sum(),
            test=(pl.col("split") == "test").sum(),
            prompt_chars=pl.col("prompt").str.len_chars().mean(),
            preferred_chars=pl.col("preferred_length").mean(),
            other_chars=other_mean.mean(),
        )
        .sort("dist")
    )
