"""Ordering puzzles: objects with a hidden order, clues that pin it down, a question about one rank.

An item is a hidden ranking of `n` objects plus clues of two kinds: "A is <more> than B" and "A is the
k-th <most>". Clues are drawn until the solver finds exactly one ranking consistent with them, then
every clue the solution does not need is dropped. As in the original GENIES puzzles, the number of clues
is then drawn from a range and filled up with further true (redundant) clues, and all clues are shuffled,
so the count of clues says nothing about the solution. The question asks which object holds a rank that
no clue states outright, so answering needs chained reasoning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import reduce

ORDINALS = ("", "second ", "third ", "fourth ", "fifth ", "sixth ", "seventh ")


@dataclass(frozen=True)
class Theme:
    """How to talk about one kind of hidden property (density, height, ...)."""

    intro: str
    objects: tuple[str, ...]
    more: str
    less: str
    most: str
    least: str


THEMES = (
    Theme("The following symbols represent materials of unknown densities", tuple("🔴🔺⬜🔵🔷⬛🔶🟢🟣"),
          "denser than", "less dense than", "most dense", "least dense"),
    Theme("The following people have unknown heights",
          ("Ada", "Bo", "Cyd", "Dev", "Eli", "Fay", "Gus", "Hal", "Ivy"),
          "taller than", "shorter than", "tallest", "shortest"),
    Theme("The following boxes have unknown weights",
          ("Box A", "Box B", "Box C", "Box D", "Box E", "Box F", "Box G", "Box H", "Box J"),
          "heavier than", "lighter than", "heaviest", "lightest"),
    Theme("The following runners finished a race at unknown times",
          ("Ana", "Ben", "Cal", "Dee", "Eve", "Finn", "Gia", "Hugo", "Iris"),
          "faster than", "slower than", "fastest", "slowest"),
)


@dataclass(frozen=True, order=True)
class Above:
    """`higher` ranks above `lower` (is denser, taller, ...)."""

    higher: int
    lower: int


@dataclass(frozen=True, order=True)
class AtRank:
    """Object `item` holds rank `rank` (0 = the most)."""

    item: int
    rank: int


Clue = Above | AtRank


def count_orderings(n: int, clues: list[Clue], limit: int = 2) -> int:
    """How many rankings of `n` objects satisfy every clue (stops counting at `limit`).

    Dynamic programming over the set of objects already placed at the top ranks: an object can take
    the next rank when everything known to rank above it is already placed and no rank clue forbids it.
    Only reachable sets are visited, and the objects a rank admits are one bit mask per rank, so a step
    only tries the objects it may place (the generators call this hundreds of thousands of times a build).
    """
    must_follow = [0] * n
    fixed_rank: dict[int, int] = {}
    rank_owner: dict[int, int] = {}
    for clue in clues:
        if isinstance(clue, Above):
            must_follow[clue.lower] |= 1 << clue.higher
        else:
            if fixed_rank.get(clue.item, clue.rank) != clue.rank or rank_owner.get(clue.rank, clue.item) != clue.item:
                return 0
            fixed_rank[clue.item] = clue.rank
            rank_owner[clue.rank] = clue.item
    unranked = sum(1 << item for item in range(n) if item not in fixed_rank)
    admits = [1 << rank_owner[rank] if rank in rank_owner else unranked for rank in range(n)]
    layer = {0: 1}  # placed set -> rankings of it (capped at `limit`), for the sets of `rank` objects
    for rank in range(n):
        following: dict[int, int] = {}
        for placed, count in layer.items():
            free = admits[rank] & ~placed
            while free:
                bit = free & -free
                free ^= bit
                if not must_follow[bit.bit_length() - 1] & ~placed:
                    total = following.get(placed | bit, 0) + count
                    following[placed | bit] = total if total < limit else limit
        layer = following
    return layer.get((1 << n) - 1, 0)


@dataclass(frozen=True)
class RankingPuzzle:
    theme: Theme
    objects: tuple[str, ...]
    order: tuple[int, ...]  # object indices from the most to the least
    clues: tuple[Clue, ...]
    asked_rank: int
    distractors: tuple[int, ...]
    reversed_wording: frozenset[Clue] = frozenset()  # order clues stated as "B is <less> than A"

    @property
    def answer(self) -> int:
        return self.order[self.asked_rank]

    def clue_text(self, clue: Clue) -> str:
        if isinstance(clue, AtRank):
            return f"{self.objects[clue.item]} is the {rank_phrase(self.theme, clue.rank, len(self.objects))}."
        if clue in self.reversed_wording:
            return f"{self.objects[clue.lower]} is {self.theme.less} {self.objects[clue.higher]}."
        return f"{self.objects[clue.higher]} is {self.theme.more} {self.objects[clue.lower]}."

    @property
    def question(self) -> str:
        return f"Which one is the {rank_phrase(self.theme, self.asked_rank, len(self.objects))}?"

    def consistent_answers(self) -> list[int]:
        """Every object that holds the asked rank in some ranking consistent with the clues."""
        return [
            item
            for item in range(len(self.objects))
            if count_orderings(len(self.objects), [*self.clues, AtRank(item, self.asked_rank)], limit=1)
        ]


def rank_phrase(theme: Theme, rank: int, n: int) -> str:
    """'most dense', 'third most dense', 'least dense', 'second least dense'."""
    from_bottom = n - 1 - rank
    if rank <= from_bottom:
        return f"{ORDINALS[rank]}{theme.most}"
    return f"{ORDINALS[from_bottom]}{theme.least}"


def _true_clues(order: tuple[int, ...]) -> list[Clue]:
    rank_of = {item: rank for rank, item in enumerate(order)}
    above = [Above(a, b) for a in order for b in order if rank_of[a] < rank_of[b]]
    return [*above, *(AtRank(item, rank) for item, rank in rank_of.items())]


def _tighten(n: int, clues: list[Clue]) -> list[Clue]:
    """Drop every clue the unique solution does not need (tries the latest-drawn clues first)."""
    def drop_if_redundant(kept: list[Clue], clue: Clue) -> list[Clue]:
        without = [c for c in kept if c != clue]
        return without if count_orderings(n, without) == 1 else kept

    return reduce(drop_if_redundant, reversed(clues), list(clues))


def generate_ranking(
    rng: random.Random, n: int, n_responses: int = 4, clue_range: tuple[int, int] | None = None
) -> RankingPuzzle:
    """A puzzle over `n` objects with a unique solution and a question no single clue answers.

    With `clue_range` (low, high) the puzzle has between low and high clues: a tight set longer than
    `high` is redrawn, a shorter one is padded with further true order clues. The responses are objects
    whose rank no clue states (see `_responses`).
    """
    while True:
        theme = rng.choice(THEMES)
        objects = tuple(rng.sample(theme.objects, n))
        order = tuple(rng.sample(range(n), n))
        pool = _true_clues(order)
        rng.shuffle(pool)
        clues: list[Clue] = []
        while count_orderings(n, clues) != 1:
            clues.append(pool.pop())
        clues = _tighten(n, clues)
        if clue_range and len(clues) > clue_range[1]:
            continue
        if clue_range:
            clues = _padded(rng, clues, order, rng.randint(max(clue_range[0], len(clues)), clue_range[1]))
        chosen = _responses(rng, n, order, clues, min(n_responses, n))
        if chosen is None:
            continue
        asked, distractors = chosen
        reversed_wording = frozenset(c for c in clues if isinstance(c, Above) and rng.random() < 0.5)
        puzzle = RankingPuzzle(theme, objects, order, tuple(clues), asked, distractors, reversed_wording)
        if puzzle.consistent_answers() == [puzzle.answer]:
            return puzzle


def _padded(rng: random.Random, clues: list[Clue], order: tuple[int, ...], size: int) -> list[Clue]:
    """`clues` plus true order clues up to `size`, shuffled (an added rank clue could state the answer)."""
    spare = [c for c in _true_clues(order) if isinstance(c, Above) and c not in clues]
    padded = [*clues, *rng.sample(spare, min(len(spare), size - len(clues)))]
    rng.shuffle(padded)
    return padded


def _responses(
    rng: random.Random, n: int, order: tuple[int, ...], clues: list[Clue], k: int
) -> tuple[int, tuple[int, ...]] | None:
    """An asked rank and k - 1 distractors, or None when fewer than k ranks are left unstated.

    The k responses are drawn among the objects whose rank no clue states, and the answer uniformly among
    them. An object whose rank a clue states is mentioned once more, so if it could be a distractor,
    "the least mentioned object" would often be the answer; drawn this way, no property of an object
    in the clues (how often or where it is mentioned) tells the answer from the distractors.
    """
    stated = {c.rank for c in clues if isinstance(c, AtRank)}
    open_ranks = [r for r in range(n) if r not in stated]
    if len(open_ranks) < k:
        return None
    asked, *others = rng.sample(open_ranks, k)
    return asked, tuple(order[r] for r in others)
