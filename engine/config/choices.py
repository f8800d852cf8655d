"""Validating a config value (against a fixed set of choices, or a rule), with one message shape for every key."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from engine.errors import ConfigError

S = TypeVar("S", bound=StrEnum)


def one_of(key: str, value: str, choices: Iterable[str]) -> None:
    """Raise a ConfigError naming `key` when `value` is not among `choices`."""
    options = [str(c) for c in choices]
    if value not in options:
        raise ConfigError(f"{key}: '{value}' is not one of {', '.join(options)}")


def enum_of(key: str, value: str, enum: type[S]) -> S:
    """The member of `enum` whose value is `value`; a ConfigError naming `key` otherwise."""
    one_of(key, value, (m.value for m in enum))
    return enum(value)


def require(key: str, value: object, holds: bool, rule: str) -> None:
    """Raise a ConfigError `<key>: <value> <rule>` unless the rule `holds`."""
    if not holds:
        raise ConfigError(f"{key}: {value} {rule}")
