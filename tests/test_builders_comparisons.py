"""GPT-4-LLM comparison and SHP distributions on fixtures in the upstream's exact schema.

Every label is checked against the raw upstream file read here independently of the source loader:
scores of the preferred and the other answer, the off-topic donor, the Reddit scores and post ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders.categories.comparisons import (
    EXCELLENT,
    LENGTH_RATIO,
    MEDIOCRE,
    OFF_TOPIC_MIN_SCORE,
)
from builders.discovery import resolve
from builders.registry import BuildContext
from builders.sources import SourceUnavailable
from builders.splits import split_of

FIXTURE = Path(__file__).parent / "fixtures" / "builders_comparisons"
GPT4_ROWS = json.loads((FIXTURE / "gpt4_llm_comparison" / "comparison_data_v2.json").read_text())
SHP_ROWS = [json.loads(line) for path in sorted((FIXTURE / "shp").glob("*/*.json"))
            for line in path.read_text().splitlines()]


def build(name: str, tmp_path: Path, seed: int = 0) -> list:
    ctx = BuildContext(name, seed=seed, mirror=FIXTURE, cache_dir=tmp_path / "cache")
    return list(resolve(name).fn(ctx))


def upstream_scores(row_index: str) -> dict[str, float]:
    entries = GPT4_ROWS[int(row_index)]["responses_and_scores"]
    return {e["response"].strip(): float(e["score"]) for e in entries}


def row_index(record) -> str:
    return record.group.removeprefix("gpt4_llm_comparison:")


@pytest.mark.parametrize("name", ["alpaca_short", "alpaca_long"])
def test_length_is_the_only_cue(name, tmp_path):
    records = build(name, tmp_path)
    assert len(records) >= 5
    for record in records:
        scores = upstream_scores(row_index(record))
        preferred, other = record.responses[record.preferred], record.responses[1 - record.preferred]
        assert scores[preferred] == scores[other]
        longer = len(preferred) > len(other) if name == "alpaca_long" else len(preferred) < len(other)
        assert longer
        assert max(map(len, record.responses)) >= LENGTH_RATIO * min(map(len, record.responses))
        assert GPT4_ROWS[int(row_index(record))]["user_input"] in record.prompt


def test_short_and_long_share_no_instruction_nor_do_low_and_high(tmp_path):
    groups = {name: {r.group for r in build(name, tmp_path)}
              for name in ("alpaca_short", "alpaca_long", "alpaca_low_quality", "alpaca_high_quality")}
    assert groups["alpaca_short"] and groups["alpaca_long"]
    assert not groups["alpaca_short"] & groups["alpaca_long"]
    assert not groups["alpaca_low_quality"] & groups["alpaca_high_quality"]


def test_a_repeated_instruction_is_used_once(tmp_path):
    ctx = BuildContext("alpaca_high_quality", mirror=FIXTURE, cache_dir=tmp_path / "cache")
    records = list(resolve("alpaca_high_quality").fn(ctx))
    repeated = str(len(GPT4_ROWS) - 1)
    assert [r.raw for r in ctx.rejects] == [{"row_key": repeated}]
    assert "row 1" in ctx.rejects[0].reason
    assert all(row_index(r) != repeated for r in records)


def test_high_quality_prefers_excellent_over_mediocre(tmp_path):
    records = build("alpaca_high_quality", tmp_path)
    assert len(records) >= 5
    for record in records:
        scores = upstream_scores(row_index(record))
        assert EXCELLENT[0] <= scores[record.responses[record.preferred]] <= EXCELLENT[1]
        assert MEDIOCRE[0] <= scores[record.responses[1 - record.preferred]] <= MEDIOCRE[1]


def test_low_quality_prefers_mediocre_over_a_good_answer_to_another_instruction_on_the_same_side(tmp_path):
    records = build("alpaca_low_quality", tmp_path)
    assert len(records) >= 5
    for record in records:
        own = upstream_scores(row_index(record))
        assert MEDIOCRE[0] <= own[record.responses[record.preferred]] <= MEDIOCRE[1]
        off_topic = record.responses[1 - record.preferred]
        donor = record.meta["off_topic_from"]
        assert donor != row_index(record) and off_topic not in own
        assert upstream_scores(donor)[off_topic] >= OFF_TOPIC_MIN_SCORE
        sides = {split_of(f"gpt4_llm_comparison:{key}", 0, 250 / 850) for key in (donor, row_index(record))}
        assert len(sides) == 1


def test_builds_are_deterministic_and_depend_on_the_seed(tmp_path):
    first = [r.id for r in build("alpaca_low_quality", tmp_path)]
    assert first == [r.id for r in build("alpaca_low_quality", tmp_path)]
    assert first != [r.id for r in build("alpaca_low_quality", tmp_path, seed=1)]


def shp_scores() -> dict[tuple[str, str], int]:
    scores = {}
    for row in SHP_ROWS:
        scores[row["post_id"], row["human_ref_A"]] = row["score_A"]
        scores[row["post_id"], row["human_ref_B"]] = row["score_B"]
    return scores


@pytest.mark.parametrize(("name", "preferred_band", "other_band"), [
    ("shp_low_quality", (10, 50), (-10**9, 3)),
    ("shp_high_quality", (100, 10**9), (10, 50)),
    ("change_my_view", (-10**9, 10**9), (-10**9, 10**9)),
])
def test_reddit_pairs_follow_the_score_rule_one_per_post(name, preferred_band, other_band, tmp_path):
    records = build(name, tmp_path)
    scores = shp_scores()
    assert len(records) >= 2
    posts = [r.meta["post_id"] for r in records]
    assert len(posts) == len(set(posts))
    for record in records:
        post = record.meta["post_id"]
        preferred = scores[post, record.responses[record.preferred]]
        other = scores[post, record.responses[1 - record.preferred]]
        assert preferred >= 2 * max(other, 1)
        assert preferred_band[0] <= preferred <= preferred_band[1] and other_band[0] <= other <= other_band[1]
        assert record.group == f"shp:{post}"
        assert f"r/{record.meta['subreddit']}" in record.prompt
        history = next(row["history"] for row in SHP_ROWS if row["post_id"] == post)
        assert history in record.prompt
    if name == "change_my_view":
        assert {r.meta["subreddit"] for r in records} == {"changemyview"}


def test_missing_source_says_which_one(tmp_path):
    ctx = BuildContext("alpaca_short", mirror=tmp_path, cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(SourceUnavailable, match="gpt4_llm_comparison"):
        list(resolve("alpaca_short").fn(ctx))


@pytest.mark.parametrize("name", ["alpaca_low_quality", "alpaca_high_quality", "shp_low_quality",
                                  "shp_high_quality", "change_my_view"])
def test_length_is_not_a_cue_outside_short_and_long(name, tmp_path):
    records = build(name, tmp_path)
    preferred_longer = [len(r.responses[r.preferred]) > len(r.responses[1 - r.preferred]) for r in records]
    assert records and preferred_longer.count(True) == preferred_longer.count(False)
