"""RAVEN-style matrices rendered as text, and numeric 3x3 patterns.

`generate_raven` follows the structure of the 7 I-RAVEN configurations: a panel is made of components
(one centred shape, a 2x2 or 3x3 grid, left/right, up/down, out/in pairs), and for every component each
attribute (layout = number and position of shapes, type, size, color) follows one row rule from
`builders.generators.rules`. The answer is the bottom-right panel. The candidates come from I-RAVEN's
attribute bisection: two attributes are picked, each gets one wrong value, and the four candidates are all
combinations of {right value, wrong value} for the two. Every value then appears on exactly two candidates,
so neither a per-attribute majority vote nor an "odd one out" choice can find the answer without reading
the matrix (distractors that each change one attribute would make the answer the majority value).
`solve_raven` re-derives the expected answer from the eight visible panels without knowing the rules,
which is how tests prove each item has exactly one correct candidate.

`generate_numeric` makes the easy variant: one number per cell following one row rule. Its distractors
are chosen so that the answer stands out neither by being in the grid nor by its size (see
`numeric_distractors`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from builders.generators.rules import (
    RULE_NAMES,
    completes,
    infer_answer,
    sample_grid,
    visible_part,
)

SHAPES = ("triangle", "square", "pentagon", "hexagon", "circle")
SIZES = (1, 6)
COLORS = (0, 9)
ENTITY_ATTRIBUTES = ("type", "size", "color")
TYPE_RULES = ("constant", "progression", "distribute_three")

CONFIGURATIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "center_single": (("center", 1),),
    "distribute_four": (("grid", 4),),
    "distribute_nine": (("grid", 9),),
    "left_center_single_right_center_single": (("left", 1), ("right", 1)),
    "up_center_single_down_center_single": (("up", 1), ("down", 1)),
    "in_center_single_out_center_single": (("out", 1), ("in", 1)),
    "in_distribute_four_out_center_single": (("out", 1), ("in", 4)),
}


@dataclass(frozen=True)
class Entity:
    type: int
    size: int
    color: int

    def text(self) -> str:
        return f"{SHAPES[self.type]}({self.size},{self.color})"


Component = tuple[Entity | None, ...]  # one slot per position; a single-shape component has one slot
Panel = tuple[Component, ...]


def panel_text(names: tuple[str, ...], panel: Panel) -> str:
    parts = []
    for name, slots in zip(names, panel):
        if len(slots) == 1:
            parts.append(f"{name} {slots[0].text()}")
        else:
            parts.append(f"{name} [" + ", ".join(e.text() if e else "-" for e in slots) + "]")
    return "; ".join(parts)


@dataclass(frozen=True)
class RavenPuzzle:
    configuration: str
    panels: tuple[Panel, ...]  # 9 panels in reading order; the last is the answer
    distractors: tuple[Panel, ...]
    broken: tuple[tuple[str, ...], ...]  # the "component.attribute"s each distractor breaks
    rules: tuple[str, ...]  # "component.attribute=rule", for the record's metadata

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in CONFIGURATIONS[self.configuration])

    @property
    def answer(self) -> Panel:
        return self.panels[-1]

    def rows_text(self) -> list[list[str]]:
        cells = [panel_text(self.names, p) for p in self.panels[:-1]]
        return [cells[0:3], cells[3:6], cells[6:8]]

    def candidate_text(self, panel: Panel) -> str:
        return panel_text(self.names, panel)


def _attribute_grid(panels: list[Panel], component: int, attribute: str) -> list[list[int]]:
    """One attribute of one component, row by row (3+3+3 values, or 3+3+2 for the visible panels)."""
    values = [_attribute_value(p[component], attribute) for p in panels]
    return [values[0:3], values[3:6], values[6:9]]


def _attribute_value(slots: Component, attribute: str) -> int:
    if attribute == "number":
        return sum(e is not None for e in slots)
    entity = next(e for e in slots if e is not None)
    return getattr(entity, attribute)


def _positions(slots: Component) -> frozenset[int]:
    return frozenset(i for i, e in enumerate(slots) if e is not None)


def _expected_positions(visible: list[Panel], component: int) -> frozenset[int] | None:
    """Where the answer's shapes must be, when every row keeps its shapes in place; else None."""
    sets = [_positions(p[component]) for p in visible]
    rows = [sets[0:3], sets[3:6], sets[6:8]]
    if all(len(set(row)) == 1 for row in rows):
        return rows[2][0]
    return None


def solve_raven(configuration: str, visible: list[Panel]) -> dict[str, object]:
    """What each attribute of the missing panel must be, inferred from the 8 visible panels alone.

    Keys are "component.attribute"; a value is None when the visible panels do not determine it.
    """
    expected: dict[str, object] = {}
    for index, (name, slots) in enumerate(CONFIGURATIONS[configuration]):
        attributes = ENTITY_ATTRIBUTES + (("number",) if slots > 1 else ())
        for attribute in attributes:
            expected[f"{name}.{attribute}"] = infer_answer(_attribute_grid(visible, index, attribute))
        if slots > 1:
            expected[f"{name}.position"] = _expected_positions(visible, index)
    return expected


def violations(configuration: str, visible: list[Panel], candidate: Panel) -> list[str]:
    """The attributes ("component.attribute") in which `candidate` breaks the matrix's rules."""
    return _broken(configuration, solve_raven(configuration, visible), candidate)


def _broken(configuration: str, expected: dict[str, object], candidate: Panel) -> list[str]:
    broken = []
    for index, (name, slots) in enumerate(CONFIGURATIONS[configuration]):
        component = candidate[index]
        if slots > 1 and not _layout_matches(expected, name, component):
            broken.append(f"{name}.layout")
        broken += [
            f"{name}.{attribute}"
            for attribute in ENTITY_ATTRIBUTES
            if expected[f"{name}.{attribute}"] != _attribute_value(component, attribute)
        ]
    return broken


def _layout_matches(expected: dict[str, object], name: str, component: Component) -> bool:
    """Layout = number of shapes, plus their positions where the visible rows pin them down."""
    positions = expected[f"{name}.position"]
    count_ok = expected[f"{name}.number"] == _attribute_value(component, "number")
    return count_ok and positions in (None, _positions(component))


def _draw(rng: random.Random, rules: tuple[str, ...], low: int, high: int) -> tuple[str, list[list[int]]]:
    """A rule and a grid following it whose missing cell the solver can infer uniquely."""
    while True:
        rule = rng.choice(rules)
        grid = sample_grid(rng, rule, low, high)
        if grid is not None and infer_answer(visible_part(grid)) == grid[2][2]:
            return rule, grid


def _layouts(rng: random.Random, counts: list[list[int]], slots: int, fixed_per_row: bool) -> list[frozenset[int]]:
    """Occupied positions of each panel: the same per row when the count is constant, else random."""
    layouts = []
    for row in counts:
        kept = frozenset(rng.sample(range(slots), row[0]))
        layouts += [kept if fixed_per_row else frozenset(rng.sample(range(slots), n)) for n in row]
    return layouts


def _component_panels(rng: random.Random, name: str, slots: int) -> tuple[list[Component], list[str]]:
    rules, grids = [], {}
    for attribute, domain, allowed in (
        ("type", (0, len(SHAPES) - 1), TYPE_RULES),
        ("size", SIZES, RULE_NAMES),
        ("color", COLORS, RULE_NAMES),
    ):
        rule, grids[attribute] = _draw(rng, allowed, *domain)
        rules.append(f"{name}.{attribute}={rule}")
    if slots == 1:
        layouts = [frozenset({0})] * 9
    else:
        rule, counts = _draw(rng, RULE_NAMES, 1, slots)
        rules.append(f"{name}.number={rule}")
        layouts = _layouts(rng, counts, slots, fixed_per_row=rule == "constant")
    components = []
    for i, layout in enumerate(layouts):
        r, c = divmod(i, 3)
        entity = Entity(grids["type"][r][c], grids["size"][r][c], grids["color"][r][c])
        components.append(tuple(entity if s in layout else None for s in range(slots)))
    return components, rules


Change = tuple[int, str, object]  # (component index, attribute, new value); a layout's value is its positions


def _wrong_value(rng: random.Random, component: Component, attribute: str) -> object:
    """A redrawn value for one attribute (the caller checks that it really breaks that attribute)."""
    if attribute == "layout":
        slots = len(component)
        return frozenset(rng.sample(range(slots), rng.randint(1, slots)))
    low, high = {"type": (0, len(SHAPES) - 1), "size": SIZES, "color": COLORS}[attribute]
    current = getattr(next(e for e in component if e is not None), attribute)
    return rng.choice([v for v in range(low, high + 1) if v != current])


def _changed(component: Component, attribute: str, value: object) -> Component:
    """`component` with one attribute set; changes commute, as every shape of a panel's component is alike."""
    entity = next(e for e in component if e is not None)
    if attribute == "layout":
        return tuple(entity if s in value else None for s in range(len(component)))
    entity = dataclasses.replace(entity, **{attribute: value})
    return tuple(entity if e is not None else None for e in component)


def _apply(panel: Panel, changes: tuple[Change, ...]) -> Panel:
    components = list(panel)
    for index, attribute, value in changes:
        components[index] = _changed(components[index], attribute, value)
    return tuple(components)


def _breakable(configuration: str) -> list[tuple[int, str]]:
    found = []
    for index, (_, slots) in enumerate(CONFIGURATIONS[configuration]):
        found += [(index, a) for a in ENTITY_ATTRIBUTES] + ([(index, "layout")] if slots > 1 else [])
    return found


def generate_raven(rng: random.Random, configuration: str) -> RavenPuzzle:
    """A matrix in `configuration` with a unique answer and three attribute-bisection distractors."""
    while True:
        per_component, rules = [], []
        for name, slots in CONFIGURATIONS[configuration]:
            components, component_rules = _component_panels(rng, name, slots)
            per_component.append(components)
            rules += component_rules
        panels = [tuple(c[i] for c in per_component) for i in range(9)]
        answer, expected = panels[-1], solve_raven(configuration, panels[:-1])
        if _broken(configuration, expected, answer):
            continue
        found = _bisection_distractors(rng, configuration, expected, answer)
        if found is not None:
            distractors, broken = found
            return RavenPuzzle(configuration, tuple(panels), distractors, broken, tuple(rules))


def _bisection_distractors(
    rng: random.Random, configuration: str, expected: dict[str, object], answer: Panel, tries: int = 20
) -> tuple[tuple[Panel, ...], tuple[tuple[str, ...], ...]] | None:
    """Distractors (first wrong, second wrong, both wrong) for two random attributes; None if none found.

    Each wrong value must break exactly its own attribute, and the double change exactly both.
    """
    targets = rng.sample(_breakable(configuration), 2)
    labels = [f"{CONFIGURATIONS[configuration][index][0]}.{attribute}" for index, attribute in targets]
    for _ in range(tries):
        changes = [(index, attribute, _wrong_value(rng, answer[index], attribute)) for index, attribute in targets]
        distractors = tuple(_apply(answer, chosen) for chosen in ((changes[0],), (changes[1],), tuple(changes)))
        broken = tuple(tuple(_broken(configuration, expected, d)) for d in distractors)
        if [set(b) for b in broken] == [{labels[0]}, {labels[1]}, set(labels)]:
            return distractors, broken
    return None


@dataclass(frozen=True)
class NumericPuzzle:
    grid: tuple[tuple[int, ...], ...]
    rule: str
    distractors: tuple[int, ...]

    @property
    def answer(self) -> int:
        return self.grid[2][2]

    def rows_text(self) -> list[str]:
        visible = visible_part(self.grid)
        return [", ".join(map(str, row)) for row in visible]


def generate_numeric(rng: random.Random, low: int = 1, high: int = 12, n_distractors: int = 3) -> NumericPuzzle:
    """A 3x3 number pattern with one row rule, its unique answer and wrong numbers that complete no rule."""
    while True:
        rule, grid = _draw(rng, RULE_NAMES, low, high)
        distractors = numeric_distractors(rng, visible_part(grid), grid[2][2], n_distractors, low, high)
        if distractors is not None:
            return NumericPuzzle(tuple(map(tuple, grid)), rule, distractors)


def numeric_distractors(
    rng: random.Random, visible: list[list[int]], answer: int, n: int, low: int, high: int
) -> tuple[int, ...] | None:
    """n wrong numbers that appear in the grid exactly when the answer does, as far as the grid allows.

    The answer of a constant or distribute_three row is always in the grid, that of a progression often
    not. Numbers drawn near the answer would rarely be in the grid, so "the number that is in the grid"
    would find the answer. When the answer is in the grid, the distractors are the other grid numbers
    (those shown about as often as the answer first), completed by numbers from the grid's range; when
    it is not, they are absent numbers with the answer at a uniformly drawn rank among the candidates.
    None when no such set exists (the caller draws another grid).
    """
    shown = [v for row in visible for v in row]
    wrong = [v for v in range(low - n, high + n + 1) if v != answer and v >= 0 and not completes(visible, v)]
    absent = [v for v in wrong if v not in shown]
    if answer in shown:
        present = [v for v in wrong if v in shown]
        rng.shuffle(present)
        present.sort(key=lambda v: abs(shown.count(v) - shown.count(answer)))
        chosen = present[:n]
        pool = [v for v in absent if low <= v <= high]
        if len(pool) < n - len(chosen):
            return None
        chosen += rng.sample(pool, n - len(chosen))
    else:
        below_rank = rng.randint(0, n)
        below, above = [v for v in absent if v < answer], [v for v in absent if v > answer]
        if len(below) < below_rank or len(above) < n - below_rank:
            return None
        chosen = rng.sample(below, below_rank) + rng.sample(above, n - below_rank)
    rng.shuffle(chosen)
    return tuple(chosen)
