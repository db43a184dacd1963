"""The fidelity comparison: a version's shape side by side with a reference's (`genies validate NEW --against REF`).

A rebuilt distribution is faithful to the original when it has the original's shape (rows per split,
responses per example, prompt template, typical lengths) and the same shortcuts, no more and no fewer.
Each distribution is profiled once per version (`profile_version`), the profiles of both versions are put
side by side (`compare_versions`) and the `fidelity` check reports the mismatches. The prompt skeleton is
the template text with the varying parts removed: tokens of a typical prompt that a sample of the
distribution's other prompts share (`skeleton`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl
from rapidfuzz.distance import Indel

from builders.validation.data import LoadedVersion
from builders.validation.registry import Finding, check
from builders.validation.shortcuts import RULES, THRESHOLDS, audit_version

TOKEN = re.compile(r"\S+\s*")
GAP = "… "


@dataclass
class Profile:
    """One distribution's shape: what the fidelity table shows for each version."""

    dist: str
    rows: dict[str, int]
    ks: dict[int, int]
    skeleton: str
    prompt_chars: float | None
    response_chars: float | None
    accuracy: dict[str, float]
    flagged: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "responses_per_example": {str(k): n for k, n in self.ks.items()},
                "prompt_skeleton": self.skeleton, "median_prompt_chars": self.prompt_chars,
                "median_response_chars": self.response_chars,
                "rule_accuracy": {rule: round(a, 4) for rule, a in self.accuracy.items()},
                "shortcuts": self.flagged}


def _template_mask(tokens: list[str], others: list[list[str]]) -> list[bool]:
    """Which tokens of `tokens` are template text: shared, in at least `skeleton_share` of `others`, by an
    alignment (rapidfuzz Indel opcodes over token lists) in a run of `skeleton_block`+ tokens or at the start
    or the end of both (a lone common word in free text is not template; "Question:" at the start is)."""
    shared = [0] * len(tokens)
    for other in others:
        for op in Indel.opcodes(tokens, other):
            at_an_end = (op.src_start == op.dest_start == 0) or (op.src_end == len(tokens) and op.dest_end == len(other))
            if op.tag == "equal" and (op.src_end - op.src_start >= THRESHOLDS.skeleton_block or at_an_end):
                for i in range(op.src_start, op.src_end):
                    shared[i] += 1
    return [count >= THRESHOLDS.skeleton_share * len(others) for count in shared]


def skeleton(prompts: list[str]) -> str:
    """The template of a sample of prompts: the median-length prompt with every run of tokens the others do
    not share replaced by '…'. One prompt is its own skeleton; no prompt gives ''."""
    if len(prompts) < 2:
        return prompts[0].strip() if prompts else ""
    pieces = [TOKEN.findall(p) for p in prompts]
    words = [[t.strip() for t in piece] for piece in pieces]
    typical = sorted(range(len(prompts)), key=lambda i: len(words[i]))[len(prompts) // 2]
    mask = _template_mask(words[typical], [w for i, w in enumerate(words) if i != typical])
    out: list[str] = []
    for token, template in zip(pieces[typical], mask):
        if template:
            out.append(token)
        elif not out or out[-1] != GAP:
            out.append(GAP)
    return "".join(out).strip()


def similarity(a: str, b: str) -> float:
    """rapidfuzz's normalized Indel similarity (1.0: identical), as the near-duplicate check uses."""
    return float(Indel.normalized_similarity(a, b))


def _shape(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per distribution: rows per split, the count of each k, median prompt and response lengths and a
    sample of prompts (the first by id, so the sample does not depend on the row order)."""
    per_dist = frame.group_by("dist").agg(
        prompt_chars=pl.col("prompt").str.len_chars().median(),
        response_chars=pl.col("lengths").list.explode(keep_nulls=False, empty_as_null=False).median(),
        sample=pl.col("prompt").filter(pl.col("prompt").is_not_null()).sort_by(
            pl.col("id").filter(pl.col("prompt").is_not_null())).head(THRESHOLDS.skeleton_sample),
    )
    shape = {row["dist"]: {**row, "rows": {}, "ks": {}} for row in per_dist.iter_rows(named=True)}
    for dist, split, n in frame.group_by("dist", "split").len().sort("dist", "split").iter_rows():
        shape[dist]["rows"][split] = n
    for dist, k, n in frame.group_by("dist", "n_responses").len().sort("dist", "n_responses").iter_rows():
        shape[dist]["ks"][k] = n
    return shape


def profile_version(loaded: LoadedVersion) -> dict[str, Profile]:
    """Every distribution's profile, computed once per loaded version (the audit is shared with the checks)."""

    def compute() -> dict[str, Profile]:
        audits = audit_version(loaded)
        return {
            dist: Profile(dist, s["rows"], s["ks"], skeleton(s["sample"]), s["prompt_chars"], s["response_chars"],
                          {rule: audits[dist].accuracy(rule) for rule in RULES}, sorted(audits[dist].flagged_rules()))
            for dist, s in sorted(_shape(loaded.frame).items())
        }

    return loaded.memo("fidelity_profiles", compute)


def _rows_off(new: dict[str, int], reference: dict[str, int]) -> list[str]:
    """The splits whose row count is more than `rows_tolerance` away from the reference's."""
    off = []
    for split in sorted(set(new) | set(reference)):
        a, b = new.get(split, 0), reference.get(split, 0)
        if abs(a - b) > THRESHOLDS.rows_tolerance * b or (b == 0 and a):
            change = f" ({(a - b) / b:+.0%})" if b else ""
            off.append(f"{split} rows {a} vs {b}{change}")
    return off


def _ks(ks: dict[int, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in ks.items()) or "none"


@dataclass
class Comparison:
    """One distribution in NEW and in the reference (either may be missing)."""

    dist: str
    new: Profile | None
    reference: Profile | None

    @property
    def skeleton_similarity(self) -> float | None:
        if self.new is None or self.reference is None:
            return None
        return similarity(self.new.skeleton, self.reference.skeleton)

    def mismatches(self) -> list[str]:
        """What the `fidelity` check reports, in words; none when the shapes agree."""
        if self.new is None or self.reference is None:
            return ["missing: only the reference has it"] if self.new is None else []
        found = []
        if set(self.new.ks) != set(self.reference.ks):
            found.append(f"responses per example {_ks(self.new.ks)} vs {_ks(self.reference.ks)}")
        found += _rows_off(self.new.rows, self.reference.rows)
        only_new = sorted(set(self.new.flagged) - set(self.reference.flagged))
        only_reference = sorted(set(self.reference.flagged) - set(self.new.flagged))
        if only_new:
            found.append("shortcut only here: " + ", ".join(f"{r} ({self.new.accuracy[r]:.0%})" for r in only_new))
        if only_reference:
            found.append("shortcut only in the reference: "
                         + ", ".join(f"{r} ({self.reference.accuracy[r]:.0%})" for r in only_reference))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"new": self.new.to_dict() if self.new else None,
                "reference": self.reference.to_dict() if self.reference else None,
                "skeleton_similarity": None if self.skeleton_similarity is None else round(self.skeleton_similarity, 4),
                "mismatches": self.mismatches()}


def compare_versions(loaded: LoadedVersion) -> list[Comparison]:
    """Every distribution of the version or its reference (`loaded.reference`), side by side."""
    if loaded.reference is None:
        return []
    reference = loaded.reference

    def compute() -> list[Comparison]:
        new, old = profile_version(loaded), profile_version(reference)
        return [Comparison(d, new.get(d), old.get(d)) for d in sorted(set(new) | set(old))]

    return loaded.memo("fidelity_comparison", compute)


@check("fidelity", "warning",
       f"(with --against REFERENCE) each reference distribution exists, with the same responses per example, "
       f"rows per split within {THRESHOLDS.rows_tolerance:.0%}, and the same shortcuts",
       needs_reference=True)
def fidelity(loaded: LoadedVersion) -> list[Finding]:
    findings = []
    for comparison in compare_versions(loaded):
        mismatches = comparison.mismatches()
        if mismatches:
            new_rows = sum(comparison.new.rows.values()) if comparison.new else 0
            reference_rows = sum(comparison.reference.rows.values()) if comparison.reference else 0
            findings.append(Finding(comparison.dist, new_rows, reference_rows, [], "; ".join(mismatches)))
    return findings


def _pair(new: Profile | None, reference: Profile | None, show) -> tuple[str, str]:
    return ("—" if new is None else show(new), "—" if reference is None else show(reference))


def _chars(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _rule(rule: str):
    return lambda p: f"{p.accuracy[rule]:.0%}" + (" ⚑" if rule in p.flagged else "")


def side_by_side(comparison: Comparison, skeleton_chars: int = 300) -> list[tuple[str, str, str]]:
    """(measure, NEW, REFERENCE) rows of one distribution's table; ⚑ marks a rule flagged as a shortcut."""
    new, ref = comparison.new, comparison.reference
    splits = sorted({s for p in (new, ref) if p for s in p.rows})
    similar = comparison.skeleton_similarity
    return [
        *((f"{split} rows", *_pair(new, ref, lambda p, s=split: str(p.rows.get(s, 0)))) for split in splits),
        ("responses per example (k: examples)", *_pair(new, ref, lambda p: _ks(p.ks))),
        ("prompt skeleton", *_pair(new, ref, lambda p: p.skeleton[:skeleton_chars])),
        ("skeleton similarity", "—" if similar is None else f"{similar:.0%}", ""),
        ("median prompt chars", *_pair(new, ref, lambda p: _chars(p.prompt_chars))),
        ("median response chars", *_pair(new, ref, lambda p: _chars(p.response_chars))),
        *((f"rule {rule}", *_pair(new, ref, _rule(rule))) for rule in RULES),
    ]


def summary_row(comparison: Comparison) -> tuple[str, ...]:
    """One terminal row: the distribution, NEW / REFERENCE for the main measures, and its mismatches."""
    new, ref = comparison.new, comparison.reference
    similar = comparison.skeleton_similarity

    def both(show) -> str:
        return " / ".join(_pair(new, ref, show))

    return (comparison.dist, both(lambda p: str(sum(p.rows.values()))), both(lambda p: ",".join(map(str, p.ks))),
            "—" if similar is None else f"{similar:.0%}", both(lambda p: _chars(p.prompt_chars)),
            both(lambda p: _chars(p.response_chars)), both(lambda p: ", ".join(p.flagged) or "none"),
            "; ".join(comparison.mismatches()) or "match")


SUMMARY_COLUMNS = ["distribution", "rows", "k", "skeleton", "median prompt", "median response", "shortcuts",
                   "mismatches"]
