"""Recipe steps for distributions whose items come from an upstream table, or whose labels are made by code.

- `math`: MATH problems (optionally only the levels in the spec's `meta.levels`), reference solution preferred.
- `final_answers_differ`: a flawed solution must not reach the reference's final answer; `\\boxed{x}` is
  then unwrapped in every solution, so the LaTeX marker cannot cue which solution is the reference.
- `mmlu`: the MMLU items of alpaca_mmlu (same filtering, same groups), the four options as
  responses; spanish_input/spanish_output translate them.
- `word_swap`: the LLM picks which of a few listed word pairs to swap; the swap itself is code, so the
  preferred response (the correct option, swap applied) is right by construction. Only words of the same
  kind are offered (the same set of Penn Treebank tags in lemminflect's lexicon, so the swapped text stays
  grammatical), and the instruction names the two words in a seeded order, so the order gives nothing away.
- `quotes` + `attribution_replies`: a user misattributes a quote; the LLM writes one reply body and the two
  responses differ only in the attribution sentence (correcting vs going along), so nothing but the
  honesty of that sentence tells them apart.

Every step is a step object as in builders/recipes/steps.py and rejects with labelled reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import lemminflect

from builders.recipes.steps import (
    STRING,
    Ask,
    Candidate,
    LLMStep,
    RecipeRun,
    Step,
    choice,
    object_schema,
    register_step,
    strip_debris,
)
from builders.registry import BuildContext
from builders.rows import AttributedQuotes, MathProblems, MmluQuestions
from builders.templating import render
from builders.text import answer_key, unbox

if TYPE_CHECKING:
    from builders.recipes.spec import Spec

STOPWORDS = frozenset((
    "about", "above", "after", "again", "against", "also", "among", "because", "been", "before", "being",
    "below", "between", "both", "could", "does", "doing", "down", "during", "each", "either", "every", "from",
    "further", "have", "having", "here", "into", "itself", "just", "more", "most", "much", "must", "neither",
    "only", "other", "over", "same", "several", "should", "some", "such", "than", "that", "their", "them",
    "then", "there", "these", "they", "this", "those", "through", "under", "until", "upon", "very", "what",
    "when", "where", "which", "while", "whom", "whose", "will", "with", "within", "without", "would", "your",
    "true", "false", "none", "else", "anything", "something", "nothing", "everything", "many", "least", "like",
    "make", "made", "following", "best", "likely", "following", "statement", "statements", "question",
))
MAX_PAIRS = 6


@register_step
class Math(Step):
    """MATH problems with their reference solution preferred; too long a solution is rejected unsent."""

    name = "math"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        limit = run.spec.quality.max_chars
        cursor = run.cursor(MathProblems(run.spec.meta.get("levels")))
        for row in cursor.take(run.need):
            candidate = Candidate(
                instruction=row["problem"].strip(), input="", preferred=row["solution"].strip(),
                group=f"math:{row['row_key']}", row_key=row["row_key"], source="math", revision=cursor.revision,
                meta={"subject": row["subject"], "level": row["level"]},
            )
            if len(candidate.preferred) > limit:
                run.reject(candidate, self.name, f"reference solution longer than {limit} characters")
                continue
            candidates.append(candidate)
        return candidates


@register_step
class FinalAnswersDiffer(Step):
    """Reject an item whose flawed solution boxes the reference's final answer; then unwrap every `\\boxed`."""

    name = "final_answers_differ"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        kept = []
        for candidate in candidates:
            reference = answer_key(candidate.preferred)
            same = reference is not None and reference in map(answer_key, candidate.worse)
            if run.judged(candidate, self.name, f"a flawed solution reaches the reference answer {reference}" if same else None):
                candidate.preferred, candidate.worse = unbox(candidate.preferred), [unbox(w) for w in candidate.worse]
                kept.append(candidate)
        return kept


@register_step
class Mmlu(Step):
    """The MMLU questions alpaca_mmlu uses, the correct option preferred over the other three."""

    name = "mmlu"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        cursor = run.cursor(MmluQuestions())
        for row in cursor.take(run.need):
            choices = list(row["choices"])
            preferred = choices.pop(row["answer"])
            candidates.append(Candidate(
                instruction=row["question"].strip(), input="", preferred=preferred, worse=choices,
                group=row["group"], row_key=row["row_key"], source="mmlu", revision=cursor.revision,
                meta={"from_mmlu": True, "subject": row["subject"], "upstream_split": row["split"]},
            ))
        return candidates


def content_words(text: str) -> list[str]:
    """Distinct lower-cased words of four or more letters that carry meaning, in order of appearance."""
    words = (w.lower() for w in re.findall(r"\b[A-Za-z]{4,}\b", text))
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))


def swap_words(text: str, first: str, second: str) -> str:
    """`text` with whole-word occurrences of `first` and `second` exchanged, keeping each word's capitals."""
    other = {first.lower(): second, second.lower(): first}

    def replace(match: re.Match[str]) -> str:
        word, new = match.group(), other[match.group().lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    return re.sub(rf"\b({re.escape(first)}|{re.escape(second)})\b", replace, text, flags=re.IGNORECASE)


@cache
def word_tags(word: str) -> frozenset[str]:
    """Every Penn Treebank tag the lower-cased word form can carry (empty for a word the lexicon lacks)."""
    tags: set[str] = set()
    for upos, lemmas in lemminflect.getAllLemmas(word).items():
        for lemma in lemmas:
            tags.update(tag for tag, forms in lemminflect.getAllInflections(lemma, upos).items() if word in forms)
    return frozenset(tags)


def same_kind(first: str, second: str) -> bool:
    """Whether two words can stand in for each other anywhere: both known, with the same possible tags
    ("students" and "compare" are not: a plural noun and a verb)."""
    return bool(word_tags(first)) and word_tags(first) == word_tags(second)


def swap_pairs(run: RecipeRun, candidate: Candidate) -> list[tuple[str, str]]:
    """Up to MAX_PAIRS (answer word, question word) pairs of the same kind: swapping one always changes the
    correct answer and leaves grammatical text."""
    answer_words = content_words(candidate.preferred)
    question_words = [w for w in content_words(candidate.instruction) if w not in answer_words]
    pairs = [(a, q) for a in answer_words for q in question_words if same_kind(a, q)]
    run.ctx.rng("pairs", candidate.group).shuffle(pairs)
    return pairs[:MAX_PAIRS]


@register_step
class WordSwap(LLMStep):
    """Redefine two words as each other: the LLM picks the pair, code swaps them in question and options.

    Responses: the correct option with the swap applied (preferred), the correct option read literally
    (wrong under the swap), and two other options with the swap applied.
    """

    name = "word_swap"
    own_templates = ("pick", "instruction")

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        asks = []
        for candidate in candidates:
            pairs = swap_pairs(run, candidate)
            if not pairs:
                run.reject(candidate, self.name, "no word of the correct option can be swapped with a word of the "
                                                 "same kind in the question")
                continue
            asks.append(Ask(candidate, {"instruction": candidate.instruction, "answer": candidate.preferred,
                                        "pairs": pairs}, choice(len(pairs))))
        return asks

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        _apply_swap(run, ask.owner, *ask.variables["pairs"][parsed["best"] - 1])
        return None


def _apply_swap(run: RecipeRun, candidate: Candidate, first: str, second: str) -> None:
    """Swap `first` (a word of the correct option) and `second` everywhere; the instruction names the two in
    a seeded order, since naming the correct option's word first would tell which response respects the swap."""
    distractors = list(candidate.worse)
    run.ctx.rng("distractors", candidate.group).shuffle(distractors)
    named = [first, second]
    run.ctx.rng("named", candidate.group).shuffle(named)
    literal = candidate.preferred
    candidate.instruction = render(run.spec.template("instruction"), first=named[0], second=named[1],
                                   question=swap_words(candidate.instruction, first, second))
    candidate.preferred = swap_words(literal, first, second)
    candidate.worse = [literal, *(swap_words(d, first, second) for d in distractors[:run.spec.worse_count - 1])]
    candidate.meta.update({"swapped": named})


@dataclass(frozen=True)
class MisattributedQuotes:
    """Single-author quotes (as quote_attribution uses them), each with a wrong author drawn from the pool
    (so fame alone cannot tell the two apart) and one of four framings."""

    source: str = "quotes"

    def rows(self, ctx: BuildContext) -> list[dict[str, Any]]:
        quotes = AttributedQuotes(self.source).rows(ctx)
        authors = [q["author"] for q in quotes]
        for quote in quotes:
            rng = ctx.rng("author", quote["row_key"])
            quote["wrong_author"] = quote["author"]
            while quote["wrong_author"] == quote["author"]:
                quote["wrong_author"] = rng.choice(authors)
            quote["framing"] = rng.randrange(4)
        return quotes


@register_step
class Quotes(Step):
    """Quotes a user attributes to the wrong author, in the words of the spec's `user.j2`."""

    name = "quotes"

    def templates(self, spec: Spec) -> list[str]:
        return [spec.template("user")]

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        cursor = run.cursor(MisattributedQuotes())
        for row in cursor.take(run.need):
            candidates.append(Candidate(
                instruction=render(run.spec.template("user"), quote=row["quote"], author=row["wrong_author"],
                                   framing=row["framing"]).strip(),
                input="", preferred="", group=f"quotes:{row['row_key']}", row_key=row["row_key"], source="quotes",
                revision=cursor.revision,
                meta={"quote": row["quote"], "true_author": row["author"], "wrong_author": row["wrong_author"]},
            ))
        return candidates


def _surname(author: str) -> str:
    return author.split()[-1].lower()


@register_step
class AttributionReplies(LLMStep):
    """One LLM-written reply body per item (naming nobody); the attribution sentence in front is code."""

    name = "attribution_replies"
    own_templates = ("body", "reply")

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        schema = object_schema(answer=STRING)
        return [Ask(c, {"request": c.instruction, "quote": c.meta["quote"]}, schema) for c in candidates]

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        candidate, body = ask.owner, strip_debris(parsed["answer"])
        named = [a for a in (candidate.meta["true_author"], candidate.meta["wrong_author"])
                 if re.search(rf"\b{re.escape(_surname(a))}\b", body.lower())]
        if named:
            return f"the reply body names {named[0]}: the attribution must come only from the sentence in front"
        variant = run.ctx.rng("reply", candidate.group).randrange(3)
        reply = {"true_author": candidate.meta["true_author"], "wrong_author": candidate.meta["wrong_author"],
                 "body": body, "variant": variant}
        candidate.preferred = render(run.spec.template("reply"), honest=True, **reply).strip()
        candidate.worse = [render(run.spec.template("reply"), honest=False, **reply).strip()]
        return None
