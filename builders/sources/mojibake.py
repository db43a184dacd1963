"""Text whose encoding was broken upstream ("mojibake"): found, and repaired where the damage is certain.

Two kinds occur in the mirrored sources. UTF-8 bytes read as Latin-1 or cp1252 ("rÃ©sumÃ©") are found
and undone by ftfy. Mac Roman punctuation read as Latin-1 ("manÕs", "ÒBestÓ": MMLU's professional law
questions) ftfy leaves alone, because Õ, Ò and Ó are ordinary letters elsewhere; they are recognised only
in a punctuation slot, where no language puts those letters: Õ between a Latin letter and a letter,
space or end, Ò before a word, Ó after a word or a sentence mark. A third kind is what is left of the
first when the leading byte was lost ("basis €“ but": en dash E2 80 93 without its E2), with stray C1
control characters, one doubly mangled pair of quotes ("‰ÛÏ", "‰Û\x9d") and an apostrophe whose "™" was
spelled out ("donâ€TMt": the Anthropic evals); ftfy cannot undo these, so they are decoded here by
restoring the lost byte or replaced as known sequences.
"""

from __future__ import annotations

import re

import ftfy
from ftfy.badness import is_bad

MAC_ROMAN_PUNCTUATION = {"Õ": "\u2019", "Ò": "\u201c", "Ó": "\u201d"}
_MAC_ROMAN = re.compile(r"(?<=[A-Za-z])Õ(?=[A-Za-z\s]|$)|Ò(?=[A-Za-z])|(?<=[A-Za-z.,!?])Ó")
_HEADLESS_PUNCTUATION = re.compile("\u20ac([\u0192\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2122])")
_MANGLED_SEQUENCES = {"\u2030\u00db\u00cf": "\u201c", "\u2030\u00db\u009d": "\u201d", "\u00e2\u20acTM": "\u2019"}
_C1_CONTROLS = re.compile("[\u0080-\u009f]")


def has_mojibake(text: str) -> bool:
    """Whether `text` shows any of these kinds of broken encoding."""
    return bool(_MAC_ROMAN.search(text) or _HEADLESS_PUNCTUATION.search(text) or _C1_CONTROLS.search(text)) or is_bad(text)


def _with_lead_byte(match: re.Match[str]) -> str:
    """"€“" -> "–": the cp1252 bytes of the two characters are the tail of a UTF-8 punctuation mark."""
    return (b"\xe2" + match.group().encode("cp1252")).decode("utf-8")


def repair(text: str) -> str:
    """`text` with every kind of mojibake above undone; clean text comes back unchanged."""
    if not has_mojibake(text):
        return text
    for broken, meant in _MANGLED_SEQUENCES.items():
        text = text.replace(broken, meant)
    text = _MAC_ROMAN.sub(lambda match: MAC_ROMAN_PUNCTUATION[match.group()], text)
    text = _HEADLESS_PUNCTUATION.sub(_with_lead_byte, ftfy.fix_encoding(text))
    return _C1_CONTROLS.sub("", text)
