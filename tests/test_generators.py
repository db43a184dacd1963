"""Procedural generators: every item has exactly one correct answer, proved by independent solvers."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from builders.generators.crt import CrtItem, dollars, generate_crt, is_correct, solve_prices
from builders.generators.ranking import Above, AtRank, count_orderings, generate_ranking
from builders.generators.raven import CONFIGURATIONS, generate_numeric, generate_raven, solve_raven, violations
from builders.generators.rules import completes, infer_answer


def brute_force_orderings(n: int, clues) -> list[tuple[int, ...]]:
    """Every ranking (most first) satisfying the clues, by enumerating all permutations."""
    found = []
    for order in itertools.permutations(range(n)):
        rank = {item: r for r, item in enumerate(order)}
        if all(rank[c.higher] < rank[c.lower] if isinstance(c, Above) else rank[c.item] == c.rank for c in clues):
            found.append(order)
    return found


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_ranking_puzzles_have_one_solution_and_the_answer_holds_the_asked_rank(n):
    for seed in range(12 if n < 7 else 4):
        puzzle = generate_ranking(random.Random(seed), n)
        solutions = brute_force_orderings(n, puzzle.clues)
        assert solutions == [puzzle.order]
        assert puzzle.order[puzzle.asked_rank] == puzzle.answer
        assert puzzle.consistent_answers() == [puzzle.answer]
        assert puzzle.answer not in puzzle.distractors and len(set(puzzle.distractors)) == len(puzzle.distractors)


def test_ranking_clues_are_tight_and_never_state_the_answer():
    for seed in range(15):
        puzzle = generate_ranking(random.Random(seed), 4)
        for dropped in puzzle.clues:
            rest = [c for c in puzzle.clues if c != dropped]
            assert len(brute_force_orderings(4, rest)) > 1, "every clue must be needed"
        assert AtRank(puzzle.answer, puzzle.asked_rank) not in puzzle.clues


def test_count_orderings_matches_brute_force_including_contradictions():
    rng = random.Random(7)
    for _ in range(40):
        clues = [Above(*rng.sample(range(5), 2)) for _ in range(rng.randint(0, 5))]
        clues += [AtRank(rng.randrange(5), rng.randrange(5)) for _ in range(rng.randint(0, 2))]
        assert count_orderings(5, clues, limit=200) == len(brute_force_orderings(5, clues))


def test_ranking_text_uses_the_theme_and_rank_words():
    puzzle = generate_ranking(random.Random(3), 7)
    words = {puzzle.theme.most, puzzle.theme.least}
    assert any(w in puzzle.question for w in words)
    order_clues = [c for c in puzzle.clues if isinstance(c, Above)]
    for clue in order_clues:
        text = puzzle.clue_text(clue)
        higher, lower = puzzle.objects[clue.higher], puzzle.objects[clue.lower]
        assert text in {f"{higher} is {puzzle.theme.more} {lower}.", f"{lower} is {puzzle.theme.less} {higher}."}


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ([[1, 2, 3], [4, 5, 6], [2, 3]], 4),  # progression +1
        ([[3, 1, 4], [5, 2, 7], [1, 1]], 2),  # arithmetic a + b
        ([[1, 5, 9], [5, 9, 1], [9, 1]], 5),  # distribute_three
        ([[7, 7, 7], [2, 2, 2], [4, 4]], 4),  # constant
        ([[3, 0, 3], [5, 0, 5], [4, 2]], None),  # a + b and a - b both fit rows 1-2: ambiguous
    ],
)
def test_rule_inference_on_hand_made_grids(visible, expected):
    assert infer_answer(visible) == expected


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_raven_items_have_one_correct_candidate_and_distractors_bisect_two_attributes(configuration):
    for seed in range(10):
        puzzle = generate_raven(random.Random(seed), configuration)
        visible = list(puzzle.panels[:-1])
        assert violations(configuration, visible, puzzle.answer) == []
        broken = [violations(configuration, visible, d) for d in puzzle.distractors]
        assert broken == [list(b) for b in puzzle.broken]
        first, second = broken[0], broken[1]
        assert len(first) == len(second) == 1 and first != second and sorted(broken[2]) == sorted(first + second)
        texts = [puzzle.candidate_text(p) for p in (puzzle.answer, *puzzle.distractors)]
        assert len(set(texts)) == 4
        expected = solve_raven(configuration, visible)
        assert all(v is not None for k, v in expected.items() if not k.endswith(".position"))


CHANCE, TOLERANCE = 0.25, 0.05  # 4 options; 0.05 is more than 2 standard deviations of 300+ items at chance


def _features(panel) -> list[object]:
    """What a candidate shows, attribute by attribute: each component's positions, type, size and color."""
    features = []
    for slots in panel:
        entity = next(e for e in slots if e is not None)
        features += [frozenset(i for i, e in enumerate(slots) if e is not None), entity.type, entity.size, entity.color]
    return features


def _expected_hit(scores: list[float], pick_highest: bool) -> float:
    """Chance that a heuristic picking the best score (ties broken at random) picks candidate 0, the answer."""
    best = max(scores) if pick_highest else min(scores)
    winners = [i for i, s in enumerate(scores) if s == best]
    return 1 / len(winners) if 0 in winners else 0.0


def _agreement_scores(candidates: list[list[object]]) -> list[float]:
    """Per candidate, how many (other candidate, attribute) pairs share its value: high = typical."""
    return [
        sum(other[k] == mine[k] for other in candidates for k in range(len(mine)) if other is not mine)
        for mine in candidates
    ]


def test_raven_candidates_give_no_majority_or_odd_one_out_cue():
    """Without the matrix, 'the most typical candidate' and 'the odd one out' must score at chance."""
    majority = odd_one_out = 0.0
    configurations = sorted(CONFIGURATIONS)
    items = 42 * len(configurations)
    for seed in range(items):
        puzzle = generate_raven(random.Random(seed), configurations[seed % len(configurations)])
        scores = _agreement_scores([_features(p) for p in (puzzle.answer, *puzzle.distractors)])
        majority += _expected_hit(scores, pick_highest=True)
        odd_one_out += _expected_hit(scores, pick_highest=False)
    assert majority / items <= CHANCE + TOLERANCE
    assert odd_one_out / items <= CHANCE + TOLERANCE


def test_raven_configurations_have_the_i_raven_structure():
    assert len(CONFIGURATIONS) == 7
    components = {name: [slots for _, slots in parts] for name, parts in CONFIGURATIONS.items()}
    assert components["distribute_nine"] == [9]
    assert components["in_distribute_four_out_center_single"] == [1, 4]
    puzzle = generate_raven(random.Random(0), "distribute_nine")
    assert len(puzzle.rows_text()) == 3 and [len(r) for r in puzzle.rows_text()] == [3, 3, 2]


def test_numeric_patterns_have_exactly_one_completing_candidate():
    for seed in range(60):
        puzzle = generate_numeric(random.Random(seed))
        visible = [list(puzzle.grid[0]), list(puzzle.grid[1]), list(puzzle.grid[2][:2])]
        candidates = [puzzle.answer, *puzzle.distractors]
        assert len(set(candidates)) == 4
        assert [completes(visible, c) for c in candidates] == [True, False, False, False]


def test_numeric_candidates_give_no_middle_largest_or_smallest_cue():
    items = 400
    hits = {"middle": 0.0, "largest": 0.0, "smallest": 0.0}
    for seed in range(items):
        puzzle = generate_numeric(random.Random(seed))
        candidates = [puzzle.answer, *puzzle.distractors]
        assert len({b - a for a, b in itertools.pairwise(sorted(candidates))}) == 1, "evenly spaced"
        spread = [sum(abs(c - other) for other in candidates) for c in candidates]
        hits["middle"] += _expected_hit(spread, pick_highest=False)
        hits["largest"] += _expected_hit(candidates, pick_highest=True)
        hits["smallest"] += _expected_hit(candidates, pick_highest=False)
    assert {name: hit / items <= CHANCE + TOLERANCE for name, hit in hits.items()} == dict.fromkeys(hits, True), hits


def test_crt_items_have_computed_correct_and_intuitive_answers():
    items = [generate_crt(random.Random(seed)) for seed in range(100)]
    assert 30 < sum(item.asks_expensive for item in items) < 70, "ask for either item, so 'smaller' is no cue"
    for item in items:
        assert is_correct(item, item.correct_cents)
        assert not is_correct(item, item.intuitive_cents)
        assert item.correct_cents.denominator == 1 and item.correct_cents > 0
        assert dollars(item.correct_cents) != dollars(item.intuitive_cents)
        assert dollars(item.total_cents) in item.question and dollars(item.difference_cents) in item.question
        assert item.question.endswith(f"How much does the {item.asked} cost?")


def test_crt_classic_bat_and_ball():
    assert solve_prices(110, 100) == (Fraction(105), Fraction(5))
    ball, bat = CrtItem("bat", "ball", 110, 100), CrtItem("bat", "ball", 110, 100, asks_expensive=True)
    assert (ball.correct_cents, ball.intuitive_cents) == (5, 10)
    assert (bat.correct_cents, bat.intuitive_cents) == (105, 100)
    assert dollars(5) == "$0.05" and dollars(123456) == "$1,234.56"
    with pytest.raises(ValueError):
        dollars(Fraction(11, 2))
