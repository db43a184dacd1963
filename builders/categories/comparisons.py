"""Preference pairs read off human or GPT-4 judgements: the GPT-4-LLM comparison data and Reddit (SHP).

GPT-4-LLM (`gpt4_llm_comparison`): each instruction was answered by several models and every answer
scored 1-10 by GPT-4. Scores are used as published (inclusive ranges on the raw number):

- `alpaca_short` / `alpaca_long`: two answers whose scores differ by at most `SCORE_TOLERANCE` (GPT-4's
  scores are integers, so in practice equal) and whose lengths differ by a factor of at least
  `LENGTH_RATIO`; the shorter / the longer is preferred, so length is the only cue.
- `alpaca_low_quality`: a mediocre answer (score 4-5) preferred over an off-topic one: a good answer
  (score >= 8) to a *different* instruction of similar length, drawn with the seeded RNG from instructions
  on the same side of the train/test split, so no answer text crosses the split.
- `alpaca_high_quality`: an excellent answer (score 9-10) preferred over a mediocre one (4-5).

Each instruction serves one of short/long and one of low/high quality (a seeded coin per instruction),
so no instruction appears with opposite labels in the two sides of a shift.

Outside short/long, length must not be a cue: better answers and better-voted comments tend to be
longer, so those distributions are *length-balanced*: the preferred response is the longer one in exactly
half of the examples (the larger half is downsampled with the seeded RNG).

SHP (`shp`): comment pairs on one Reddit post, the higher-scored comment preferred (SHP's own label must
agree). One pair per post, the one with the largest score ratio, and the group is `shp:<post_id>`, so no
post straddles train and test.

- `shp_low_quality`: a modest comment (score 10-50) over a tiny one (score <= 3).
- `shp_high_quality`: a very high comment (score >= 100) over a modest one (10-50).
- `change_my_view`: r/changemyview pairs where the preferred comment has at least twice the score.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import polars as pl

from builders.categories._sourced import (
    ALPACA,
    ALPACA_INPUT,
    PromptFormat,
    kept,
    rows,
    sourced_record,
)
from builders.registry import BuildContext, distribution
from builders.schema import Record
from builders.splits import split_of, unit_hash
from builders.text import group_key, response_key, text_key

GPT4 = "gpt4_llm_comparison"
SHP = "shp"
COMPARISON_COLUMNS = ("row_key", "user_input", "responses", "scores", "response_sources")
SHP_COLUMNS = ("row_key", "split", "post_id", "domain", "upvote_ratio", "history", "c_root_id_A", "c_root_id_B",
               "score_A", "score_B", "human_ref_A", "human_ref_B", "labels")

SCORE_TOLERANCE = 0.5
LENGTH_RATIO = 1.5
MEDIOCRE = (4.0, 5.0)
EXCELLENT = (9.0, 10.0)
OFF_TOPIC_MIN_SCORE = 8.0
OFF_TOPIC_NEIGHBOURS = 8

REDDIT_COMMENT = PromptFormat("comparisons/reddit_comment.j2", ("subreddit",))


@dataclass(frozen=True)
class Answer:
    text: str
    score: float | None
    model: str | None

    def describe(self) -> dict[str, Any]:
        return {"score": self.score, "model": self.model, "chars": len(self.text)}


def answers(row: dict[str, Any]) -> list[Answer]:
    """The row's distinct non-empty answers (stripped), first occurrence kept."""
    seen: set[str] = set()
    found = []
    for text, score, model in zip(row["responses"], row["scores"], row["response_sources"]):
        text, key = text.strip(), response_key(text)
        if key and key not in seen:
            seen.add(key)
            found.append(Answer(text, score, model))
    return found


def in_band(answer: Answer, band: tuple[float, float]) -> bool:
    return band[0] <= answer.score <= band[1]


def serves_first(ctx: BuildContext, row_key: str, pair: str) -> bool:
    """The seeded coin that gives each instruction to one distribution of a pair (short/long, low/high)."""
    return unit_hash("gpt4-partition", ctx.seed, pair, row_key) < 0.5


def comparison_rows(ctx: BuildContext) -> list[dict[str, Any]]:
    """The upstream rows, keeping the first of rows with the same instruction text.

    A repeated instruction under two row keys would be two groups, free to land on both sides of the split.
    """
    ALPACA.checked()
    first: dict[str, dict[str, Any]] = {}
    for row in rows(ctx.source(GPT4), COMPARISON_COLUMNS):
        text = text_key(row["user_input"])
        if text in first:
            ctx.reject(f"repeats the instruction of row {first[text]['row_key']}", {"row_key": row["row_key"]})
        else:
            first[text] = row
    return list(first.values())


def alpaca_record(ctx: BuildContext, row: dict[str, Any], preferred: Answer, other: Answer,
                  meta: dict[str, Any]) -> Record | None:
    return sourced_record(
        ctx, source=GPT4, row_key=row["row_key"], prompt_format=ALPACA,
        values={"instruction": row["user_input"]}, responses=[preferred.text, other.text], preferred=0,
        instruction=row["user_input"],
        meta={"preferred": preferred.describe(), "other": other.describe(), **meta},
    )


def length_pair(found: list[Answer], prefer_longer: bool) -> tuple[Answer, Answer] | None:
    """(preferred, other): equal-scored answers of clearly different length; highest score, then ratio."""
    best, best_key = None, None
    for a, b in combinations(found, 2):
        short, long = sorted((a, b), key=lambda x: (len(x.text), x.text))
        if abs(a.score - b.score) > SCORE_TOLERANCE or len(long.text) < LENGTH_RATIO * len(short.text):
            continue
        key = (min(a.score, b.score), len(long.text) / len(short.text), long.text, short.text)
        if best_key is None or key > best_key:
            best, best_key = ((long, short) if prefer_longer else (short, long)), key
    return best


def by_length(ctx: BuildContext, prefer_longer: bool) -> Iterator[Record]:
    for row in comparison_rows(ctx):
        if serves_first(ctx, row["row_key"], "short/long") == prefer_longer:
            continue
        pair = length_pair(answers(row), prefer_longer)
        if pair:
            yield from kept([alpaca_record(ctx, row, *pair, {"rule": "equal scores, length differs"})])


@distribution("alpaca_short", templates=[ALPACA.name])
def build_alpaca_short(ctx: BuildContext) -> Iterator[Record]:
    return by_length(ctx, prefer_longer=False)


@distribution("alpaca_long", templates=[ALPACA.name])
def build_alpaca_long(ctx: BuildContext) -> Iterator[Record]:
    return by_length(ctx, prefer_longer=True)


def pick(ctx: BuildContext, found: list[Answer], band: tuple[float, float], *key: object) -> Answer | None:
    """One answer scored within `band`, chosen with the seeded RNG when several are."""
    within = sorted((a for a in found if in_band(a, band)), key=lambda a: (a.score, a.text))
    return ctx.rng("pick", *key).choice(within) if within else None


def length_balanced(ctx: BuildContext, records: Iterable[Record | None]) -> list[Record]:
    """Exactly as many records whose preferred response is the longer as the shorter (seeded downsampling)."""
    by_cue: dict[bool, list[Record]] = {True: [], False: []}
    for record in kept(records):
        other = max(len(r) for i, r in enumerate(record.responses) if i != record.preferred)
        by_cue[len(record.responses[record.preferred]) > other].append(record)
    size = min(map(len, by_cue.values()))
    dropped = sum(map(len, by_cue.values())) - 2 * size
    if dropped:
        ctx.note(f"{dropped} candidate pairs left out so that the preferred response is the longer in exactly "
                 "half of the examples")
    return [record for cue in (True, False) for record in ctx.rng("length-balance", cue).sample(by_cue[cue], size)]


@distribution("alpaca_high_quality", templates=[ALPACA.name])
def build_alpaca_high_quality(ctx: BuildContext) -> list[Record]:
    return length_balanced(ctx, excellent_over_mediocre(ctx))


def excellent_over_mediocre(ctx: BuildContext) -> Iterator[Record | None]:
    for row in comparison_rows(ctx):
        if not serves_first(ctx, row["row_key"], "low/high"):
            continue
        found = answers(row)
        excellent = pick(ctx, found, EXCELLENT, row["row_key"], "excellent")
        mediocre = pick(ctx, found, MEDIOCRE, row["row_key"], "mediocre")
        if excellent and mediocre:
            yield alpaca_record(ctx, row, excellent, mediocre, {"rule": "score 9-10 over 4-5"})


class OffTopicPool:
    """Good answers of every instruction, by split side and length, to draw off-topic answers from."""

    def __init__(self, ctx: BuildContext, table: list[dict[str, Any]]):
        self.ctx = ctx
        self.sides: dict[str, list[tuple[int, str, str]]] = {"train": [], "test": []}
        for row in table:
            good = [a for a in answers(row) if a.score >= OFF_TOPIC_MIN_SCORE]
            if good:
                best = max(good, key=lambda a: (a.score, a.text))
                self.sides[self.side(row["row_key"])].append((len(best.text), best.text, row["row_key"]))
        for entries in self.sides.values():
            entries.sort()

    def side(self, row_key: str) -> str:
        ctx = self.ctx
        test_fraction = ctx.test_size / (ctx.train_size + ctx.test_size)
        return split_of(group_key(GPT4, row_key), ctx.seed, test_fraction)

    def draw(self, row_key: str, length: int) -> tuple[str, str] | None:
        """(answer, donor row key) from another instruction: one of the answers next in length above or
        below `length` (a seeded coin says which), so the off-topic answer is as often longer as shorter."""
        entries = self.sides[self.side(row_key)]
        rng = self.ctx.rng("off-topic", row_key)
        above = bisect.bisect_right(entries, (length, "\uffff", ""))
        below = bisect.bisect_left(entries, (length, "", ""))
        longer = [e for e in entries[above: above + OFF_TOPIC_NEIGHBOURS + 1] if e[2] != row_key]
        shorter = [e for e in entries[max(0, below - OFF_TOPIC_NEIGHBOURS - 1): below] if e[2] != row_key]
        windows = [longer[:OFF_TOPIC_NEIGHBOURS], shorter[-OFF_TOPIC_NEIGHBOURS:]]
        if rng.random() < 0.5:
            windows.reverse()
        window = windows[0] or windows[1]
        return rng.choice(window)[1:] if window else None


@distribution("alpaca_low_quality", templates=[ALPACA.name])
def build_alpaca_low_quality(ctx: BuildContext) -> list[Record]:
    return length_balanced(ctx, mediocre_over_off_topic(ctx))


def mediocre_over_off_topic(ctx: BuildContext) -> Iterator[Record | None]:
    table = comparison_rows(ctx)
    pool = OffTopicPool(ctx, table)
    for row in table:
        if serves_first(ctx, row["row_key"], "low/high"):
            continue
        mediocre = pick(ctx, answers(row), MEDIOCRE, row["row_key"], "mediocre")
        drawn = pool.draw(row["row_key"], len(mediocre.text)) if mediocre else None
        if drawn:
            off_topic = Answer(drawn[0], None, None)
            yield alpaca_record(ctx, row, mediocre, off_topic, {
                "rule": "score 4-5 over a good answer to another instruction", "off_topic_from": drawn[1]})


@dataclass(frozen=True)
class ScoreRule:
    """Which SHP pairs a distribution takes: score bands for both comments and a minimum score ratio."""

    preferred: tuple[float, float]
    other: tuple[float, float]
    min_ratio: float = 2.0
    subreddit: str | None = None


UNBOUNDED = float("inf")
SHP_LOW = ScoreRule(preferred=(10, 50), other=(-UNBOUNDED, 3))
SHP_HIGH = ScoreRule(preferred=(100, UNBOUNDED), other=(10, 50))
CHANGE_MY_VIEW = ScoreRule(preferred=(-UNBOUNDED, UNBOUNDED), other=(-UNBOUNDED, UNBOUNDED),
                           subreddit="changemyview")


SHP_PAIRED = (("text", "human_ref"), ("score", "score"), ("id", "c_root_id"))


def winner(a_wins: pl.Expr, if_a: str, if_b: str) -> pl.Expr:
    return pl.when(a_wins).then(pl.col(if_a)).otherwise(pl.col(if_b))


def shp_pairs(ctx: BuildContext, rule: ScoreRule) -> list[dict[str, Any]]:
    """One qualifying pair per post (largest score ratio, then row key), as dicts with preferred/other."""
    frame = pl.from_arrow(ctx.source(SHP).select(list(SHP_COLUMNS)))
    a_wins = pl.col("score_A") > pl.col("score_B")
    frame = frame.with_columns(
        subreddit=pl.col("domain").str.replace(r"_(train|validation|test)$", ""),
        **{f"preferred_{name}": winner(a_wins, f"{column}_A", f"{column}_B") for name, column in SHP_PAIRED},
        **{f"other_{name}": winner(a_wins, f"{column}_B", f"{column}_A") for name, column in SHP_PAIRED},
    ).with_columns(ratio=pl.col("preferred_score") / pl.max_horizontal(pl.col("other_score"), 1))
    qualifies = (
        (pl.col("score_A") != pl.col("score_B"))
        & ((pl.col("labels") == 1) == a_wins)
        & pl.col("preferred_score").is_between(*rule.preferred)
        & pl.col("other_score").is_between(*rule.other)
        & (pl.col("ratio") >= rule.min_ratio)
        & (pl.col("preferred_text").str.strip_chars() != "") & (pl.col("other_text").str.strip_chars() != "")
    )
    if rule.subreddit:
        qualifies &= pl.col("subreddit") == rule.subreddit
    return (
        frame.filter(qualifies)
        .sort(["post_id", "ratio", "row_key"], descending=[False, True, False])
        .unique("post_id", keep="first", maintain_order=True)
        .to_dicts()
    )


def reddit_comments(ctx: BuildContext, rule: ScoreRule) -> list[Record]:
    ALPACA_INPUT.checked()
    REDDIT_COMMENT.checked()
    return length_balanced(ctx, (reddit_record(ctx, pair) for pair in shp_pairs(ctx, rule)))


def reddit_record(ctx: BuildContext, pair: dict[str, Any]) -> Record | None:
    instruction = REDDIT_COMMENT.render(subreddit=pair["subreddit"]).strip()
    post = pair["history"].strip()
    return sourced_record(
        ctx, source=SHP, row_key=pair["row_key"], prompt_format=ALPACA_INPUT,
        values={"instruction": instruction, "input": post},
        responses=[pair["preferred_text"].strip(), pair["other_text"].strip()], preferred=0,
        instruction=instruction, input=post, group=group_key(SHP, pair["post_id"]),
        meta={"subreddit": pair["subreddit"], "post_id": pair["post_id"], "upstream_split": pair["split"],
              "preferred_score": pair["preferred_score"], "other_score": pair["other_score"],
              "score_ratio": pair["ratio"], "upvote_ratio": pair["upvote_ratio"],
              "comment_ids": [pair["preferred_id"], pair["other_id"]]},
    )


@distribution("shp_low_quality", templates=[ALPACA_INPUT.name, REDDIT_COMMENT.name])
def build_shp_low_quality(ctx: BuildContext) -> list[Record]:
    return reddit_comments(ctx, SHP_LOW)


@distribution("shp_high_quality", templates=[ALPACA_INPUT.name, REDDIT_COMMENT.name])
def build_shp_high_quality(ctx: BuildContext) -> list[Record]:
    return reddit_comments(ctx, SHP_HIGH)


@distribution("change_my_view", templates=[ALPACA_INPUT.name, REDDIT_COMMENT.name])
def build_change_my_view(ctx: BuildContext) -> list[Record]:
    return reddit_comments(ctx, CHANGE_MY_VIEW)
