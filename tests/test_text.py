"""builders/text.py: one meaning of "the same text", shared by the build, repair, validation and diff."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders.schema import Provenance, Record
from builders.splits import dedupe_by_prompt
from builders.text import (
    answer_key,
    boxed_answers,
    content_group_key,
    first_occurrences,
    has_repeats,
    last_boxed,
    response_key,
    text_key,
    unbox,
)
from builders.validation.data import normalized, response_keys

WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\n    "])
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@st.composite
def respaced(draw, text: str) -> str:
    """`text` with its whitespace runs replaced and whitespace added at both ends."""
    words = text.split()
    gaps = [draw(WHITESPACE) for _ in range(len(words) + 1)]
    return gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:]))


@given(texts)
def test_keys_are_idempotent(text):
    assert response_key(response_key(text)) == response_key(text)
    assert text_key(text_key(text)) == text_key(text)


@given(texts, st.data())
def test_whitespace_never_matters(text, data):
    variant = data.draw(respaced(text))
    assert response_key(variant) == response_key(text)
    assert text_key(variant) == text_key(text)


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30))
def test_case_matters_for_responses_only(text):
    assert text_key(text.upper()) == text_key(text.lower())
    if text.upper() != text.lower():
        assert response_key(text.upper()) != response_key(text.lower())


def test_unicode_presentation_does_not_matter():
    assert response_key("caf\u0065\u0301 \ufb01le") == response_key("café file")
    assert text_key("ＡＢＣ") == text_key("abc")
    assert text_key("Straße") == text_key("STRASSE")


def test_trailing_space_and_indentation_variants_are_repeats():
    assert has_repeats(["$10,000 ", "$10,000"])
    assert has_repeats(["def f():\n    return 1\n", "def f():\n  return 1"])
    assert not has_repeats(["use ALL CAPS", "use all caps"])


@given(st.lists(texts, max_size=8), st.data())
def test_polars_expressions_agree_with_the_python_keys(values, data):
    variants = [data.draw(respaced(v)) for v in values]
    frame = pl.DataFrame({"text": values + variants, "responses": [[v, w] for v, w in zip(values + variants, variants + values)]},
                         schema={"text": pl.String, "responses": pl.List(pl.String)})
    out = frame.select(norm=normalized("text"), keys=response_keys("responses"))
    assert out["norm"].to_list() == [text_key(v) for v in values + variants]
    assert out["keys"].to_list() == [[response_key(a), response_key(b)] for a, b in frame["responses"].to_list()]


def test_first_occurrences_and_the_build_dedupe_use_the_same_key():
    assert first_occurrences(["What is 2+2?", "what is  2+2? ", "What is 3+3?"]) == [True, False, True]

    def record(prompt: str) -> Record:
        return Record(distribution="d", prompt=prompt, responses=["a", "b"], preferred=0, group="g",
                      provenance=Provenance("s", "r", prompt), template="t")

    kept, dropped = dedupe_by_prompt([record("Name a colour."), record("name a  colour.\n")])
    assert len(kept) == 1 and len(dropped) == 1


def test_records_with_whitespace_variant_responses_are_invalid():
    record = Record(distribution="d", prompt="p", responses=["$10,000 ", "$10,000"], preferred=0, group="g",
                    provenance=Provenance("s", "r", "k"), template="t")
    assert "has duplicate responses" in record.problems()


def test_content_group_keys_ignore_case_and_spacing():
    assert content_group_key("genies-release", "instruction", "Name  a colour") == \
        content_group_key("genies-release", "instruction", "name a colour\n")
    assert content_group_key("genies-release", "instruction", "x").startswith("genies-release:instruction:")


@pytest.mark.parametrize(("text", "answers", "last"), [
    (r"so $x=\boxed{\frac{1}{2}}$.", [r"\frac{1}{2}"], r"\frac{1}{2}"),
    (r"first \boxed{1} then \boxed {2}", ["1", "2"], "2"),
    (r"\fbox{\boxed{3}}", [r"\boxed{3}", "3"], "3"),
    (r"\boxed{1} and then \boxed{2", ["1"], None),
    ("no box", [], None),
])
def test_one_boxed_parser(text, answers, last):
    assert boxed_answers(text) == answers
    assert last_boxed(text) == last


def test_answer_key_ignores_spacing_and_fraction_style():
    assert answer_key(r"thus \boxed{ \dfrac{1}{2} }") == answer_key(r"so \boxed{\frac{1}{2}}")
    assert answer_key("nothing boxed") is None
    assert unbox(r"so $x = \boxed{\frac{1}{2}}$") == r"so $x = \frac{1}{2}$"
