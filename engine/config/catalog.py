"""What a command line can select: the config groups, their options and defaults, and each option's description.

Hydra's own config repository answers, so the repository's `conf/`, the wheel's packaged copy and any
folder added with `--config-dir` are listed alike. An option's description is the first sentence of
the comment that opens its YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from itertools import takewhile
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType

from engine.config.loader import CONF_DIR, PACKAGED_CONF, config_context, search_path_overrides


@dataclass(frozen=True)
class Group:
    """One config group: its options (`group=option`), the one chosen by default, and what each is."""

    name: str
    options: tuple[str, ...]
    default: str | None
    descriptions: dict[str, str]


def _description(name: str, option: str, config_dirs: list[Path]) -> str:
    """The first sentence of the comment that opens `name/option.yaml` (conf/ first, as Hydra searches)."""
    roots = [CONF_DIR if CONF_DIR.is_dir() else files(PACKAGED_CONF), *config_dirs]
    for root in roots:
        source = root / name / f"{option}.yaml"
        if source.is_file():
            lines = source.read_text().splitlines()
            opening = takewhile(lambda x: x.startswith("#"), lines)
            comment = " ".join(c.removeprefix("#").strip() for c in opening if not c.startswith("# @package"))
            return comment.split(". ", 1)[0].removesuffix(".")
    return ""


def groups(config_dirs: list[Path] | None = None) -> list[Group]:
    """Every selectable group (schemas left out), with options from conf/ and the added folders."""
    dirs = list(config_dirs or [])
    overrides = search_path_overrides(dirs)
    with config_context():
        loader = GlobalHydra.instance().config_loader()
        chosen = compose(config_name="config", overrides=overrides, return_hydra_config=True).hydra.runtime.choices
        names = loader.get_group_options("", ObjectType.GROUP, "config", overrides)
        found = []
        for name in sorted(n for n in names if n != "hydra"):
            listed = loader.get_group_options(name, ObjectType.CONFIG, "config", overrides)
            options = tuple(o for o in listed if not o.endswith("_schema"))
            if options:
                descriptions = {o: _description(name, o, dirs) for o in options}
                found.append(Group(name, options, chosen.get(name), descriptions))
    return found
