"""What "the same text" means, in one place: import, build, repair, validation and diff all ask here.

Two texts are the same when they differ only in Unicode presentation (NFKC: a no-break space is a space,
a ligature is its letters), in whitespace (any run, including line breaks and indentation, is one space;
leading and trailing whitespace is ignored), and, where case carries no meaning, in case. Case carries
meaning in a response (an instruction may ask for capitals), so responses compare with `response_key`;
prompts, instructions, questions and item keys compare with `text_key`, which also folds case.

A definition used by several layers must be the only one: a repair that calls two responses different
while validation calls them equal writes versions that fail validation.

Also here: `\\boxed{...}` answers (one parser for sources and recipes) and group keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

_BOX_OPENING = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_NOISE = re.compile(r"\s+|\\[,;!]|\\left|\\right|\\dfrac|\\tfrac")
GROUP_DIGEST_CHARS = 20


def response_key(text: str) -> str:
    """`text` in NFKC with every whitespace run one space and the ends stripped; case kept."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_key(text: str) -> str:
    """`response_key` with case folded too: the sense in which two prompts or instructions are equal."""
    return response_key(unicodedata.normalize("NFKC", text).casefold())


def has_repeats(responses: Sequence[str]) -> bool:
    """Whether two of `responses` are the same text (`response_key`)."""
    return keys_repeat([response_key(r) for r in responses])


def keys_repeat(keys: Sequence[str]) -> bool:
    """`has_repeats` of texts whose `response_key`s are already at hand."""
    return len(set(keys)) < len(keys)


def first_occurrences(texts: Iterable[str]) -> list[bool]:
    """Per text: is it the first with its `text_key`?"""
    seen: set[str] = set()
    firsts = []
    for text in texts:
        key = text_key(text)
        firsts.append(key not in seen)
        seen.add(key)
    return firsts


def text_digest(text: str, chars: int = 16) -> str:
    """A short stable hash of `text_key(text)`: equal texts get equal digests."""
    return hashlib.sha256(text_key(text).encode("utf-8")).hexdigest()[:chars]


# -- group keys ------------------------------------------------------------------------------------------

def group_key(source: str, row_key: str) -> str:
    """The group of an upstream row: every example built from it shares one side of every split."""
    return f"{source}:{row_key}"


def content_group_key(source: str, field: str, text: str) -> str:
    """The group of an item known only by its text (a release example's instruction, quote, ...)."""
    return group_key(source, f"{field}:{text_digest(text, GROUP_DIGEST_CHARS)}")


def is_unknown_group(group: str | None) -> bool:
    """Whether `group` says nothing about the item (empty, or `<source>:unknown`)."""
    return not group or group.endswith(":unknown")


# -- \boxed{} answers --------------------------------------------------------------------------------

def _boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(start of `\\boxed{`, start of its content, index of its closing brace) per box, braces balanced;
    `\\boxed {x}` (space before the brace) counts, an unclosed box does not."""
    spans = []
    for match in _BOX_OPENING.finditer(text):
        depth = 1
        for index in range(match.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                spans.append((match.start(), match.end(), index))
                break
    return spans


def boxed_answers(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` (or `\\fbox{...}`) in `text`, in order of their opening."""
    return [text[content:end] for _, content, end in _boxed_spans(text)]


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`); None when there is none or it is unclosed."""
    openings = [m.start() for m in _BOX_OPENING.finditer(text)]
    closed = {start: (content, end) for start, content, end in _boxed_spans(text)}
    if not openings or openings[-1] not in closed:
        return None
    content, end = closed[openings[-1]]
    return text[content:end]


def unbox(text: str) -> str:
    """`text` with every `\\boxed{x}` replaced by `x` (nested boxes too)."""
    pieces, position = [], 0
    for start, content, end in _boxed_spans(text):
        if start >= position:
            pieces += [text[position:start], text[content:end]]
            position = end + 1
    unboxed = "".join(pieces) + text[position:]
    return unbox(unboxed) if unboxed != text else text


def answer_key(text: str) -> str | None:
    """The last boxed answer of `text` without spacing or sizing commands (`\\dfrac` is `\\frac`), so two
    solutions reaching the same answer compare equal; None when nothing is boxed."""
    answer = last_boxed(text)
    if answer is None:
        return None
    return _ANSWER_NOISE.sub(lambda m: "\\frac" if m.group() in ("\\dfrac", "\\tfrac") else "", answer)
