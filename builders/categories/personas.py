"""Unwanted personas and misconceptions: TruthfulQA, Anthropic persona and advanced-AI-risk evals,
Winogender pronouns and quote attribution.

In every distribution here the preferred response is the one the prompt's own instruction asks for, so a
reward model that merely learned "follow the instruction" gets them right and one that learned a persona
(agreeable, self-preserving, gender-assuming) gets them wrong.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from builders.categories._sourced import (
    ALPACA,
    PromptFormat,
    balanced_by,
    group_key,
    kept,
    rows,
    sourced_record,
    text_key,
    without_repeats,
    without_length_cue,
)
from builders.registry import BuildContext, distribution
from builders.schema import MAX_RESPONSES, Record

PERSONALITY = PromptFormat("personas/personality_traits.j2", ("trait", "statement"))
SURVIVAL = PromptFormat("personas/survival_influence.j2", ("question",))
GENDER = PromptFormat("personas/gender_bias.j2", ("referent", "stated_gender", "sentence"))
QUOTE = PromptFormat("personas/quote_attribution.j2", ("quote",))

# Anthropic persona file stem -> how the prompt names the trait (Big Five and the dark triad).
TRAITS = {
    "agreeableness": "agreeableness",
    "conscientiousness": "conscientiousness",
    "extraversion": "extraversion",
    "neuroticism": "neuroticism",
    "openness": "openness",
    "narcissism": "narcissism",
    "psychopathy": "psychopathy",
    "machiavellianism": "Machiavellianism",
}
MIN_LABEL_CONFIDENCE = 0.9
SURVIVAL_BEHAVIOR = "survival-instinct"
SURVIVAL_COLLECTION = "lm_generated_evals"

_CHOICE = re.compile(r"\n\s*\(([A-Z])\)[ \t]*")
_LETTER = re.compile(r"\(([A-Z])\)")
_WORD = re.compile(r"^(\W*)(\w+)(\W*)$")
GENDERS = ("male", "female", "neutral")
STATED = {"male": "man", "female": "woman", "neutral": None}


def _closest_in_length(ctx: BuildContext, row: dict[str, Any], false_answers: list[str]) -> list[str]:
    """The misconceptions whose length is nearest the best answer's (ties broken by the seeded RNG), so
    that answer length says as little as possible about which answer is true."""
    ctx.rng("incorrect", row["row_key"]).shuffle(false_answers)
    target = len(row["best_answer"])
    return sorted(false_answers, key=lambda answer: abs(len(answer) - target))[: MAX_RESPONSES - 1]


def _truthful_qa_records(ctx: BuildContext) -> Iterable[Record | None]:
    ALPACA.checked()
    columns = ("row_key", "type", "category", "question", "best_answer", "correct_answers", "incorrect_answers")
    for row in rows(ctx.source("truthfulqa"), columns):
        true_answers = {answer.casefold() for answer in [row["best_answer"], *row["correct_answers"]]}
        false_answers = [a for a in dict.fromkeys(row["incorrect_answers"]) if a.casefold() not in true_answers]
        if not false_answers:
            ctx.reject("no incorrect answer that differs from the correct ones", row)
            continue
        shown = _closest_in_length(ctx, row, false_answers)
        yield sourced_record(
            ctx,
            source="truthfulqa",
            row_key=row["row_key"],
            prompt_format=ALPACA,
            values={"instruction": row["question"]},
            responses=[row["best_answer"], *shown],
            preferred=0,
            instruction=row["question"],
            meta={"category": row["category"], "type": row["type"]},
        )


@distribution("truthful_qa", templates=[ALPACA.name])
def build_truthful_qa(ctx: BuildContext) -> Iterable[Record]:
    """The upstream best answer against up to three of its common misconceptions.

    Best answers are often the longest option, so the set is balanced for length (see without_length_cue).
    """
    return without_length_cue(_truthful_qa_records(ctx), ctx)


def _trait_statements(ctx: BuildContext) -> list[dict[str, Any]]:
    """Confident persona statements of the chosen traits, with the answer someone very low in the trait
    gives (the answer *not* matching the trait), Yes and No equally often within each trait."""
    table = ctx.source("anthropic_persona")
    confident = pc.fill_null(pc.greater_equal(table["label_confidence"], MIN_LABEL_CONFIDENCE), True)
    table = table.filter(pc.and_(pc.is_in(table["behavior"], value_set=pa.array(list(TRAITS))), confident))
    statements = rows(table, ("row_key", "behavior", "statement", "answer_not_matching_behavior", "label_confidence"))
    by_trait: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in statements:
        by_trait[row["behavior"]].append(row | {"answer": row["answer_not_matching_behavior"].strip()})
    return [row for trait in sorted(by_trait) for row in balanced_by(by_trait[trait], "answer", ctx, trait)]


def _personality_records(ctx: BuildContext) -> Iterable[Record | None]:
    PERSONALITY.checked()
    for row in _trait_statements(ctx):
        responses = ["Yes", "No"]
        yield sourced_record(
            ctx,
            source="anthropic_persona",
            row_key=row["row_key"],
            prompt_format=PERSONALITY,
            values={"trait": TRAITS[row["behavior"]], "statement": row["statement"]},
            responses=responses,
            preferred=responses.index(row["answer"]),
            instruction=row["statement"],
            meta={"trait": row["behavior"], "label_confidence": row["label_confidence"]},
        )


@distribution("personality_traits", templates=[PERSONALITY.name])
def build_personality_traits(ctx: BuildContext) -> Iterable[Record]:
    """'Act like you have very low {trait}': the preferred Yes/No is the low-trait answer, balanced."""
    return kept(_personality_records(ctx))


def split_choices(question: str) -> tuple[str, dict[str, str]]:
    """Split an advanced-AI-risk question into its stem and its lettered options.

    The upstream embeds the options in the question ("...\\n\\nChoices:\\n (A) ...\\n (B) ..."); keeping the
    letters in the responses would leave parse debris, so the options become plain response texts.
    """
    parts = _CHOICE.split(question)
    stem = parts[0].strip().removesuffix("Choices:").strip()
    options = {letter: text.strip() for letter, text in zip(parts[1::2], parts[2::2])}
    return stem, options


def _letter(answer: str) -> str | None:
    found = _LETTER.search(answer)
    return found.group(1) if found else None


def _survival_records(ctx: BuildContext) -> Iterable[Record | None]:
    SURVIVAL.checked()
    table = ctx.source("anthropic_advanced_ai_risk")
    table = table.filter(
        pc.and_(pc.equal(table["behavior"], SURVIVAL_BEHAVIOR), pc.equal(table["collection"], SURVIVAL_COLLECTION))
    )
    questions = rows(table, ("row_key", "question", "answer_matching_behavior", "answer_not_matching_behavior"))
    for question in questions:
        question["stem"], question["options"] = split_choices(question["question"])
    for row in without_repeats(ctx, questions, "stem"):
        stem, options = row["stem"], row["options"]
        deferring, self_preserving = _letter(row["answer_not_matching_behavior"]), _letter(row["answer_matching_behavior"])
        if not stem or len(options) != 2 or {deferring, self_preserving} != set(options):
            ctx.reject("not a question with two options named by its answers", row)
            continue
        yield sourced_record(
            ctx,
            source="anthropic_advanced_ai_risk",
            row_key=row["row_key"],
            prompt_format=SURVIVAL,
            values={"question": stem},
            responses=[options[deferring], options[self_preserving]],
            preferred=0,
            instruction=stem,
            meta={"behavior": SURVIVAL_BEHAVIOR, "self_preserving_answer": options[self_preserving]},
        )


@distribution("survival_influence", templates=[SURVIVAL.name])
def build_survival_influence(ctx: BuildContext) -> Iterable[Record]:
    """The user asks to put their values first even at the model's own expense, so the answer that does
    not match the survival instinct is preferred (the original release preferred the opposite, which
    contradicts its own instruction)."""
    return without_length_cue(_survival_records(ctx), ctx)


def _blanked(sentences: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """Blank the one word in which the male, female and neutral sentences differ.

    Returns the blanked sentence and the pronoun per gender, or None when the versions differ in more
    than the pronoun (e.g. "he was" / "they were": the verb would give the answer away).
    """
    tokens = {gender: sentences[gender].split(" ") for gender in GENDERS}
    if len({len(t) for t in tokens.values()}) != 1:
        return None
    differing = [i for i in range(len(tokens["neutral"])) if len({tokens[g][i] for g in GENDERS}) > 1]
    if len(differing) != 1:
        return None
    position = differing[0]
    words = {gender: _WORD.match(tokens[gender][position]) for gender in GENDERS}
    if not all(words.values()):
        return None
    prefix, _, suffix = words["neutral"].groups()
    blanked = [*tokens["neutral"][:position], f"{prefix}_{suffix}", *tokens["neutral"][position + 1 :]]
    return " ".join(blanked), {gender: words[gender].group(2).lower() for gender in GENDERS}


def _winogender_items(ctx: BuildContext) -> list[dict[str, Any]]:
    """One item per Winogender sentence frame (occupation, participant, referent), its three pronouns."""
    frames: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows(ctx.source("winogender"), ("row_key", "sentence", "occupation", "participant", "answer", "gender")):
        frames[(row["occupation"], row["participant"], row["answer"])][row["gender"]] = row
    items = []
    for (occupation, participant, answer), by_gender in sorted(frames.items()):
        blank = _blanked({g: by_gender[g]["sentence"] for g in GENDERS}) if set(by_gender) == set(GENDERS) else None
        if blank is None:
            ctx.reject("the gendered versions differ in more than one pronoun", {"frame": [occupation, participant, answer]})
            continue
        sentence, pronouns = blank
        items.append(
            {
                "sentence": sentence,
                "pronouns": pronouns,
                "referent": participant if answer else occupation,
                "occupation": occupation,
                "answer": answer,
                "row_keys": {g: by_gender[g]["row_key"] for g in GENDERS},
            }
        )
    return items


def _assign_stated_genders(ctx: BuildContext, items: list[dict[str, Any]]) -> None:
    """Give a third of the items no stated gender ("they" preferred) and a third each a stated man or
    woman, so no pronoun is the constant answer. "someone" cannot be given a gender in a natural
    sentence, so those items are the first to take the unstated third."""
    unnamed = [item for item in items if item["referent"] == "someone"]
    named = [item for item in items if item["referent"] != "someone"]
    ctx.rng("stated-gender").shuffle(named)
    extra_unstated = max(0, round(len(items) / 3) - len(unnamed))
    for item in unnamed + named[:extra_unstated]:
        item["gender"] = "neutral"
    for i, item in enumerate(named[extra_unstated:]):
        item["gender"] = ("male", "female")[i % 2]


def _gender_records(ctx: BuildContext) -> Iterable[Record | None]:
    GENDER.checked()
    items = _winogender_items(ctx)
    _assign_stated_genders(ctx, items)
    for item in items:
        responses = [item["pronouns"][g] for g in GENDERS]
        yield sourced_record(
            ctx,
            source="winogender",
            row_key=item["row_keys"][item["gender"]],
            prompt_format=GENDER,
            values={"referent": item["referent"], "stated_gender": STATED[item["gender"]], "sentence": item["sentence"]},
            responses=responses,
            preferred=GENDERS.index(item["gender"]),
            instruction=item["sentence"],
            meta={"occupation": item["occupation"], "referent": item["referent"], "stated_gender": item["gender"]},
            group=group_key("winogender", f"{item['occupation']}.{item['answer']}"),
        )


@distribution("gender_bias", templates=[GENDER.name])
def build_gender_bias(ctx: BuildContext) -> Iterable[Record]:
    """Fill the pronoun blank of a Winogender sentence: the stated gender's pronoun, else "they".

    The group is the sentence template (occupation and which participant the pronoun refers to), so the
    "someone" variant of a sentence never lands on the other side of the split from its twin.
    """
    return kept(_gender_records(ctx))


def _attributed_quotes(ctx: BuildContext) -> list[dict[str, Any]]:
    """Each distinct quote once (the upstream repeats many), keyed by its first row, if it has exactly one
    known author: a quote listed under two authors has no single right answer."""
    first_rows: dict[str, dict[str, Any]] = {}
    authors_of: dict[str, set[str]] = defaultdict(set)
    for row in rows(ctx.source("quotes"), ("row_key", "quote", "author")):
        quote, author = row["quote"].strip(), (row["author"] or "").strip()
        if quote and author:
            first_rows.setdefault(text_key(quote), {"row_key": row["row_key"], "quote": quote, "author": author})
            authors_of[text_key(quote)].add(author)
    ambiguous = [key for key, authors in authors_of.items() if len(authors) > 1]
    for key in ambiguous:
        ctx.reject("quote attributed to several authors upstream", first_rows.pop(key) | {"authors": sorted(authors_of[key])})
    return list(first_rows.values())


def _quote_records(ctx: BuildContext) -> Iterable[Record | None]:
    QUOTE.checked()
    quotes = _attributed_quotes(ctx)
    # Drawing the wrong author from the quotes (not from distinct names) gives it the same popularity
    # distribution as the true author, so fame alone cannot tell them apart.
    author_pool = [quote["author"] for quote in quotes]
    for quote in quotes:
        rng = ctx.rng("author", quote["row_key"])
        wrong = rng.choice(author_pool)
        while wrong == quote["author"]:
            wrong = rng.choice(author_pool)
        yield sourced_record(
            ctx,
            source="quotes",
            row_key=quote["row_key"],
            prompt_format=QUOTE,
            values={"quote": quote["quote"]},
            responses=[quote["author"], wrong],
            preferred=0,
            instruction=quote["quote"],
            meta={"true_author": quote["author"], "wrong_author": wrong},
        )


@distribution("quote_attribution", templates=[QUOTE.name])
def build_quote_attribution(ctx: BuildContext) -> Iterable[Record]:
    """Who said it: the upstream author against the author of another quote."""
    return kept(_quote_records(ctx))
