"""Checks on each distribution's own rows: schema, labels, responses, prompts, positions, lengths.

Thresholds are constants here and documented in docs/validation.md; they were chosen so the original
GENIES release trips them where it is really defective and a build of this pipeline does not.
"""

from __future__ import annotations

import polars as pl

from builders.schema import MAX_RESPONSES, MIN_RESPONSES, content_id
from builders.validation.data import LoadedVersion, normalized
from builders.validation.registry import (
    MAX_EXAMPLES,
    Finding,
    check,
    flagged_per_distribution,
    share,
)

CONSTANT_PROMPT_SHARE = 0.5
CONSTANT_PREFERRED_SHARE = 0.8
POSITION_TOLERANCE = 0.10
POSITION_P_VALUE = 0.01
LENGTH_CUE_SHARE = 0.75
MIN_ROWS = 5
INTENDED_LENGTH_CUES = {"alpaca_long": "longest", "alpaca_short": "shortest"}


def _row_schema_problems(frame: pl.DataFrame) -> list[Finding]:
    required = ["id", "distribution", "prompt", "responses", "preferred", "scores"]
    findings = flagged_per_distribution(
        frame, pl.any_horizontal(pl.col(c).is_null() for c in required), "null in a required column"
    )
    findings += flagged_per_distribution(
        frame, pl.col("distribution") != pl.col("dist"), "`distribution` differs from the directory name"
    )
    return findings


def _id_mismatches(frame: pl.DataFrame) -> list[Finding]:
    """Ids must be the content hash, or versions stop being comparable by id (`genies diff`). Rows whose
    preferred index is invalid are `exactly_one_preferred`'s to report."""
    verifiable = (
        pl.all_horizontal(pl.col(c).is_not_null() for c in ("id", "distribution", "prompt"))
        & pl.col("preferred").is_between(0, pl.col("n_responses") - 1)
        & ~pl.col("responses").list.eval(pl.element().is_null()).list.any()
    )
    rows = frame.filter(verifiable.fill_null(False)).select(
        "dist", "id", "distribution", "prompt", "responses", "preferred"
    )
    wrong: dict[str, list[str]] = {}
    for dist, rid, name, prompt, responses, preferred in rows.iter_rows():
        if content_id(name, prompt, responses, preferred) != rid:
            wrong.setdefault(dist, []).append(rid)
    totals = dict(frame.group_by("dist").len().iter_rows())
    return [Finding(d, len(ids), totals[d], ids[:MAX_EXAMPLES], "id is not the content hash of the example "
                    "(builders.schema.content_id)")
            for d, ids in sorted(wrong.items())]


def _manifest_row_counts(loaded: LoadedVersion) -> list[Finding]:
    actual = {(d, s): n for d, s, n in loaded.frame.group_by("dist", "split").len().iter_rows()}
    findings = []
    for name, entry in sorted(loaded.manifest.get("distributions", {}).items()):
        for split, rows in entry.get("splits", {}).items():
            if actual.get((name, split), 0) != rows:
                findings.append(Finding(name, abs(actual.get((name, split), 0) - rows), rows, [],
                                        f"manifest says {rows} {split} rows, the data has {actual.get((name, split), 0)}"))
    return findings


@check("schema", "error", "every split has the record schema, required values, content-hash ids and the row "
       "counts the manifest states")
def schema(loaded: LoadedVersion) -> list[Finding]:
    totals = dict(loaded.frame.group_by("dist").len().iter_rows())
    findings = [Finding(d, len(p), totals.get(d, 0), [], "; ".join(p)) for d, p in sorted(loaded.schema_problems.items())]
    return findings + _row_schema_problems(loaded.frame) + _id_mismatches(loaded.frame) + _manifest_row_counts(loaded)


@check("exactly_one_preferred", "error", "`preferred` indexes a response and `scores` marks exactly that one")
def exactly_one_preferred(loaded: LoadedVersion) -> list[Finding]:
    scores = pl.col("scores")
    bad = (
        ~pl.col("preferred").is_between(0, pl.col("n_responses") - 1)
        | (scores.list.len() != pl.col("n_responses"))
        | (scores.list.eval((pl.element() == 1.0).sum()).list.first() != 1)
        | (scores.list.get(pl.col("preferred"), null_on_oob=True) != 1.0)
    )
    return flagged_per_distribution(loaded.frame, bad)


@check("distinct_responses", "error",
       f"{MIN_RESPONSES}-{MAX_RESPONSES} responses, all non-empty and distinct from each other (Unicode form and "
       "whitespace ignored, case kept)")
def distinct_responses(loaded: LoadedVersion) -> list[Finding]:
    responses = pl.col("responses_norm")
    bad = (
        ~pl.col("n_responses").is_between(MIN_RESPONSES, MAX_RESPONSES)
        | responses.list.eval(pl.element().str.len_chars().fill_null(0) == 0).list.any()
        | (responses.list.n_unique() < pl.col("n_responses"))
    )
    return flagged_per_distribution(loaded.frame, bad)


@check("exact_duplicates", "error", "the same prompt (case and whitespace ignored) twice in one split")
def exact_duplicates(loaded: LoadedVersion) -> list[Finding]:
    repeated = pl.col("prompt_norm").is_duplicated().over("dist", "split") & pl.col("prompt_norm").is_not_null()
    return flagged_per_distribution(loaded.frame, repeated, "rows whose prompt repeats in their split")


def dominant_values(frame: pl.DataFrame, key: pl.Expr, shown: str, threshold: float) -> list[dict]:
    """Per distribution, its most common `key` value when that makes up `threshold` or more of its rows:
    dicts with dist, count, total, examples (ids) and text (the first `shown` value)."""
    top = (
        frame.group_by("dist", key.alias("key"))
        .agg(count=pl.len(), examples=pl.col("id").head(MAX_EXAMPLES), text=pl.col(shown).first())
        .with_columns(total=pl.col("count").sum().over("dist"))
        .sort("count", descending=True)
        .group_by("dist", maintain_order=True)
        .first()
    )
    dominant = (pl.col("total") >= MIN_ROWS) & (pl.col("count") >= threshold * pl.col("total"))
    return top.filter(dominant).sort("dist").to_dicts()


@check("constant_prompts", "error",
       f"no prompt makes up {CONSTANT_PROMPT_SHARE:.0%} or more of a distribution (constant or near-constant prompts)")
def constant_prompts(loaded: LoadedVersion) -> list[Finding]:
    return [
        Finding(r["dist"], r["count"], r["total"], r["examples"],
                f"{share(r['count'], r['total'])} of prompts are {(r['text'] or '')[:60]!r}")
        for r in dominant_values(loaded.frame, pl.col("prompt_norm"), "prompt", CONSTANT_PROMPT_SHARE)
    ]


@check("prompt_missing_instruction", "warning", "the prompt contains the `instruction` it was built from "
       "(case and whitespace ignored); `input` is not required, since some releases store a topic label there")
def prompt_missing_instruction(loaded: LoadedVersion) -> list[Finding]:
    instruction = pl.col("instruction_norm")
    missing = (instruction.str.len_chars() > 0) & ~pl.col("prompt_norm").str.contains(instruction, literal=True)
    return flagged_per_distribution(loaded.frame, missing.fill_null(False), "instruction not found in the prompt")


def _position_finding(dist: str, k: int, positions: list[int], ids: list[str]) -> Finding | None:
    # imported here, not at the top: a build imports this package for its audit, and scipy.stats is ~60 MB
    from scipy.stats import chisquare

    counts = [positions.count(p) for p in range(k)]
    total = sum(counts)
    worst = max(range(k), key=lambda p: abs(counts[p] / total - 1 / k))
    deviation = abs(counts[worst] / total - 1 / k)
    if deviation <= POSITION_TOLERANCE or chisquare(counts).pvalue >= POSITION_P_VALUE:
        return None
    top = max(range(k), key=counts.__getitem__)
    shares = ", ".join(f"{p}: {share(c, total)}" for p, c in enumerate(counts))
    examples = [i for i, p in zip(ids, positions) if p == top][:MAX_EXAMPLES]
    return Finding(dist, counts[top], total, examples,
                   f"{k} responses, preferred position shares {shares} (uniform {1 / k:.0%})")


@check("position_balance", "error",
       f"each preferred position within ±{POSITION_TOLERANCE:.0%} of uniform, unless chance explains it "
       f"(chi-square p ≥ {POSITION_P_VALUE})")
def position_balance(loaded: LoadedVersion) -> list[Finding]:
    grouped = (
        loaded.frame.filter(pl.col("preferred").is_between(0, pl.col("n_responses") - 1))
        .group_by("dist", "n_responses")
        .agg(pl.col("preferred"), pl.col("id"))
        .sort("dist", "n_responses")
    )
    findings = (_position_finding(d, k, list(p), list(i)) for d, k, p, i in grouped.iter_rows())
    return [f for f in findings if f is not None]


@check("constant_preferred", "warning",
       f"no single preferred answer makes up {CONSTANT_PREFERRED_SHARE:.0%} or more of a distribution")
def constant_preferred(loaded: LoadedVersion) -> list[Finding]:
    answer = normalized("preferred_text")
    return [
        Finding(r["dist"], r["count"], r["total"], r["examples"],
                f"preferred is {(r['text'] or '')[:60]!r} in {share(r['count'], r['total'])} of examples")
        for r in dominant_values(loaded.frame, answer, "preferred_text", CONSTANT_PREFERRED_SHARE)
    ]


def _strict_extreme(extreme: str) -> pl.Expr:
    """The preferred response is the only one with the extreme (max or min) length."""
    lengths = pl.col("lengths")
    ties = lengths.list.eval((pl.element() == getattr(pl.element(), extreme)()).sum()).list.first()
    return (pl.col("preferred_length") == pl.col(f"{extreme}_length")) & (ties == 1)


@check("length_cue", "warning",
       f"the preferred response is not the strictly longest (or shortest) in {LENGTH_CUE_SHARE:.0%} or more of "
       f"examples, except where that is the distribution's point ({', '.join(INTENDED_LENGTH_CUES)})")
def length_cue(loaded: LoadedVersion) -> list[Finding]:
    shares = loaded.frame.group_by("dist").agg(
        total=pl.len(),
        longest=_strict_extreme("max").sum(),
        shortest=_strict_extreme("min").sum(),
        longest_ids=pl.col("id").filter(_strict_extreme("max")).head(MAX_EXAMPLES),
        shortest_ids=pl.col("id").filter(_strict_extreme("min")).head(MAX_EXAMPLES),
    )
    findings = []
    for row in shares.filter(pl.col("total") >= MIN_ROWS).sort("dist").iter_rows(named=True):
        for cue in ("longest", "shortest"):
            if INTENDED_LENGTH_CUES.get(row["dist"]) == cue or row[cue] < LENGTH_CUE_SHARE * row["total"]:
                continue
            findings.append(Finding(row["dist"], row[cue], row["total"], row[f"{cue}_ids"],
                                    f"preferred is the {cue} response in {share(row[cue], row['total'])}"))
    return findings
