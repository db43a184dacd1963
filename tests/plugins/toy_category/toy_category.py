"""A toy category, `toy_arithmetic`, defined entirely in this folder: the worked example of
docs/adding-a-category.md. Load it with GENIES_PLUGINS=tests/plugins/toy_category/toy_category.py.

Train a reward model on sums of small numbers, test it on differences: the correct result is preferred
over three results that are off by one to three.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from builders.registry import BuildContext, distribution, register_catalog_dir
from builders.schema import Provenance, Record
from builders.templating import add_template_dir, render, template_id

HERE = Path(__file__).resolve().parent
register_catalog_dir(HERE / "catalog")
add_template_dir(HERE / "templates")

TEMPLATE = "toy/question.j2"
OPERATIONS = {"toy_addition": ("plus", lambda a, b: a + b), "toy_subtraction": ("minus", lambda a, b: a - b)}


def _questions(ctx: BuildContext) -> Iterator[Record]:
    word, compute = OPERATIONS[ctx.distribution]
    pairs = [(a, b) for a in range(10, 100) for b in range(1, 10)]
    for a, b in ctx.rng("questions").sample(pairs, min(ctx.wanted, len(pairs))):
        right = compute(a, b)
        wrong = ctx.rng(a, b).sample([right + d for d in (-3, -2, -1, 1, 2, 3)], 3)
        yield Record(
            distribution=ctx.distribution,
            prompt=render(TEMPLATE, a=a, b=b, operation=word),
            responses=[str(right), *map(str, wrong)],
            preferred=0,
            group=f"toy:{a},{b}",
            provenance=Provenance("toy", row_key=f"{a},{b}"),
            template=template_id(TEMPLATE),
            meta={"a": a, "b": b},
        )


distribution("toy_addition", templates=[TEMPLATE])(_questions)
distribution("toy_subtraction", templates=[TEMPLATE])(_questions)
