"""What a version covers: every catalog shift with its `status`, and how an evaluation states its coverage.

A version's `shifts` table holds the whole catalog's shifts, not only the built ones, so that a reader
(`genies eval`, the site, a researcher with pyarrow) sees what is missing and why instead of a shorter
list that looks complete. `status` is `built` when the source, target and target reference are all in
the version, else `missing: <side> <name> (<why>)` for each absent side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from builders.catalog import SHIFTS_SCHEMA

BUILT = "built"
NOT_IN_VERSION = "not in this version"
NOT_SELECTED = "not selected for this build"
SHIFTS_STATUS_SCHEMA = SHIFTS_SCHEMA.append(pa.field("status", pa.string()))


def missing_reason(name: str, skipped: Mapping[str, Mapping[str, Any]]) -> str:
    """Why a distribution is not in the version: the build's recorded skip reason, when there is one."""
    return str(skipped.get(name, {}).get("reason") or NOT_IN_VERSION)


def _sides(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    sides = [("source", row["source"]), ("target", row["target"])]
    reference = row.get("target_reference")
    if reference and reference not in (row["source"], row["target"]):
        sides.append(("target_reference", reference))
    return sides


def shift_status(row: Mapping[str, Any], built: set[str], skipped: Mapping[str, Mapping[str, Any]]) -> str:
    """The status the version's shifts table states, else `built` or `missing: <which side, why>`."""
    if row.get("status"):
        return str(row["status"])
    missing = [f"{side} {name} ({missing_reason(name, skipped)})" for side, name in _sides(row) if name not in built]
    return "missing: " + "; ".join(missing) if missing else BUILT


def shifts_with_status(shifts: pa.Table, built: set[str], skipped: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """The shifts table with its `status` column computed from what the version holds."""
    rows = shifts.select(SHIFTS_SCHEMA.names).to_pylist()
    for row in rows:
        row["status"] = shift_status(row, built, skipped)
    return pa.Table.from_pylist(rows, schema=SHIFTS_STATUS_SCHEMA)


def coverage_statement(evaluated: int, selected: int, scope: str) -> str:
    """`mean over 7 of 15 GENIES shifts`: a mean is never shown without what it is a mean of."""
    return f"mean over {evaluated} of {selected} {scope}"
