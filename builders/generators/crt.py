"""Bat-and-ball cognitive-reflection items with computed correct and intuitive answers.

"A and B cost T together; A costs D more than B; how much does B (or A) cost?" The intuitive reading
takes D as A's price, so it answers T - D for B and D for A; the correct prices solve A + B = T,
A - B = D: B = (T - D) / 2 and A = (T + D) / 2. Asking for either item keeps "the smaller amount is
right" from being a cue. Amounts are whole cents, so the arithmetic is exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

ITEM_PAIRS = (
    ("bat", "ball"), ("notebook", "pen"), ("sandwich", "drink"), ("lamp", "light bulb"), ("guitar", "capo"),
    ("jacket", "scarf"), ("bike", "helmet"), ("teapot", "cup"), ("book", "bookmark"), ("tent", "sleeping mat"),
    ("kite", "spool of string"), ("phone case", "screen protector"), ("skateboard", "knee pad"),
    ("painting", "frame"), ("pizza", "salad"), ("printer", "ink cartridge"), ("watch", "strap"), ("desk", "chair"),
)


@dataclass(frozen=True)
class CrtItem:
    expensive: str
    cheap: str
    total_cents: int
    difference_cents: int
    asks_expensive: bool = False

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
    def intuitive_cents(self) -> int:
        """The answer of someone who reads "costs D more" as "costs D"."""
        return self.difference_cents if self.asks_expensive else self.total_cents - self.difference_cents


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


def generate_crt(rng: random.Random) -> CrtItem:
    """An item whose prices are whole cents, so correct and intuitive answers are both exact."""
    expensive, cheap = rng.choice(ITEM_PAIRS)
    scale = rng.choice((1, 10, 100))
    cheap_cents = rng.randint(1, 99) * scale
    difference = rng.randint(1, 40) * 100 * max(1, scale // 10)
    return CrtItem(expensive, cheap, 2 * cheap_cents + difference, difference, asks_expensive=rng.random() < 0.5)
