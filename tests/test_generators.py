"""Procedural generators: every item has exactly one correct answer, proved by independent solvers."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

import pytest

from builders.generators.crt import (
    CLASSIC,
    EVEN_SPLIT,
    FINISH,
    GROWTHS,
    REACH,
    CrtItem,
    DoublingItem,
    WorkRateItem,
    dollars,
    doubling_shapes,
    generate_crt,
    generate_doubling,
    generate_work_rate,
    in_words,
    is_correct,
    quoted_numbers,
    solve_prices,
    work_time,
)
from builders.generators.ranking import Above, AtRank, count_orderings, generate_ranking
from builders.generators.raven import (
    CONFIGURATIONS,
    generate_numeric,
    generate_raven,
    numeric_distractors,
    solve_raven,
    violations,
)
from builders.generators.rules import completes, infer_answer, visible_part


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
        spread = [sum(abs(c - other) for other in candidates) for c in candidates]
        hits["middle"] += _expected_hit(spread, pick_highest=False)
        hits["largest"] += _expected_hit(candidates, pick_highest=True)
        hits["smallest"] += _expected_hit(candidates, pick_highest=False)
    assert {name: hit / items <= CHANCE + TOLERANCE for name, hit in hits.items()} == dict.fromkeys(hits, True), hits


def test_numeric_answer_is_in_the_grid_about_as_often_as_a_distractor():
    """'Pick the number shown in the grid' found the answer far above chance when distractors were drawn
    near the answer. Constant and distribute_three grids show only two numbers besides the answer, so
    the rule keeps a third of those: about 0.3 overall, never near the 0.4 that a cue would reach."""
    items, in_grid, answer_in_grid = 600, 0.0, 0
    for seed in range(items):
        puzzle = generate_numeric(random.Random(seed))
        shown = [v for row in visible_part(puzzle.grid) for v in row]
        candidates = [puzzle.answer, *puzzle.distractors]
        in_grid += _expected_hit([c in shown for c in candidates], pick_highest=True)
        answer_in_grid += puzzle.answer in shown
    assert in_grid / items <= CHANCE + 0.07
    assert 0.3 < answer_in_grid / items < 0.95, "the answer is in the grid for some rules and not for others"


def test_numeric_distractors_stay_in_the_grid_when_the_answer_does():
    visible = [[4, 4, 4], [9, 9, 9], [2, 2]]  # constant rows: 2 completes, 4 and 9 are shown but wrong
    distractors = numeric_distractors(random.Random(0), visible, 2, 3, 1, 12)
    assert {4, 9} < set(distractors) and not any(completes(visible, d) for d in distractors)


def test_crt_items_have_computed_correct_and_intuitive_answers():
    items = [generate_crt(random.Random(seed)) for seed in range(100)]
    assert 15 < sum(item.asks_expensive for item in items) < 40, "ask for either item"
    for item in items:
        assert is_correct(item, item.correct_cents)
        assert not is_correct(item, item.intuitive_cents)
        assert item.correct_cents.denominator == 1 and item.correct_cents > 0
        assert dollars(item.correct_cents) != dollars(item.intuitive_cents)
        assert dollars(item.total_cents) in item.question and dollars(item.difference_cents) in item.question
        assert item.question.endswith(f"How much does the {item.asked} cost?")


def _correct_is_larger_share(pairs: list[tuple[Fraction, Fraction]]) -> float:
    return sum(correct > intuitive for correct, intuitive in pairs) / len(pairs)


def test_crt_answers_are_never_quoted_and_neither_size_nor_round_dollars_is_a_cue():
    """The intuitive answer is what a hasty reader computes, not a number copied from the problem."""
    items = [generate_crt(random.Random(seed)) for seed in range(400)]
    for item in items:
        quoted = quoted_numbers(item.question)
        assert item.correct_cents / 100 not in quoted and item.intuitive_cents / 100 not in quoted, item.question
    assert 0.4 < _correct_is_larger_share([(i.correct_cents, i.intuitive_cents) for i in items]) < 0.6
    assert sum(item.difference_cents % 100 == 0 for item in items) < 40, "differences are not all whole dollars"
    assert {item.error for item in items} == {CLASSIC, EVEN_SPLIT}


def test_crt_even_split_error_is_the_whole_difference_applied_to_half_the_total():
    cheap = CrtItem("bat", "ball", 110, 10, error=EVEN_SPLIT)
    assert (cheap.correct_cents, cheap.intuitive_cents) == (50, 45)
    dear = CrtItem("bat", "ball", 110, 10, asks_expensive=True, error=EVEN_SPLIT)
    assert (dear.correct_cents, dear.intuitive_cents) == (60, 65)
    with pytest.raises(ValueError, match="quotes"):
        CrtItem("bat", "ball", 110, 100, asks_expensive=True)


def _simulated_work_time(item: WorkRateItem) -> int:
    """Hours until `asked` workers finish `asked` items, ticking one time unit at a time."""
    per_worker_per_unit = Fraction(item.known, item.known * item.known)
    done, elapsed = Fraction(0), 0
    while done < item.asked:
        done += item.asked * per_worker_per_unit
        elapsed += 1
    return elapsed


def test_work_rate_answers_come_from_the_rate_and_name_both_candidates_in_words():
    items = [generate_work_rate(random.Random(seed)) for seed in range(300)]
    for item in items:
        assert item.correct == _simulated_work_time(item) != item.intuitive
        assert not quoted_numbers(item.question), "no digits: the digit answer '3 hours' is never quoted"
        assert f" {in_words(item.correct)} " in item.question and f" {in_words(item.intuitive)} " in item.question
    assert 0.4 < sum(item.asked_first for item in items) / len(items) < 0.6, "either crew is named first"
    assert in_words(27) == "twenty-seven" and in_words(13) == "thirteen" and in_words(40) == "forty"
    assert work_time(5, 5, 5, 100, 100) == 5 and work_time(2, 4, 6, 4, 4) == 3
    assert 0.4 < _correct_is_larger_share([(i.correct, i.intuitive) for i in items]) < 0.6


def _simulated_doubling(item: DoublingItem) -> int:
    """Time units between the two sizes the question names, by doubling from one seed period by period."""
    full = 2**item.doublings
    size, sizes = 1, {0: 1}
    for elapsed in range(item.period, item.total + 1, item.period):
        size *= 2
        sizes[elapsed] = size
    part = next(t for t, s in sizes.items() if s == Fraction(full, 2**item.halvings))
    return part if item.kind == REACH else item.total - part


def test_doubling_answers_match_a_simulation_and_are_never_quoted():
    items = [generate_doubling(random.Random(seed)) for seed in range(300)]
    for item in items:
        assert item.correct == _simulated_doubling(item) != item.intuitive
        assert not {item.correct, item.intuitive} & quoted_numbers(item.question), item.question
    assert {item.kind for item in items} == {REACH, FINISH}
    assert 0.4 < _correct_is_larger_share([(i.correct, i.intuitive) for i in items]) < 0.6


def test_every_doubling_answer_is_as_likely_correct_as_intuitive():
    """Drawn without balancing, "2 days" was mostly a correct answer and "9 days" mostly an intuitive one,
    so the numbers alone told the answer; the balanced weights make each number's two roles equally likely."""
    shapes, weights = doubling_shapes()
    as_correct: Counter = Counter()
    as_intuitive: Counter = Counter()
    for (kind, halvings, period, doublings), weight in zip(shapes, weights):
        item = DoublingItem(GROWTHS[0], "day", period, doublings, kind, halvings)
        as_correct[item.correct] += weight
        as_intuitive[int(item.intuitive)] += weight
    assert sum(abs(as_correct[v] - as_intuitive[v]) for v in as_correct | as_intuitive) < 1e-6
    assert sum(w for (kind, *_), w in zip(shapes, weights) if kind == REACH) == pytest.approx(0.5)
    assert sum(w > 0 for w in weights) > 1000, "the weights stay spread over many shapes"


def test_crt_classic_bat_and_ball():
    assert solve_prices(110, 100) == (Fraction(105), Fraction(5))
    ball, bat = CrtItem("bat", "ball", 110, 100), CrtItem("bat", "ball", 110, 100, asks_expensive=True, error=EVEN_SPLIT)
    assert (ball.correct_cents, ball.intuitive_cents) == (5, 10)
    assert bat.correct_cents == 105
    assert dollars(5) == "$0.05" and dollars(123456) == "$1,234.56"
    with pytest.raises(ValueError):
        dollars(Fraction(11, 2))
