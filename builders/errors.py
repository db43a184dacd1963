"""Expected failures: they carry a message and a hint, and the CLI prints them without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GeniesError(Exception):
    """A failure the user can act on; `hint` says what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UnknownNameError(GeniesError):
    """A name (distribution, category, source, check...) that is not in the catalog."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names, so a typo gets a useful answer instead of a bare 'unknown'."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return close


LISTED_CHOICES = 20  # with no close match, up to this many valid names are listed in the hint
KINDS_GENIES_LIST_SHOWS = frozenset({"category", "distribution", "shift", "benchmark"})


def check_name(name: str, choices: Iterable[str], kind: str) -> str:
    """Return `name` if valid, else raise an error naming the closest valid ones, or all of them when they are few or `genies list` does not show them."""
    choices = list(choices)
    if name in choices:
        return name
    close = suggest(name, choices)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    elif len(choices) <= LISTED_CHOICES or kind not in KINDS_GENIES_LIST_SHOWS:
        hint = f"valid: {', '.join(sorted(choices))}"
    else:
        hint = f"run `genies list` to see every {kind}"
    raise UnknownNameError(f"unknown {kind} {name!r}", hint)
