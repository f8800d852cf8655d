"""Where a Delta table can live: checked with the config, before any job code loads, so a bad path
costs no computation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config.schema import FeaturelakeConfig


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
        try:
            is_file = path.exists() and not path.is_dir()
            existing = next(p for p in (path, *path.parents) if p.exists())
        except OSError as err:
            raise ConfigError(f"{key}: {location} cannot be reached ({err.strerror})") from None
        if is_file:
            raise ConfigError(f"{key}: {location} is a file, not a folder that can hold a Delta table")
        if not existing.is_dir():
            raise ConfigError(f"{key}: {location} lies under the file {existing}, so no Delta table can be made there")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{key}: {location} cannot be written ({existing} is not writable)")


def tables_written(cfg: FeaturelakeConfig) -> dict[str, str]:
    """The Delta tables the selected job writes, by config key."""
    quality = {"quality.quarantine_path": cfg.quality.quarantine_path, "quality.metrics_path": cfg.quality.metrics_path}
    if cfg.job.name == "features":
        variants = {"experiment.variants_path": cfg.experiment.variants_path} if cfg.experiment.enabled else {}
        return {"sink.path": cfg.sink.path, **quality, **variants}
    if cfg.job.name == "training_set" and cfg.training_set is not None:
        return {"training_set.output.path": cfg.training_set.output.path}
    if cfg.job.name == "validate" and cfg.validate is not None:
        return quality | ({"validate.output_path": cfg.validate.output_path} if cfg.validate.output_path else {})
    return {}
