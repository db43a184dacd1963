"""Leakage: test examples whose prompt, group or instruction already appears in a training split.

One join answers every question at once: each test row is matched against the distinct keys of every
train split of the version, giving a (train distribution, test distribution) overlap matrix. The
within-distribution check reads its diagonal; the shift checks read the cells of each shift's
source -> target and target_reference -> target.

Keys: the normalized prompt; the `group` (`<upstream>:<key>`, so two distributions built from the same
upstream item match even when their templates differ); and, across distributions, the normalized
`instruction`, which catches the same question rendered by different templates. Instructions shorter than
`MIN_INSTRUCTION_CHARS` or repeated within their distribution are template text, not items, and are
ignored.
"""

from __future__ import annotations

import polars as pl

from builders.validation.data import LoadedVersion
from builders.validation.registry import MAX_EXAMPLES, Finding, check

MIN_INSTRUCTION_CHARS = 20
KINDS = ("prompt", "group", "instruction")


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    base = ["dist", "split", "id"]
    prompt = frame.filter(pl.col("prompt_norm").is_not_null()).select(*base, kind=pl.lit("prompt"), key=pl.col("prompt_key"))
    group = frame.filter(pl.col("group").fill_null("") != "").select(*base, kind=pl.lit("group"), key=pl.col("group").hash())
    item_like = (pl.col("instruction_norm").str.len_chars() >= MIN_INSTRUCTION_CHARS) & (
        pl.col("instruction_norm").is_unique().over("dist")
    )
    instruction = frame.filter(item_like.fill_null(False)).select(
        *base, kind=pl.lit("instruction"), key=pl.col("instruction_norm").hash()
    )
    return pl.concat([prompt, group, instruction])


def overlap_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Every (test row, kind, train distribution) where the test row's key occurs in that train split."""
    keys = _keys(frame)
    train = keys.filter(pl.col("split") == "train").select("kind", "key", train_dist=pl.col("dist")).unique()
    test = keys.filter(pl.col("split") == "test").select("dist", "id", "kind", "key")
    return test.join(train, on=["kind", "key"]).rename({"dist": "test_dist"})


def pairs_of(loaded: LoadedVersion) -> pl.DataFrame:
    """The overlap pairs of a loaded version, computed once however many checks and plots ask."""
    return loaded.memo("overlap_pairs", lambda: overlap_pairs(loaded.frame))


def overlap_matrix(loaded: LoadedVersion) -> pl.DataFrame:
    """Test examples of `test_dist` overlapping the train split of `train_dist`, any key kind."""
    return pairs_of(loaded).group_by("train_dist", "test_dist").agg(count=pl.col("id").n_unique())


def _finding(scope: str, pairs: pl.DataFrame, total: int, kinds: tuple[str, ...]) -> Finding | None:
    pairs = pairs.filter(pl.col("kind").is_in(kinds))
    if pairs.is_empty():
        return None
    by_kind = dict(pairs.group_by("kind").agg(pl.col("id").n_unique()).iter_rows())
    detail = ", ".join(f"{by_kind[k]} by {k}" for k in kinds if k in by_kind)
    ids = pairs["id"].unique(maintain_order=True).to_list()
    return Finding(scope, len(ids), total, ids[:MAX_EXAMPLES], detail)


def _test_sizes(loaded: LoadedVersion) -> dict[str, int]:
    return dict(loaded.frame.filter(pl.col("split") == "test").group_by("dist").len().iter_rows())


@check("train_test_overlap", "error", "no test example of a distribution shares its prompt or group with "
       "that distribution's train split")
def train_test_overlap(loaded: LoadedVersion) -> list[Finding]:
    pairs = pairs_of(loaded).filter(pl.col("train_dist") == pl.col("test_dist"))
    sizes = _test_sizes(loaded)
    findings = (_finding(d, pairs.filter(pl.col("test_dist") == d), sizes[d], ("prompt", "group"))
                for d in sorted(pairs["test_dist"].unique().to_list()))
    return [f for f in findings if f is not None]


def shift_pairs(loaded: LoadedVersion) -> list[tuple[str, str, str]]:
    """(scope, train side, test side) for each shift of the version: source -> target and, where the
    shift names one, target_reference -> target."""
    return shift_sides(loaded.shifts())


def shift_sides(shifts: list[dict]) -> list[tuple[str, str, str]]:
    """`shift_pairs` of a list of shift rows."""
    pairs = []
    for shift in shifts:
        source, target, reference = shift["source"], shift["target"], shift.get("target_reference")
        pairs.append((f"{source}->{target}", source, target))
        if reference and reference not in (source, target):
            pairs.append((f"{reference}->{target} (target_reference)", reference, target))
    return pairs


@check("shift_overlap", "error", "for every shift, no target test example shares its prompt, group or "
       "instruction with the source's train split (nor with the target_reference's train split)")
def shift_overlap(loaded: LoadedVersion) -> list[Finding]:
    pairs = pairs_of(loaded)
    sizes = _test_sizes(loaded)
    present = set(loaded.distributions)
    findings = []
    for scope, train_side, test_side in dict.fromkeys(shift_pairs(loaded)):
        if not {train_side, test_side} <= present:
            continue
        cell = pairs.filter((pl.col("train_dist") == train_side) & (pl.col("test_dist") == test_side))
        finding = _finding(scope, cell, sizes.get(test_side, 0), KINDS)
        if finding is not None:
            findings.append(finding)
    return findings


@check("shift_coverage", "info", "every shift's source, target and target_reference are in the version "
       "(a shift that is not covered cannot be checked for overlap)")
def shift_coverage(loaded: LoadedVersion) -> list[Finding]:
    present = set(loaded.distributions)
    findings = []
    for shift in loaded.shifts():
        needed = {shift["source"], shift["target"], shift.get("target_reference") or shift["target"]}
        if needed - present:
            missing = sorted(needed - present)
            findings.append(Finding(f"{shift['source']}->{shift['target']}", len(missing), len(needed), [],
                                    f"not in this version: {', '.join(missing)}"))
    return findings


def leaks(frame: pl.DataFrame, shifts: list[dict]) -> list[str]:
    """What `train_test_overlap` and `shift_overlap` would find in a frame with dist, split, id, group and
    the text keys (`with_text_keys`), one line per (scope, kind): the invariant a re-split must keep."""
    pairs = overlap_pairs(frame)
    inside = pairs.filter((pl.col("train_dist") == pl.col("test_dist")) & pl.col("kind").is_in(["prompt", "group"]))
    found = [f"{d} ({k}): {n} test examples" for d, k, n in
             inside.group_by("test_dist", "kind").agg(pl.col("id").n_unique()).sort("test_dist", "kind").iter_rows()]
    for scope, train_side, test_side in dict.fromkeys(shift_sides(shifts)):
        cell = pairs.filter((pl.col("train_dist") == train_side) & (pl.col("test_dist") == test_side))
        found += [f"{scope} ({k}): {n} test examples" for k, n in
                  cell.group_by("kind").agg(pl.col("id").n_unique()).sort("kind").iter_rows()]
    return found
