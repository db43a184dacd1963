"""`Registry[T]`: the one kind of name table every extension point uses (builders, families, recipe steps,
validation checks, source normalizers).

A name belongs to one origin (the module or file that registered it). Registering it again from the same
origin replaces the entry, so re-importing a module or re-reading a spec is harmless; registering it from
another origin is an error that names both, because one of the two would silently win. Tests that add
entries wrap themselves in `snapshot()` instead of reaching into private state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

from builders.errors import GeniesError, check_name

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind, each remembering where it was registered."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def add(self, name: str, entry: T, origin: str) -> T:
        """Register `entry` as `name`; a name already taken by another origin is refused."""
        taken = self._origins.get(name)
        if taken is not None and taken != origin:
            raise GeniesError(f"{self.kind} {name!r} is registered twice ({taken} and {origin})",
                              "give one of them another name")
        self._entries[name] = entry
        self._origins[name] = origin
        return entry

    def remove(self, name: str) -> None:
        """Forget `name` (inside `snapshot()`, so a test can stand in its own entry for a registered one)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def origin(self, name: str) -> str:
        """The module or file that registered `name`."""
        return self._origins[self.name_of(name)]

    def name_of(self, name: str) -> str:
        """`name` if registered, else a GeniesError suggesting the closest registered name."""
        return check_name(name, sorted(self._entries), self.kind)

    def lookup(self, name: str) -> T:
        return self._entries[self.name_of(name)]

    @contextmanager
    def snapshot(self) -> Iterator[Registry[T]]:
        """Restore every entry as it was on entering the block (tests that register throwaway entries)."""
        entries, origins = dict(self._entries), dict(self._origins)
        try:
            yield self
        finally:
            self._entries, self._origins = entries, origins

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
