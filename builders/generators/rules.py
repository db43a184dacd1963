"""Row rules of Raven-style matrices and a solver that infers them from the visible panels.

A 3x3 matrix follows, for each attribute, one rule applied along every row (as in RAVEN / I-RAVEN):

- constant: the three values of a row are equal;
- progression: each value is the previous one plus a fixed step (the same step in every row);
- arithmetic: the third value is the first plus (or minus) the second;
- distribute_three: every row holds the same three distinct values, each column too (a Latin square).

The solver never sees which rule generated a matrix: it tries every rule on the eight visible values and
answers only when all rules that fit predict the same missing value.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RULE_NAMES = ("constant", "progression", "arithmetic", "distribute_three")
STEPS = (-2, -1, 1, 2)

Grid = Sequence[Sequence[int]]  # rows of values; the last row may have 2 (missing answer) or 3 values


@dataclass(frozen=True)
class Rule:
    name: str
    param: int = 0  # the step of a progression, +1/-1 for arithmetic's sign

    def fits(self, grid: Grid) -> bool:
        return all(_ROW_CHECKS[self.name](self, row) for row in grid if len(row) == 3) and (
            self.name != "distribute_three" or _latin(grid)
        )

    def predict(self, grid: Grid) -> int | None:
        """The missing last value of the last row (None when this rule cannot say)."""
        *rows, (a, b) = grid
        if self.name == "constant":
            return a
        if self.name == "progression":
            return b + self.param
        if self.name == "arithmetic":
            return a + self.param * b
        values = set(rows[0]) if rows else set()
        missing = values - {a, b}
        return missing.pop() if len(missing) == 1 else None


def _latin(grid: Grid) -> bool:
    rows = [list(r) for r in grid]
    values = set(rows[0])
    if len(values) != 3:
        return False
    full = [r for r in rows if len(r) == 3]
    if any(set(r) != values for r in full):
        return False
    columns = [[r[c] for r in rows if len(r) > c] for c in range(3)]
    return all(len(set(col)) == len(col) for col in columns) and set(rows[-1]) <= values


_ROW_CHECKS: dict[str, Callable[[Rule, Sequence[int]], bool]] = {
    "constant": lambda rule, row: row[0] == row[1] == row[2],
    "progression": lambda rule, row: row[1] - row[0] == rule.param == row[2] - row[1],
    "arithmetic": lambda rule, row: row[2] == row[0] + rule.param * row[1],
    "distribute_three": lambda rule, row: len(set(row)) == 3,
}

ALL_RULES = (
    Rule("constant"),
    *(Rule("progression", s) for s in STEPS),
    Rule("arithmetic", 1),
    Rule("arithmetic", -1),
    Rule("distribute_three"),
)


def fitting_rules(grid: Grid) -> list[Rule]:
    """Every rule consistent with all complete rows and, for distribute_three, the partial last row."""
    return [rule for rule in ALL_RULES if rule.fits(grid)]


def infer_answer(visible: Grid) -> int | None:
    """The one value every fitting rule predicts for the missing cell, or None if they disagree/none fit."""
    predictions = {rule.predict(visible) for rule in fitting_rules(visible)}
    return predictions.pop() if len(predictions) == 1 and None not in predictions else None


def completes(visible: Grid, value: int) -> bool:
    """Whether `value` in the missing cell makes the full matrix follow at least one rule."""
    *rows, last = visible
    full = [*rows, [*last, value]]
    return any(rule.fits(full) for rule in ALL_RULES)


def sample_grid(rng: random.Random, rule_name: str, low: int, high: int) -> list[list[int]] | None:
    """A 3x3 grid of values in [low, high] following `rule_name`, or None if the draw left the range."""
    if rule_name == "constant":
        rows = [[v] * 3 for v in (rng.randint(low, high) for _ in range(3))]
    elif rule_name == "progression":
        step = rng.choice(STEPS)
        first, last = max(low, low - 2 * step), min(high, high - 2 * step)
        if first > last:
            return None
        rows = [[s, s + step, s + 2 * step] for s in (rng.randint(first, last) for _ in range(3))]
    elif rule_name == "arithmetic":
        sign = rng.choice((1, -1))
        rows = [_arithmetic_row(rng, sign, low, high) for _ in range(3)]
    else:
        if high - low < 2:
            return None
        values = rng.sample(range(low, high + 1), 3)
        shift = rng.choice((1, 2))
        rows = [[values[(c + r * shift) % 3] for c in range(3)] for r in range(3)]
    if all(low <= v <= high for row in rows for v in row):
        return rows
    return None


def _arithmetic_row(rng: random.Random, sign: int, low: int, high: int) -> list[int]:
    """A row [a, b, a + sign*b] drawn so that all three values usually stay inside [low, high]."""
    if sign > 0:
        a = rng.randint(low, max(low, high - low))
        b = rng.randint(low, max(low, high - a))
        return [a, b, a + b]
    a = rng.randint(min(high, 2 * low), high)
    b = rng.randint(low, max(low, a - low))
    return [a, b, a - b]


def visible_part(grid: Grid) -> list[list[int]]:
    """The grid without its bottom-right cell."""
    return [list(grid[0]), list(grid[1]), list(grid[2][:2])]
