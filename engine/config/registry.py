"""A registry of named entries for one extension point (aggregation functions, check kinds, sinks).

Config validation, the planners, the docs and the tests read the same table; a name that is not in it
is a one-line ConfigError listing the names that are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from engine.config.choices import one_of


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(Generic[E]):
    """Entries by name, in the order they were registered."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        if entry.name in self._entries:
            raise ValueError(f"{self.what} '{entry.name}' is registered already")
        self._entries[entry.name] = entry
        return entry

    @contextmanager
    def registered(self, entry: E) -> Iterator[E]:
        """`entry` registered for the block's duration (a test's own entry)."""
        self.register(entry)
        try:
            yield entry
        finally:
            del self._entries[entry.name]

    def get(self, name: str, key: str) -> E:
        """The entry called `name`; a ConfigError naming `key` and the known names otherwise."""
        one_of(key, name, self._entries)
        return self._entries[name]

    def find(self, name: str) -> E | None:
        """The entry called `name`, or None."""
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A registry's entries as a Markdown table (the lists the docs show)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
