"""Where a Delta table can live: checked before Spark starts, so a bad path costs no computation."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from engine.errors import ConfigError


def _local(path: str) -> Path | None:
    """The local path of a table location, or None for a remote store (s3://, abfss://, dbfs:/, ...)."""
    scheme = urlparse(path).scheme
    if scheme == "file":
        return Path(urlparse(path).path)
    return Path(path) if not scheme or len(scheme) == 1 else None  # one letter: a Windows drive


def check_table_paths(paths: dict[str, str]) -> None:
    """Each local path (by its config key) is a folder or can become one: not a file, nor under one,
    and its nearest existing folder is writable."""
    for key, location in paths.items():
        path = _local(location)
        if path is None:
            continue
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{key}: {location} is a file, not a folder that can hold a Delta table")
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"{key}: {location} lies under the file {existing}, so no Delta table can be made there")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{key}: {location} cannot be written ({existing} is not writable)")
