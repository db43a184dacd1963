"""Cognitive-reflection items (bat-and-ball, work rate, doubling) with closed-form answers.

Every item carries the correct answer, derived from the problem's closed form, and the intuitive wrong
answer a hasty reader computes. The correct answer is the larger of the two about as often as the
smaller, so "the smaller" or "the shorter" says nothing about which is right, and the problem quotes
neither answer in digits (work rate names both, in words), so "the number not quoted" says nothing either.

Bat and ball: "A and B cost T together; A costs D more than B". The correct prices solve A + B = T,
A - B = D: B = (T - D) / 2 and A = (T + D) / 2. Two hasty errors are used: the classic one takes D as A's
price, so B = T - D (larger than the truth); the other splits T evenly and then applies the whole
difference, so B = T/2 - D (smaller) or A = T/2 + D (larger). The classic error asked about A would answer
D, a number quoted in the problem, so it is only asked about B. All amounts are whole cents.

Work rate: "a workers make a items in a hours; how long do b workers take for b items?" The rate per
worker is constant, so the time is a hours; the intuitive answer matches the pattern: b hours. The
question spells its numbers out ("three painters three hours") and the answers are digits ("3 hours"), and
it states the known crew before or after the asked one at random: written as digits, the correct answer
"3 hours" would be the one response the question quotes, and the first number it names.

Doubling: something doubles every period p and is complete after T = n * p. Reaching 1/2^k of the end
takes T - k * p (intuitive: T / 2^k); going from 1/2^k to complete takes k * p (intuitive: the rest of the
time in proportion, T - T / 2^k). The shapes are drawn with weights under which every number is as likely
to be a correct answer as an intuitive one (`doubling_shapes`).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

ITEM_PAIRS = (
    ("bat", "ball"), ("notebook", "pen"), ("sandwich", "drink"), ("lamp", "light bulb"), ("guitar", "capo"),
    ("jacket", "scarf"), ("bike", "helmet"), ("teapot", "cup"), ("book", "bookmark"), ("tent", "sleeping mat"),
    ("kite", "spool of string"), ("phone case", "screen protector"), ("skateboard", "knee pad"),
    ("painting", "frame"), ("pizza", "salad"), ("printer", "ink cartridge"), ("watch", "strap"), ("desk", "chair"),
)
CLASSIC, EVEN_SPLIT = "classic", "even_split"
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def quoted_numbers(text: str) -> set[Fraction]:
    """Every number written in `text` (commas and a leading $ ignored), as exact values."""
    return {Fraction(match.replace(",", "")) for match in _NUMBER.findall(text)}


@dataclass(frozen=True)
class CrtItem:
    expensive: str
    cheap: str
    total_cents: int
    difference_cents: int
    asks_expensive: bool = False
    error: str = CLASSIC

    def __post_init__(self) -> None:
        if self.asks_expensive and self.error == CLASSIC:
            raise ValueError("the classic error about the expensive item answers D, which the problem quotes")

    @property
    def asked(self) -> str:
        return self.expensive if self.asks_expensive else self.cheap

    @property
    def question(self) -> str:
        return (
            f"{_capital(_indefinite(self.expensive))} and {_indefinite(self.cheap)} cost {dollars(self.total_cents)} "
            f"in total. The {self.expensive} costs {dollars(self.difference_cents)} more than the {self.cheap}. "
            f"How much does the {self.asked} cost?"
        )

    @property
    def correct_cents(self) -> Fraction:
        expensive, cheap = solve_prices(self.total_cents, self.difference_cents)
        return expensive if self.asks_expensive else cheap

    @property
    def intuitive_cents(self) -> Fraction:
        """The classic reader takes "costs D more" as "costs D"; the even-split reader gives each item
        half the total and then adds (or takes away) the whole difference."""
        if self.error == CLASSIC:
            return Fraction(self.total_cents - self.difference_cents)
        half = Fraction(self.total_cents, 2)
        return half + self.difference_cents if self.asks_expensive else half - self.difference_cents


def _capital(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def _indefinite(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def dollars(cents: int | Fraction) -> str:
    if Fraction(cents).denominator != 1:
        raise ValueError(f"{cents} is not a whole number of cents")
    return f"${int(cents) // 100:,}.{int(cents) % 100:02d}"


def solve_prices(total: int, difference: int) -> tuple[Fraction, Fraction]:
    """Solve x + y = total, x - y = difference exactly: (expensive price, cheap price)."""
    return Fraction(total + difference, 2), Fraction(total - difference, 2)


def is_correct(item: CrtItem, answer_cents: int | Fraction) -> bool:
    """Whether a price for the asked item, with the other item's price it implies, satisfies both facts."""
    asked = Fraction(answer_cents)
    other = asked - item.difference_cents if item.asks_expensive else asked + item.difference_cents
    return asked > 0 and other > 0 and asked + other == item.total_cents


def _candidates_are_fair(question: str, answers: tuple[Fraction, Fraction]) -> bool:
    """Both answers positive, distinct, and neither equal to a number the question states (in its units)."""
    quoted = quoted_numbers(question)
    return answers[0] != answers[1] and all(a > 0 and a not in quoted for a in answers)


def generate_crt(rng: random.Random) -> CrtItem:
    """A bat-and-ball item in whole cents whose correct answer is the smaller one half the time.

    The difference is an even number of cents (so T/2 - D is exact), often not a whole-dollar amount.
    Asking about the cheap item with the even-split error (correct answer larger) takes half the items;
    the classic error and the even-split error about the expensive item (correct answer smaller) a
    quarter each.
    """
    expensive, cheap = rng.choice(ITEM_PAIRS)
    asks_expensive, error = rng.choice(((False, EVEN_SPLIT), (False, EVEN_SPLIT), (False, CLASSIC), (True, EVEN_SPLIT)))
    scale = rng.choice((1, 10, 100))
    while True:
        difference = 2 * rng.randint(5, 50 * scale)
        cheap_cents = rng.randint(difference // 2 + 1, difference // 2 + 100 * scale)
        item = CrtItem(expensive, cheap, 2 * cheap_cents + difference, difference, asks_expensive, error)
        answers = (item.correct_cents / 100, item.intuitive_cents / 100)  # in dollars, as the question writes them
        if _candidates_are_fair(item.question, answers):
            return item


@dataclass(frozen=True)
class Worker:
    """Who works, what they do and what they make: ("painters", "paint", "rooms")."""

    plural: str
    verb: str
    items: str


WORKERS = (
    Worker("painters", "paint", "rooms"), Worker("bakers", "bake", "cakes"), Worker("machines", "make", "widgets"),
    Worker("printers", "print", "posters"), Worker("cleaners", "clean", "offices"), Worker("hens", "lay", "eggs"),
    Worker("tailors", "sew", "shirts"), Worker("robots", "assemble", "cars"), Worker("typists", "type", "reports"),
    Worker("gardeners", "plant", "trees"), Worker("chefs", "cook", "meals"), Worker("potters", "throw", "vases"),
)
TIME_UNITS = ("second", "minute", "hour", "day", "week", "month", "year")


def amount(value: int, unit: str) -> str:
    return f"{value} {unit}" if value == 1 else f"{value} {unit}s"


UNITS_IN_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                  "sixteen seventeen eighteen nineteen").split()
TENS_IN_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def in_words(value: int) -> str:
    """0-99 in English words ("twenty-seven")."""
    if not 0 <= value < 100:
        raise ValueError(f"{value} is outside 0-99")
    if value < 20:
        return UNITS_IN_WORDS[value]
    tens, units = divmod(value, 10)
    return TENS_IN_WORDS[tens - 2] + (f"-{UNITS_IN_WORDS[units]}" if units else "")


def amount_in_words(value: int, unit: str) -> str:
    return f"{in_words(value)} {unit}" + ("" if value == 1 else "s")


@dataclass(frozen=True)
class WorkRateItem:
    worker: Worker
    unit: str
    known: int  # a workers make a items in a units
    asked: int  # b workers, b items
    asked_first: bool = False  # "How long does it take b ..., if it takes a ...?" (the original's order)

    @property
    def question(self) -> str:
        w, a, b = self.worker, in_words(self.known), in_words(self.asked)
        known = f"it takes {a} {w.plural} {amount_in_words(self.known, self.unit)} to {w.verb} {a} {w.items}"
        asked = f"how long does it take {b} {w.plural} to {w.verb} {b} {w.items}"
        if self.asked_first:
            return f"{asked[:1].upper()}{asked[1:]}, if {known}?"
        return f"If {known}, {asked}?"

    @property
    def correct(self) -> int:
        """Each worker makes one item per `known` units whatever the crew size, so b items by b workers
        take as long as a items by a workers."""
        return work_time(self.known, self.known, self.known, self.asked, self.asked)

    @property
    def intuitive(self) -> int:
        return self.asked


def work_time(workers: int, items: int, time: int, new_workers: int, new_items: int) -> int:
    """Time for `new_workers` to make `new_items` at the rate of `workers` making `items` in `time`."""
    value = Fraction(time * new_items * workers, items * new_workers)
    if value.denominator != 1:
        raise ValueError(f"{value} is not a whole number of time units")
    return int(value)


def generate_work_rate(rng: random.Random) -> WorkRateItem:
    """The known and asked crew sizes are distinct and drawn alike, so the correct answer is the larger
    one half the time, and either crew is named first half the time."""
    known, asked = rng.sample(range(2, 31), 2)
    return WorkRateItem(rng.choice(WORKERS), rng.choice(TIME_UNITS[1:5]), known, asked, rng.random() < 0.5)


@dataclass(frozen=True)
class Growth:
    """Something that doubles, and how to say it is complete / at a fraction of completion."""

    subject: str  # "A patch of lily pads on a lake"
    grows: str  # "doubles in size"
    complete: str  # "cover the whole lake"
    partial: str  # "cover {fraction} of the lake"
    reached: str  # "{fraction} of the lake is covered"


GROWTHS = (
    Growth("A patch of lily pads on a lake", "doubles in size", "cover the whole lake", "cover {fraction} of the lake",
           "{fraction} of the lake is covered"),
    Growth("A colony of bacteria in a petri dish", "doubles", "fill the dish", "fill {fraction} of the dish",
           "{fraction} of the dish is full"),
    Growth("Mold on a loaf of bread", "doubles its area", "cover the whole loaf", "cover {fraction} of the loaf",
           "{fraction} of the loaf is moldy"),
    Growth("Algae in a pond", "doubles its coverage", "cover the pond", "cover {fraction} of the pond",
           "{fraction} of the pond is covered"),
    Growth("A rumor in a town", "doubles the number of people who have heard it", "reach everyone in town",
           "reach {fraction} of the town", "{fraction} of the town has heard it"),
    Growth("Ivy on a wall", "doubles the area it covers", "cover the wall", "cover {fraction} of the wall",
           "{fraction} of the wall is covered"),
)
FRACTIONS = {1: "half", 2: "a quarter", 3: "an eighth"}
REACH, FINISH = "reach", "finish"


@dataclass(frozen=True)
class DoublingItem:
    growth: Growth
    unit: str
    period: int  # it doubles every `period` units
    doublings: int  # and is complete after `doublings` periods
    kind: str  # REACH: time to reach 1/2^k; FINISH: time from 1/2^k to complete
    halvings: int  # k

    @property
    def total(self) -> int:
        return self.period * self.doublings

    @property
    def question(self) -> str:
        g = self.growth
        every = self.unit if self.period == 1 else amount(self.period, self.unit)
        fraction = FRACTIONS[self.halvings]
        setup = f"{g.subject} {g.grows} every {every}. It takes {amount(self.total, self.unit)} to {g.complete}."
        if self.kind == REACH:
            return f"{setup} How long does it take to {g.partial.format(fraction=fraction)}?"
        reached = g.reached.format(fraction=fraction)
        return f"{setup} From the moment {reached}, how much longer does it take to {g.complete}?"

    @property
    def correct(self) -> int:
        """k doublings separate 1/2^k from complete."""
        gap = self.halvings * self.period
        return self.total - gap if self.kind == REACH else gap

    @property
    def intuitive(self) -> Fraction:
        """Treating growth as linear: 1/2^k of the way takes 1/2^k of the time."""
        share = Fraction(self.total, 2**self.halvings)
        return share if self.kind == REACH else self.total - share


Shape = tuple[str, int, int, int]  # kind, halvings, period, doublings
PERIODS = (1, 1, *range(2, 13))  # doubling "every day" twice as likely as every n days for any other n
DOUBLINGS = range(4, 61)
BALANCING_ROUNDS = 300


def _fair_shapes() -> dict[Shape, float]:
    """Every shape whose two answers are distinct whole numbers that the question does not state, with its
    prior weight (each kind half, then halvings and doublings uniform, a period of 1 twice as likely)."""
    prior: dict[Shape, float] = {}
    for kind in (REACH, FINISH):
        for halvings in FRACTIONS:
            for period in sorted(set(PERIODS)):
                for doublings in DOUBLINGS:
                    item = DoublingItem(GROWTHS[0], TIME_UNITS[1], period, doublings, kind, halvings)
                    answers = (Fraction(item.correct), item.intuitive)
                    if answers[1].denominator == 1 and _candidates_are_fair(item.question, answers):
                        prior[(kind, halvings, period, doublings)] = PERIODS.count(period)
    return prior


def balanced_weights(pairs: np.ndarray, kinds: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Weights near `prior` (iterative proportional fitting) under which every value is as likely to be the
    correct answer (`pairs[:, 0]`) as the intuitive one (`pairs[:, 1]`), and each kind half the mass.

    Each round scales a shape by the square root of how under-used its correct value is as a correct answer
    relative to an intuitive one, and the same for its intuitive value; values only ever seen on one side
    drop out.
    """
    weights = prior / prior.sum()
    size = int(pairs.max()) + 1
    for _ in range(BALANCING_ROUNDS):
        as_correct = np.bincount(pairs[:, 0], weights, size)
        as_intuitive = np.bincount(pairs[:, 1], weights, size)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.sqrt(as_intuitive[pairs[:, 0]] / as_correct[pairs[:, 0]]
                             * as_correct[pairs[:, 1]] / as_intuitive[pairs[:, 1]])
        weights = np.nan_to_num(weights * factor, posinf=0.0)
        for kind in np.unique(kinds):
            weights[kinds == kind] /= 2 * weights[kinds == kind].sum()
    return weights


@functools.cache
def doubling_shapes() -> tuple[tuple[Shape, ...], tuple[float, ...]]:
    """The fair shapes and their balanced weights: drawn by the prior alone, small numbers were mostly
    correct answers (k doublings take k periods) and others mostly intuitive ones, so a reader of the
    responses alone, never the question, picked the right one three times in four."""
    prior = _fair_shapes()
    shapes = tuple(prior)
    pairs = np.array([[_answers(shape)[0], _answers(shape)[1]] for shape in shapes], dtype=np.int64)
    kinds = np.array([shape[0] == REACH for shape in shapes])
    weights = balanced_weights(pairs, kinds, np.array([prior[shape] for shape in shapes], dtype=np.float64))
    return shapes, tuple(weights.tolist())


def _answers(shape: Shape) -> tuple[int, int]:
    kind, halvings, period, doublings = shape
    item = DoublingItem(GROWTHS[0], TIME_UNITS[1], period, doublings, kind, halvings)
    return item.correct, int(item.intuitive)


def generate_doubling(rng: random.Random) -> DoublingItem:
    """A shape drawn by its balanced weight (see `doubling_shapes`): REACH (correct answer larger) and FINISH
    (correct answer smaller) each half the time, every candidate a whole number of units that the question
    does not state, and every number as often right as wrong."""
    growth, unit = rng.choice(GROWTHS), rng.choice(TIME_UNITS[1:])
    shapes, weights = doubling_shapes()
    kind, halvings, period, doublings = rng.choices(shapes, weights)[0]
    return DoublingItem(growth, unit, period, doublings, kind, halvings)
