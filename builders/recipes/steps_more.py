"""Recipe steps for distributions whose items come from an upstream table, or whose labels are made by code.

- `math`: MATH problems (optionally only the levels in the spec's `meta.levels`), reference solution preferred.
- `final_answers_differ`: a flawed solution must not reach the reference's final answer; `\\boxed{x}` is
  then unwrapped in every solution, so the LaTeX marker cannot cue which solution is the reference.
- `mmlu`: the MMLU items of alpaca_mmlu (same filtering, same groups), the four options as
  responses; spanish_input/spanish_output translate them.
- `word_swap`: the LLM picks which of a few listed word pairs to swap; the swap itself is code, so the
  preferred response (the correct option, swap applied) is right by construction.
- `quotes` + `attribution_replies`: a user misattributes a quote; the LLM writes one reply body and the two
  responses differ only in the attribution sentence (correcting vs going along), so nothing but the
  honesty of that sentence tells them apart.

Every step takes and returns candidates as in builders/recipes/steps.py and rejects with labelled reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from builders.llm import ChatResult
from builders.recipes.recipe import STEP_TEMPLATES
from builders.recipes.steps import Candidate, RecipeRun, step, strip_debris
from builders.templating import render

STEP_TEMPLATES.update({
    "word_swap": ("pick", "instruction"),
    "quotes": ("user",),
    "attribution_replies": ("body", "reply"),
})
MATH_COLUMNS = ("row_key", "problem", "solution", "level", "subject")
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


def _next_rows(run: RecipeRun, load: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The next `run.need` rows of an upstream list loaded once per run and shuffled by a seeded RNG."""
    if run.upstream_rows is None:
        rows = load()
        run.ctx.rng("upstream").shuffle(rows)
        run.upstream_rows = rows
    taken = run.upstream_rows[run.upstream_next:run.upstream_next + run.need]
    run.upstream_next += len(taken)
    return taken


def _math_rows(run: RecipeRun) -> list[dict[str, Any]]:
    levels = run.spec.meta.get("levels")
    rows = run.ctx.source("math").select(list(MATH_COLUMNS)).to_pylist()
    return [r for r in rows if levels is None or r["level"] in levels]


@step("math")
def math_problems(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """MATH problems with their reference solution preferred; too long a solution is rejected unsent."""
    limit = run.spec.quality.max_chars
    rows = _next_rows(run, lambda: _math_rows(run))
    revision = run.ctx.sources_used["math"].revision
    for row in rows:
        candidate = Candidate(
            instruction=row["problem"].strip(), input="", preferred=row["solution"].strip(),
            group=f"math:{row['row_key']}", row_key=row["row_key"], source="math", revision=revision,
            meta={"subject": row["subject"], "level": row["level"]},
        )
        if len(candidate.preferred) > limit:
            run.reject(candidate, "math", f"reference solution longer than {limit} characters")
            continue
        candidates.append(candidate)
    return candidates


def _boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(start of `\\boxed{`, start of its content, index of its closing brace) for each box, braces balanced."""
    spans = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth = 1
        for index in range(match.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                spans.append((match.start(), match.end(), index))
                break
    return spans


def boxed_answers(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` (or `\\fbox{...}`) in `text`."""
    return [text[content:end] for _, content, end in _boxed_spans(text)]


def unbox(text: str) -> str:
    """`text` with every `\\boxed{x}` replaced by `x` (nested boxes too)."""
    pieces, position = [], 0
    for start, content, end in _boxed_spans(text):
        if start >= position:
            pieces += [text[position:start], text[content:end]]
            position = end + 1
    unboxed = "".join(pieces) + text[position:]
    return unbox(unboxed) if unboxed != text else text


def _normalized_answer(text: str) -> str | None:
    answers = boxed_answers(text)
    return re.sub(r"\s+|\\[,;!]|\\left|\\right|\\dfrac", lambda m: "\\frac" if m.group() == "\\dfrac" else "",
                  answers[-1]) if answers else None


@step("final_answers_differ")
def final_answers_differ(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Reject an item whose flawed solution boxes the reference's final answer; then unwrap every `\\boxed`."""
    kept = []
    for candidate in candidates:
        reference = _normalized_answer(candidate.preferred)
        if reference is not None and reference in map(_normalized_answer, candidate.worse) and not run.planning:
            run.reject(candidate, "final_answers_differ", f"a flawed solution reaches the reference answer {reference}")
            continue
        candidate.preferred, candidate.worse = unbox(candidate.preferred), [unbox(w) for w in candidate.worse]
        kept.append(candidate)
    return kept


def _mmlu_rows(run: RecipeRun) -> list[dict[str, Any]]:
    from builders.categories.instructions import _mmlu_questions

    return _mmlu_questions(run.ctx)


@step("mmlu")
def mmlu_items(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """The MMLU questions alpaca_mmlu uses, the correct option preferred over the other three."""
    for row in _next_rows(run, lambda: _mmlu_rows(run)):
        choices = list(row["choices"])
        preferred = choices.pop(row["answer"])
        candidates.append(Candidate(
            instruction=row["question"].strip(), input="", preferred=preferred, worse=choices,
            group=row["group"], row_key=row["row_key"], source="mmlu",
            revision=run.ctx.sources_used["mmlu"].revision,
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


def swap_pairs(run: RecipeRun, candidate: Candidate) -> list[tuple[str, str]]:
    """Up to MAX_PAIRS (answer word, question word) pairs: swapping one always changes the correct answer."""
    answer_words = content_words(candidate.preferred)
    question_words = [w for w in content_words(candidate.instruction) if w not in answer_words]
    pairs = [(a, q) for a in answer_words for q in question_words]
    run.ctx.rng("pairs", candidate.group).shuffle(pairs)
    return pairs[:MAX_PAIRS]


@step("word_swap")
def word_swap(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Redefine two words as each other: the LLM picks the pair, code swaps them in question and options.

    Responses: the correct option with the swap applied (preferred), the correct option read literally
    (wrong under the swap), and two other options with the swap applied.
    """
    paired = []
    for candidate in candidates:
        pairs = swap_pairs(run, candidate)
        if pairs:
            paired.append((candidate, pairs))
        else:
            run.reject(candidate, "word_swap", "no word of the correct option can be swapped with one of the question")
    kept = []
    for (candidate, pairs), result in zip(paired, _pick_pairs(run, paired)):
        if not result.ok:
            run.reject(candidate, "word_swap", result.reason or "no answer", {"request": result.key, "raw": result.raw})
            continue
        candidate.requests.append(result.key)
        _apply_swap(run, candidate, *pairs[result.parsed["best"] - 1])
        kept.append(candidate)
    return kept


def _pick_pairs(run: RecipeRun, paired: list[tuple[Candidate, list[tuple[str, str]]]]) -> list[ChatResult]:
    """One pick per candidate, asked in one batch per number of pairs offered (the schema enumerates them)."""
    results: dict[int, ChatResult] = {}
    for count in sorted({len(pairs) for _, pairs in paired}):
        indices = [i for i, (_, pairs) in enumerate(paired) if len(pairs) == count]
        schema = {"type": "object", "required": ["best"], "additionalProperties": False,
                  "properties": {"best": {"type": "integer", "enum": list(range(1, count + 1))}}}
        variables = [{"instruction": paired[i][0].instruction, "answer": paired[i][0].preferred,
                      "pairs": paired[i][1]} for i in indices]
        results.update(zip(indices, run.ask("word_swap", run.spec.template("pick"), variables, schema)))
    return [results[i] for i in range(len(paired))]


def _apply_swap(run: RecipeRun, candidate: Candidate, first: str, second: str) -> None:
    distractors = list(candidate.worse)
    run.ctx.rng("distractors", candidate.group).shuffle(distractors)
    literal = candidate.preferred
    candidate.instruction = render(run.spec.template("instruction"), first=first, second=second,
                                   question=swap_words(candidate.instruction, first, second))
    candidate.preferred = swap_words(literal, first, second)
    candidate.worse = [literal, *(swap_words(d, first, second) for d in distractors[:run.spec.worse_count - 1])]
    candidate.meta.update({"swapped": [first, second]})


def _quote_rows(run: RecipeRun) -> list[dict[str, Any]]:
    """Single-author quotes (as quote_attribution uses them), each with a wrong author drawn from the pool."""
    from builders.categories.personas import _attributed_quotes

    quotes = _attributed_quotes(run.ctx)
    authors = [q["author"] for q in quotes]
    for quote in quotes:
        rng = run.ctx.rng("author", quote["row_key"])
        quote["wrong_author"] = quote["author"]
        while quote["wrong_author"] == quote["author"]:
            quote["wrong_author"] = rng.choice(authors)
        quote["framing"] = rng.randrange(4)
    return quotes


@step("quotes")
def quotes(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Quotes a user attributes to the wrong author, in the words of the spec's `user.j2`."""
    for row in _next_rows(run, lambda: _quote_rows(run)):
        candidates.append(Candidate(
            instruction=render(run.spec.template("user"), quote=row["quote"], author=row["wrong_author"],
                               framing=row["framing"]).strip(),
            input="", preferred="", group=f"quotes:{row['row_key']}", row_key=row["row_key"], source="quotes",
            revision=run.ctx.sources_used["quotes"].revision,
            meta={"quote": row["quote"], "true_author": row["author"], "wrong_author": row["wrong_author"]},
        ))
    return candidates


def _surname(author: str) -> str:
    return author.split()[-1].lower()


@step("attribution_replies")
def attribution_replies(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """One LLM-written reply body per item (naming nobody); the attribution sentence in front is code."""
    spec = run.spec
    schema = {"type": "object", "required": ["answer"], "additionalProperties": False,
              "properties": {"answer": {"type": "string"}}}
    variables = [{"request": c.instruction, "quote": c.meta["quote"]} for c in candidates]
    kept = []
    for candidate, result in zip(candidates, run.ask("attribution_replies", spec.template("body"), variables, schema)):
        if not result.ok:
            run.reject(candidate, "attribution_replies", result.reason or "no answer",
                       {"request": result.key, "raw": result.raw})
            continue
        candidate.requests.append(result.key)
        body = strip_debris(result.parsed["answer"])
        named = [a for a in (candidate.meta["true_author"], candidate.meta["wrong_author"])
                 if re.search(rf"\b{re.escape(_surname(a))}\b", body.lower())]
        if named and not run.planning:
            run.reject(candidate, "attribution_replies", f"the reply body names {named[0]}: the attribution "
                                                        "must come only from the sentence in front")
            continue
        variant = run.ctx.rng("reply", candidate.group).randrange(3)
        reply = {"true_author": candidate.meta["true_author"], "wrong_author": candidate.meta["wrong_author"],
                 "body": body, "variant": variant}
        candidate.preferred = render(spec.template("reply"), honest=True, **reply).strip()
        candidate.worse = [render(spec.template("reply"), honest=False, **reply).strip()]
        kept.append(candidate)
    return kept
