"""The shortcut audit: label-free rules that pick one response, and how often each picks the preferred one.

A preference distribution is only worth something if a reward model has to understand the prompt to pick
the preferred response. Each rule here reads the prompt and the responses but never the label, and gives
every response a score; the rule picks the highest. Ties split the credit (a rule that cannot tell two
responses apart is right half the time when one of them is preferred), so a rule that does not apply to
an example scores exactly chance on it. A rule is a shortcut when, in some split, its accuracy is at least
chance + `THRESHOLDS.cue_margin` and a one-sided binomial test against chance (mean 1/k) gives
p < `THRESHOLDS.cue_p_value`. Declared cues (`intended_cues` in the catalog) are the point of their
distribution and are reported as notes, not errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from builders.errors import check_name
from builders.schema import Record, records_to_table
from builders.validation.data import LoadedVersion, examples, labelled
from builders.validation.registry import MAX_EXAMPLES, Finding, check


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the shortcut audit and the fidelity comparison (docs/validation.md explains each)."""

    cue_margin: float = 0.15
    cue_p_value: float = 0.001
    probe_margin: float = 0.15
    probe_p_value: float = 0.001
    probe_min_train: int = 10
    probe_min_test: int = 5
    probe_max_train: int = 1000
    rows_tolerance: float = 0.05
    skeleton_sample: int = 30
    skeleton_share: float = 0.8
    skeleton_block: int = 2


THRESHOLDS = Thresholds()

NON_WORD = r"\W+"
NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
QUOTED_SPAN = r"""(?:^|\W)["'“‘`][^"'”’`]+["'”’`](?:\W|$)"""
NOT_FOUND = float("-inf")


@dataclass(frozen=True)
class Rule:
    """A label-free rule: `score` is a polars expression over the response table (one row per response,
    see `response_table`); the rule picks the response with the highest score."""

    name: str
    description: str
    score: pl.Expr


def _numeric_rule(inside: bool) -> pl.Expr:
    """Only where every response of the example has a number; elsewhere every response scores 0 (a tie)."""
    return pl.when(pl.col("numeric")).then(pl.col("number_in_prompt") == inside).otherwise(False).cast(pl.Float64)


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in [
        Rule("longest", "the longest response (characters)", pl.col("length").cast(pl.Float64)),
        Rule("shortest", "the shortest response (characters)", -pl.col("length").cast(pl.Float64)),
        *(Rule(f"position_{p}", f"the response at position {p}", (pl.col("idx") == p).cast(pl.Float64))
          for p in range(4)),
        Rule("most_overlap", "the response whose words occur most in the prompt (share of its distinct words)",
             pl.col("overlap")),
        Rule("least_overlap", "the response whose words occur least in the prompt", -pl.col("overlap")),
        Rule("quoted", "the response quoted in the prompt (whole, or a span it quotes)",
             pl.col("quoted").cast(pl.Float64)),
        Rule("not_quoted", "the response not quoted in the prompt", (~pl.col("quoted")).cast(pl.Float64)),
        Rule("first_named", "the response containing what the prompt names first (a word no other response has)",
             pl.when(pl.col("named_at").is_null()).then(NOT_FOUND).otherwise(-pl.col("named_at"))),
        Rule("last_named", "the response containing what the prompt names last",
             pl.col("named_at").fill_null(NOT_FOUND)),
        Rule("number_in_prompt", "for numeric answers, the response whose number appears in the prompt",
             _numeric_rule(True)),
        Rule("number_not_in_prompt", "for numeric answers, the response whose number is not in the prompt",
             _numeric_rule(False)),
    ]
}


def _phrase(text: pl.Expr) -> pl.Expr:
    """The lower-cased words (`\\w+` runs) of a text joined by single spaces and padded with one space on
    each side, so that containment respects word boundaries (one regex pass, no list)."""
    return pl.lit(" ") + text.str.to_lowercase().str.replace_all(NON_WORD, " ").str.strip_chars(" ") + pl.lit(" ")


def _word_hashes(phrase: pl.Expr) -> pl.Expr:
    """The distinct words of a `_phrase`, hashed, in the order they first occur."""
    inner = phrase.str.strip_chars(" ")
    words = pl.when(inner == "").then(pl.lit([], dtype=pl.List(pl.String))).otherwise(inner.str.split(" "))
    return words.list.eval(pl.element().hash()).list.unique(maintain_order=True)


def _numbers(text: pl.Expr) -> pl.Expr:
    return text.str.extract_all(NUMBER).list.eval(pl.element().str.replace_all(",", "").cast(pl.Float64, strict=False))


def auditable(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with 2+ non-null responses and a valid preferred index (the schema checks report the others)."""
    return frame.filter(
        (pl.col("n_responses") >= 2) & pl.col("preferred").is_between(0, pl.col("n_responses") - 1)
        & ~pl.col("responses").list.eval(pl.element().is_null()).list.any().fill_null(True)
    )


def _quoted_spans(responses: pl.DataFrame, prompts: pl.DataFrame) -> pl.DataFrame:
    """(row, idx) of every response that quotes ('...' or "...") a span the prompt contains."""
    spans = (responses.select("row", "idx", span=pl.col("text").str.extract_all(QUOTED_SPAN)).explode("span")
             .filter(pl.col("span").is_not_null())
             .with_columns(phrase=_phrase(pl.col("span"))).filter(pl.col("phrase") != "  "))
    found = spans.join(prompts.select("row", "prompt_phrase"), on="row").filter(
        pl.col("prompt_phrase").str.contains(pl.col("phrase"), literal=True))
    return found.select("row", "idx").unique().with_columns(span_quoted=pl.lit(True))


def _named_at(responses: pl.DataFrame, prompts: pl.DataFrame) -> pl.DataFrame:
    """(row, idx, named_at): how early the prompt names a word only this response contains, as the rank of
    that word's first occurrence among the prompt's distinct words (`prompt_set` keeps first-occurrence
    order, so ranks order words as their first positions do). `responses` carries `word_set` and `prompt_set`."""
    named = (responses.select("row", "idx", word=pl.col("word_set").list.set_intersection("prompt_set"))
             .explode("word").drop_nulls("word"))
    owners = named.group_by("row", "word").len()
    named = named.join(owners.filter(pl.col("len") == 1), on=["row", "word"], how="semi")
    ranks = (
        prompts.filter(pl.col("row").is_in(named["row"].unique().implode()))
        .select("row", word=pl.col("prompt_set"), rank=pl.int_ranges(0, pl.col("prompt_set").list.len()))
        .explode("word", "rank")
    )
    return named.join(ranks, on=["row", "word"]).group_by("row", "idx").agg(
        named_at=pl.col("rank").min().cast(pl.Float64))


def _numbers_in_prompt(rows: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """(row, idx, number_in_prompt) for the examples whose every response has a digit (the only ones the
    numeric rules read, so the others are not parsed)."""
    numeric = responses.filter(pl.col("numeric")).select("row", "idx", numbers=_numbers(pl.col("text")))
    given = rows.filter(pl.col("row").is_in(numeric["row"].unique().implode())).select(
        "row", given=_numbers(pl.col("prompt").fill_null("")))
    return numeric.join(given, on="row").select(
        "row", "idx", number_in_prompt=pl.col("numbers").list.set_intersection("given").list.len() > 0)


def response_table(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per response of `rows` (auditable examples with a `row` id): its index, whether it is
    preferred, and the features every rule's score reads."""
    prompts = (rows.select("row", prompt_phrase=_phrase(pl.col("prompt").fill_null("")))
               .with_columns(prompt_set=_word_hashes(pl.col("prompt_phrase"))))
    responses = (
        rows.select("row", "dist", "split", "preferred", text=pl.col("responses"),
                    idx=pl.int_ranges(0, pl.col("responses").list.len()))
        .explode("text", "idx")
        .with_columns(length=pl.col("text").str.len_chars(), phrase=_phrase(pl.col("text")),
                      numeric=pl.col("text").str.contains(r"\d").all().over("row"))
        .with_columns(word_set=_word_hashes(pl.col("phrase")))
    )
    responses = responses.join(prompts, on="row", maintain_order="left")
    return (
        responses.join(_quoted_spans(responses, prompts), on=["row", "idx"], how="left")
        .join(_named_at(responses, prompts), on=["row", "idx"], how="left")
        .join(_numbers_in_prompt(rows, responses), on=["row", "idx"], how="left")
        .select(
            "row", "dist", "split", "idx", "length", "numeric", "named_at", "word_set",
            preferred=pl.col("idx") == pl.col("preferred"),
            overlap=(pl.col("word_set").list.set_intersection("prompt_set").list.len()
                     / pl.col("word_set").list.len()).fill_nan(0.0).fill_null(0.0),
            quoted=((pl.col("phrase") != "  ") & pl.col("prompt_phrase").str.contains(pl.col("phrase"), literal=True))
            | pl.col("span_quoted").fill_null(False),
            number_in_prompt=pl.col("number_in_prompt").fill_null(False),
        )
    )


def credits(responses: pl.DataFrame, scores: np.ndarray) -> np.ndarray:
    """Per example, the credit for picking the highest score: 1/n when the preferred response is among
    the n responses with the highest score, else 0. `responses` is one row per response, grouped by example
    (`row`) in order, with a boolean `preferred`; `scores` holds one score per response."""
    if not len(scores):
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, np.diff(responses["row"].to_numpy()) != 0])
    counts = np.diff(np.r_[starts, len(scores)])
    best = np.repeat(np.maximum.reduceat(scores, starts), counts)
    wins = scores == best
    preferred_wins = np.add.reduceat(wins & responses["preferred"].to_numpy(), starts)
    return preferred_wins / np.add.reduceat(wins, starts)


def rule_credits(responses: pl.DataFrame) -> pl.DataFrame:
    """Per example (`row`) and rule, the credit the rule earns (see `credits`)."""
    scores = responses.select(**{rule.name: rule.score for rule in RULES.values()})
    rows = responses["row"].unique(maintain_order=True)
    return pl.DataFrame({"row": rows, **{name: credits(responses, scores[name].to_numpy()) for name in RULES}})


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided binomial test's p-value, exact up to rounding.

    Computed here with numpy (log-factorials as cumulative sums of logs, the terms summed in log space so
    tiny tails do not underflow) because importing `scipy.stats` for it added ~60 MB to a build's peak."""
    if k <= 0:
        return 1.0
    log_factorials = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
    j = np.arange(k, n + 1)
    log_terms = (log_factorials[n] - log_factorials[j] - log_factorials[n - j]
                 + j * np.log(p) + (n - j) * np.log1p(-p))
    top = log_terms.max()
    return min(1.0, float(np.exp(top) * np.exp(log_terms - top).sum()))


@dataclass
class ChanceTest:
    """An accuracy over `n` examples (`correct` may be fractional: ties split the credit) against chance."""

    n: int
    correct: float
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @cached_property
    def p_value(self) -> float:
        """One-sided binomial test of the (rounded) number correct against chance."""
        if not self.n:
            return 1.0
        return binomial_tail(min(round(self.correct), self.n), self.n, self.chance)

    def beats_chance(self, margin: float, p_value: float) -> bool:
        return self.n > 0 and self.accuracy >= self.chance + margin and self.p_value < p_value

    def numbers(self) -> str:
        return f"{self.accuracy:.0%} (chance {self.chance:.0%}, {self.correct:g}/{self.n}, p={self.p_value:.1e})"


@dataclass
class RuleResult(ChanceTest):
    """One rule on one split of one distribution, with a few ids of examples it answers alone."""

    rule: str = ""
    split: str = ""
    hits: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.beats_chance(THRESHOLDS.cue_margin, THRESHOLDS.cue_p_value)

    def describe(self) -> str:
        return f"`{self.rule}` on {self.split}: {self.numbers()}"


@dataclass
class DistributionAudit:
    """Every rule on every split of one distribution, what it declares, and what made the audit partial."""

    dist: str
    total: int
    results: list[RuleResult]
    declared: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def flagged(self) -> list[RuleResult]:
        return [r for r in self.results if r.flagged]

    def flagged_rules(self) -> set[str]:
        return {r.rule for r in self.flagged()}

    def accuracy(self, rule: str) -> float:
        """The rule's accuracy over every split together."""
        chosen = [r for r in self.results if r.rule == rule]
        n = sum(r.n for r in chosen)
        return sum(r.correct for r in chosen) / n if n else 0.0

    def chance(self) -> float:
        """Chance over every split together (the mean of 1/k over the audited examples)."""
        splits = {r.split: r for r in self.results}.values()
        n = sum(r.n for r in splits)
        return sum(r.chance * r.n for r in splits) / n if n else 0.0


def _notes(frame: pl.DataFrame, usable: pl.DataFrame) -> dict[str, list[str]]:
    """Per distribution, what the audit could not judge, in words."""
    stats = frame.group_by("dist").agg(total=pl.len()).join(usable.group_by("dist").agg(
        usable=pl.len(),
        ks=pl.col("n_responses").unique().sort(),
        identical=(pl.col("responses").list.n_unique() == 1).sum(),
        empty=(pl.col("prompt").fill_null("").str.strip_chars() == "").sum(),
    ), on="dist", how="left")
    notes: dict[str, list[str]] = {}
    for row in stats.iter_rows(named=True):
        said = notes.setdefault(row["dist"], [])
        usable_rows = row["usable"] or 0
        if row["total"] > usable_rows:
            said.append(f"{row['total'] - usable_rows} example(s) without 2+ responses and a valid preferred "
                        "index are not audited")
        if usable_rows < 2:
            said.append(f"{usable_rows} auditable example(s): too few for any rule to differ from chance")
        if len(row["ks"] or []) > 1:
            said.append(f"responses per example vary ({', '.join(map(str, row['ks']))}); chance is their mean 1/k")
        if row["identical"]:
            said.append(f"{row['identical']} example(s) have identical responses: every rule ties there (chance)")
        if row["empty"]:
            said.append(f"{row['empty']} example(s) have an empty prompt: the rules that read it tie there (chance)")
    return notes


def audited_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return auditable(frame).select("row", "dist", "split", "id", "preferred", "n_responses", "prompt", "responses")


def _split_results(rows: pl.DataFrame, responses: pl.DataFrame) -> dict[str, list[RuleResult]]:
    """Per distribution, every rule's result on each of its splits (`rows` from `audited_rows`, `responses`
    their `response_table`)."""
    credits = rule_credits(responses).join(rows.select("row", "dist", "split", "id", "n_responses"), on="row")
    totals = credits.group_by("dist", "split").agg(
        n=pl.len(),
        chance=(1 / pl.col("n_responses")).mean(),
        **{name: pl.col(name).sum() for name in RULES},
        **{f"{name}:hits": pl.col("id").filter(pl.col(name) == 1.0).sort().head(MAX_EXAMPLES) for name in RULES},
    ).sort("dist", "split")
    results: dict[str, list[RuleResult]] = {}
    for row in totals.iter_rows(named=True):
        results.setdefault(row["dist"], []).extend(
            RuleResult(row["n"], row[name], row["chance"], name, row["split"], row[f"{name}:hits"]) for name in RULES)
    return results


def declared_cues() -> dict[str, tuple[str, ...]]:
    """Each catalog distribution's `intended_cues` (plugins' included), checked against the rule names."""
    from builders.discovery import catalog

    return {name: tuple(check_name(cue, RULES, "shortcut rule") for cue in info.intended_cues)
            for name, info in catalog().distributions.items() if info.intended_cues}


def audit_frame(frame: pl.DataFrame, declared: dict[str, tuple[str, ...]],
                responses: pl.DataFrame | None = None) -> dict[str, DistributionAudit]:
    """Audit every distribution of a frame shaped like `LoadedVersion.frame` (`responses`: its
    `response_table`, when already computed)."""
    rows = audited_rows(frame)
    results = _split_results(rows, response_table(rows) if responses is None else responses)
    notes = _notes(frame, auditable(frame))
    totals = dict(frame.group_by("dist").len().iter_rows())
    return {dist: DistributionAudit(dist, totals[dist], results.get(dist, []), declared.get(dist, ()), notes[dist])
            for dist in sorted(totals)}


def audit_version(loaded: LoadedVersion) -> dict[str, DistributionAudit]:
    """The audit of every distribution of a version, computed once and shared by the checks and reports."""
    return loaded.memo("shortcut_audit", lambda: audit_frame(loaded.frame, declared_cues(), responses_of(loaded)))


def responses_of(loaded: LoadedVersion) -> pl.DataFrame:
    """The response table of a version's auditable examples, shared by the audit and the surface probe."""
    return loaded.memo("response_table", lambda: response_table(audited_rows(loaded.frame)))


AUDITED_COLUMNS = ["id", "prompt", "responses", "preferred"]


def audit_tables(splits: Mapping[str, Mapping[str, pa.Table]]) -> dict[str, DistributionAudit]:
    """The audit of the tables of a version being built ({distribution: {split: table}}), for its card.

    Every number of the audit is per distribution, so it runs one distribution at a time over only the
    columns the rules read: the frames of a whole build never exist at once (they tripled a build's peak
    memory), and no text key is computed that the audit does not read."""
    declared, audits = declared_cues(), {}
    for dist, by_split in splits.items():
        tables = [labelled(table.select(AUDITED_COLUMNS), dist, split) for split, table in by_split.items()]
        if tables:
            audits.update(audit_frame(examples(tables), declared))
    return audits


def audit_records(splits: Mapping[str, Mapping[str, Sequence[Record]]]) -> dict[str, DistributionAudit]:
    """`audit_tables` of records ({distribution: {split: records}})."""
    return audit_tables({dist: {split: records_to_table(list(records)) for split, records in by_split.items()}
                         for dist, by_split in splits.items()})


def card_rows(audits: dict[str, DistributionAudit]) -> list[dict[str, Any]]:
    """The dataset card's "Shortcut audit" rows: each flagged rule of each distribution, with its accuracy
    and chance over every split and whether the distribution declares it."""
    return [{"dist": dist, "rule": rule, "accuracy": audit.accuracy(rule), "chance": audit.chance(),
             "declared": rule in audit.declared}
            for dist, audit in sorted(audits.items()) for rule in sorted(audit.flagged_rules())]


def _finding(audit: DistributionAudit, results: list[RuleResult]) -> Finding:
    """One finding per distribution: its examples some listed rule answers, and each rule's numbers."""
    hits = list(dict.fromkeys(rid for r in results for rid in r.hits))
    best = max(results, key=lambda r: r.correct)
    return Finding(audit.dist, round(best.correct), best.n, hits[:MAX_EXAMPLES],
                   "; ".join(r.describe() for r in results))


@check("shortcut_cues", "error",
       f"no undeclared label-free rule (longest, shortest, a position, prompt overlap, quoted or not, first or "
       f"last named, a number from the prompt) picks the preferred response in some split at least "
       f"{THRESHOLDS.cue_margin:.0%} above chance with binomial p < {THRESHOLDS.cue_p_value}")
def shortcut_cues(loaded: LoadedVersion) -> list[Finding]:
    findings = []
    inherited = recorded_inherited_cues(loaded)
    for audit in audit_version(loaded).values():
        known = set(audit.declared) | set(inherited.get(audit.dist, ()))
        undeclared = [r for r in audit.flagged() if r.rule not in known]
        if undeclared:
            findings.append(_finding(audit, undeclared))
    return findings


def is_content_rule(rule: str) -> bool:
    """Position rules are the repair's to fix (it re-shuffles responses); every other rule reads content."""
    return not rule.startswith("position_")


def content_cues(frame: pl.DataFrame) -> dict[str, list[str]]:
    """Each distribution's undeclared cues that only a rewrite of its responses could remove: what `genies
    repair` records as inherited from the release it repaired (`frame` shaped like `LoadedVersion.frame`)."""
    cues = {audit.dist: sorted({r.rule for r in audit.flagged()
                                if r.rule not in audit.declared and is_content_rule(r.rule)})
            for audit in audit_frame(frame, declared_cues()).values()}
    return {dist: rules for dist, rules in sorted(cues.items()) if rules}


def recorded_inherited_cues(loaded: LoadedVersion) -> dict[str, list[str]]:
    """The content cues a repaired version's manifest says it kept from its source (`inherited_cues`)."""
    recorded = loaded.manifest.get("inherited_cues") or {}
    return {dist: [r for r in rules if is_content_rule(r)] for dist, rules in recorded.items()}


@check("inherited_cues", "warning", "content cues a repaired version kept from the release it repaired (listed "
       "by `genies repair` in the manifest's `inherited_cues`): repair cannot remove them without rewriting "
       "responses, so a reward model can still exploit them")
def inherited_cues_check(loaded: LoadedVersion) -> list[Finding]:
    inherited = recorded_inherited_cues(loaded)
    if not inherited:
        return []
    findings = []
    for audit in audit_version(loaded).values():
        kept = [r for r in audit.flagged() if r.rule in inherited.get(audit.dist, ())]
        if kept:
            findings.append(_finding(audit, kept))
    return findings


@check("declared_cues", "info", "the cues a distribution declares (`intended_cues` in the catalog): reported "
       "with their accuracy, whether or not the data shows them")
def declared_cues_check(loaded: LoadedVersion) -> list[Finding]:
    findings = []
    for audit in audit_version(loaded).values():
        declared = [r for r in audit.results if r.rule in audit.declared]
        if declared:
            finding = _finding(audit, declared)
            missing = sorted(set(audit.declared) - audit.flagged_rules())
            if missing:
                finding.detail += f"; declared but not above chance: {', '.join(missing)}"
            findings.append(finding)
    return findings
