"""`scripts/run --help`: the jobs, the config groups with their options, the common overrides."""

from __future__ import annotations

from pathlib import Path

from engine.config.catalog import groups

_OPTIONS = """\
options:
  -h, --help              show this help and exit
  --cfg job               print the composed config, every value resolved, and run nothing
  -cd, --config-dir DIR   add DIR's config groups and options (DIR/<group>/<option>.yaml); repeatable"""

_COMMON = """\
common overrides:
  pipeline=flights                      the pipeline the feature job runs
  job=validate                          run another job
  experiment=none                       skip the Ray experiment
  'pipeline.days=[2013-01-01,2013-01-31]'  read these days of each source
  sink.path=/tmp/features               write the feature table elsewhere
  'spark.master=local[4]'               more cores in local mode
  spark=cluster                         under spark-submit (see scripts/package)
  +key=value, ~key                      add a key, remove a key"""

_DOCS = "docs: README.md, docs/operations.md (configuration, failures and exit codes)"


def usage(config_dirs: list[Path] | None = None) -> str:
    """The help text, with the groups and options found in conf/ and in `config_dirs`."""
    found = groups(config_dirs)
    width = max(len(o) for g in found for o in g.options) + 2
    lines = [
        "usage: scripts/run [-h] [--cfg job] [--config-dir DIR] [job=NAME] [group=option ...] [key=value ...]",
        "",
        "Run one featurelake job. Arguments are Hydra overrides: group=option selects a config file,",
        "key=value sets a value. Config errors exit with 2 before Spark starts; other failures with 1.",
        "",
        _OPTIONS,
    ]
    ordered = sorted(found, key=lambda g: g.name != "job")
    for group in ordered:
        title = "jobs (job=NAME)" if group.name == "job" else f"{group.name}="
        if group.default:
            title += f"   default: {group.default}"
        lines += ["", title]
        lines += [f"  {o:<{width}}{group.descriptions[o]}".rstrip() for o in group.options]
    return "\n".join([*lines, "", _COMMON, "", _DOCS])
