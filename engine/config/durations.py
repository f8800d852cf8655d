"""Durations in configs (`90m`, `24h`, `7d`), parsed in one place."""

from __future__ import annotations

import re

from engine.errors import ConfigError

_DURATION = re.compile(r"^(?P<n>[1-9]\d*)(?P<unit>[smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str, key: str) -> int:
    """Parse a duration such as `90m`, `24h` or `7d` into seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{key}: '{text}' is not a duration like 30m, 1h or 7d")
    return int(match["n"]) * _UNIT_SECONDS[match["unit"]]
