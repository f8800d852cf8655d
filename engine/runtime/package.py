"""Build the wheel that spark-submit and Databricks run, and print the spark-submit line.

The wheel holds `engine` and `jobs` with `conf/` inside (as `engine/conf`), so a cluster needs no
checkout: `--py-files` ships it to the driver and executors, and Hydra reads the configs from it even
while it is still a zip. pyspark and delta-spark are not its dependencies (the `spark` extra): a
cluster and Databricks bring their own, and a pinned pyspark would replace Databricks'.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from engine.errors import SetupError
from engine.runtime.jars import load_runtime, local_jars

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = "featurelake_submit.py"
_LAUNCHER_SOURCE = '''"""spark-submit's main file: featurelake's job CLI, from the wheel given with --py-files."""

import sys

from jobs.run import main

sys.exit(main())
'''
_DRIVER_LOG4J = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = output/logs/spark.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{ISO8601} %p %c{1}: %m%n%ex
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
"""


def wheel_name(repo: Path = REPO) -> str:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return f"{project['name']}-{project['version']}-py3-none-any.whl"


def build_wheel(dist: Path, repo: Path = REPO) -> Path:
    """Stage the sources with conf/ as `engine/conf`, build the wheel into `dist`, add the launcher files."""
    dist.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "featurelake"
        staging.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(repo / name, staging / name)
        for package in ("engine", "jobs"):
            shutil.copytree(repo / package, staging / package, ignore=ignore)
        shutil.copytree(repo / "conf", staging / "engine" / "conf", ignore=ignore)
        (staging / "engine" / "conf" / "__init__.py").write_text('"""featurelake\'s Hydra configs."""\n')
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(staging)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SetupError(f"building the wheel failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
    (dist / LAUNCHER).write_text(_LAUNCHER_SOURCE)
    (dist / "log4j2.properties").write_text(_DRIVER_LOG4J)
    return dist / wheel_name(repo)


def submit_command(
    wheel: Path, master: str, overrides: list[str], jar_cache: Path, config_dirs: list[Path] | None = None
) -> list[str]:
    """The spark-submit command line: the master, the jars, the wheel, the launcher, the folders of the
    user's declarations (which the driver reads) and the job's overrides.

    The jars are the manifest's coordinates as scripts/setup resolved them (without what Spark ships),
    passed with `--jars`: spark-submit uploads them to the cluster, and no second resolver (Ivy, for
    `--packages`) has to agree with Maven or pull a second copy of Spark's own Hadoop and Parquet.
    """
    dist = wheel.parent.resolve()
    jars = local_jars(load_runtime(), jar_cache)
    return [
        "spark-submit",
        "--master",
        master,
        "--jars",
        ",".join(str(j.resolve()) for j in jars),
        "--py-files",
        str(wheel.resolve()),
        "--driver-java-options",
        f"-Dlog4j2.configurationFile=file:{dist / 'log4j2.properties'}",
        str(dist / LAUNCHER),
        *(f"--config-dir={folder.resolve()}" for folder in config_dirs or []),
        "spark=cluster",
        *overrides,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/package", description="Build the wheel and print the spark-submit line that runs a job with it."
    )
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="where the wheel goes (default: dist/)")
    parser.add_argument("--master", default="spark://HOST:7077", help="the cluster's master URL")
    parser.add_argument("--jar-cache", type=Path, default=REPO / ".cache" / "jars", help="scripts/setup's jar cache")
    parser.add_argument(
        "--config-dir", action="append", type=Path, default=[], dest="config_dirs", help="a folder of declarations"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the job, e.g. pipeline=flights")
    args = parser.parse_intermixed_args(argv)
    try:
        wheel = build_wheel(args.dist)
        command = submit_command(wheel, args.master, args.overrides, args.jar_cache, args.config_dirs)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wheel: {wheel}")
    coordinates = ", ".join(load_runtime().packages())
    print(f"jars:  {coordinates} (Maven coordinates, from the jar cache)")
    print(shlex.join(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
