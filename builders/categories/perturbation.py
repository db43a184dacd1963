"""The `perturbation` category: words of the prompt, the responses or both edited at a per-word rate p.

Members of the `perturbation` family (builders/catalog/families.toml) are named
`<base>__perturb_<placement>_p<p>[_<op>]`, e.g. `arc_easy__perturb_response_p0.3`. Every word (a run of
non-space characters) of the edited texts is, independently with probability p, either preceded by an
inserted word, deleted, or replaced by another word; the three edits have equal odds unless the name
ends in `_insert`, `_delete` or `_replace`. Inserted and replacing words come from the shipped word list
(templates/perturbation/words.txt, generated from MMLU; see `word_list_from_mmlu`).

Randomness is seeded per base row and text (not per member), and every word consumes the same three
draws whatever p is: a word edited at p = 0.3 is edited the same way at p = 0.5, and the `both` member
is exactly the `prompt` and `response` members' edits together. Curves over p therefore compare nested
inputs (common random numbers), not independent draws: less noise between neighbouring p. p = 0
returns every text unchanged.
"""

from __future__ import annotations

import csv
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from builders.catalog.families import Member
from builders.categories._derived import PLACEMENTS, derived, edit_prompt
from builders.registry import BuildContext, distribution_family
from builders.resources import TEMPLATES_DIR
from builders.schema import Record
from builders.splits import seeded_rng

WORDS_FILE = TEMPLATES_DIR / "perturbation" / "words.txt"
EDITS = ("insert", "delete", "replace")
OPS = {"": EDITS, "_insert": ("insert",), "_delete": ("delete",), "_replace": ("replace",)}
WORD = re.compile(r"(\S+)")  # captured, so splitting on it keeps the words


@cache
def word_list() -> tuple[str, ...]:
    """The words insertions and replacements draw from (comment lines skipped)."""
    lines = WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(w for w in (line.strip() for line in lines) if w and not w.startswith("#"))


def perturb_text(
    text: str, p: float, rng: random.Random, words: Sequence[str], ops: Sequence[str] = EDITS
) -> tuple[str, Counter[str]]:
    """`text` with each word edited with probability `p`, and the count of each edit made.

    Separators are kept: a deleted word takes the whitespace before it along (the first word's leading
    whitespace passes to the next word), an inserted word is followed by one space. A deletion that would
    leave the text without a word becomes a replacement.
    """
    parts = WORD.split(text)  # separator, word, separator, word, ..., the text after the last word
    words_in = parts[1::2]
    counts: Counter[str] = Counter(words_seen=len(words_in))
    pieces: list[str] = []  # each word kept or edited, with the separator before it
    draw, last, carried = rng.random, len(words_in) - 1, None
    for i, (separator, word) in enumerate(zip(parts[0::2], words_in)):
        if carried is not None:
            separator, carried = carried, None
        edit_draw, op_draw, word_draw = draw(), draw(), draw()
        if edit_draw >= p:
            pieces.append(separator + word)
            continue
        op = ops[int(op_draw * len(ops))]
        if op == "delete" and not pieces and i == last:
            op = "replace"
        counts[op] += 1
        if op == "delete":
            carried = separator if not pieces else None
        elif op == "insert":
            pieces.append(f"{separator}{_pick(words, word_draw, '')} {word}")
        else:
            pieces.append(separator + _pick(words, word_draw, word))
    if not any(counts[op] for op in EDITS):
        return text, counts
    return "".join(pieces) + parts[-1], counts


def _pick(words: Sequence[str], draw: float, avoid: str) -> str:
    """The word at `draw` in the list, or the next one when it equals the word it replaces."""
    index = int(draw * len(words))
    return words[index] if words[index] != avoid else words[(index + 1) % len(words)]


@dataclass(frozen=True)
class Perturbation:
    """What a perturbation member does to each base row: which texts, how often, which edits."""

    p: float
    ops: tuple[str, ...]
    placement: str
    seed: int

    @classmethod
    def of(cls, member: Member, seed: int) -> Perturbation:
        params = member.params
        return cls(float(params["p"]), OPS[params["ops"]], params["placement"], seed)

    def apply(self, row: Record, distribution: str, words: Sequence[str]) -> Record:
        """The row with its texts perturbed; `meta.perturbation` says how and how much."""
        counts: Counter[str] = Counter()

        def edit(field: str, text: str) -> str:
            rng = seeded_rng("perturbation", self.seed, row.id, field)
            new, made = perturb_text(text, self.p, rng, words, self.ops)
            counts.update(made)
            return new

        edits_prompt, edits_responses = PLACEMENTS[self.placement]
        changes = edit_prompt(row, edit) if edits_prompt else {}
        if edits_responses:
            changes["responses"] = [edit(f"response:{i}", text) for i, text in enumerate(row.responses)]
        info = {"p": self.p, "placement": self.placement, "ops": list(self.ops), "words": counts["words_seen"],
                "edits": {op: counts[op] for op in EDITS}}
        return derived(row, distribution, {"perturbation": info}, **changes)


@distribution_family("perturbation")
def build_perturbed(ctx: BuildContext, member: Member) -> Iterator[Record]:
    """Every row of the base with its words perturbed."""
    perturbation, words = Perturbation.of(member, ctx.seed), word_list()
    for row in ctx.base_rows:
        yield perturbation.apply(row, ctx.distribution, words)


def word_list_from_mmlu(mmlu_dir: Path, size: int = 2000) -> list[str]:
    """The `size` lowercase words (3-12 letters) found in the most MMLU test items, alphabetically.

    MMLU (hendrycks/test, MIT licence) is in the source mirror; standalone lowercase words only, so
    names and sentence-initial words stay out and no fragment of a contraction gets in.
    """
    token = re.compile(r"(?<![\w'])[a-z]{3,12}(?![\w'])")
    items: Counter[str] = Counter()
    for path in sorted((mmlu_dir / "test").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                items.update(set(token.findall(" ".join(row[:5]))))
    ranked = sorted(items.items(), key=lambda item: (-item[1], item[0]))[:size]
    return sorted(word for word, _ in ranked)


def _write_word_list(mirror: Path) -> None:
    header = [
        "# Words for the perturbation category's insertions and replacements.",
        "# Generated by `python -m builders.categories.perturbation ../shared/sources`: the 2,000 lowercase words",
        "# (3-12 letters) that occur in the most MMLU test items (question and options). MMLU: Hendrycks et",
        "# al., https://github.com/hendrycks/test, MIT licence; a word list is a fact about the corpus.",
    ]
    WORDS_FILE.parent.mkdir(parents=True, exist_ok=True)
    WORDS_FILE.write_text("\n".join(header + word_list_from_mmlu(mirror / "mmlu")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _write_word_list(Path(sys.argv[1]))
