"""JVM jars: one manifest, resolved by Maven into a local cache, loaded by the SparkSession.

The manifest (`jars.toml`) names artifacts; pyspark and delta-spark versions come from the
installed Python packages, so each version is pinned in one place (pyproject.toml). Every artifact
is required: set-up fails in one line naming the coordinate Maven could not resolve.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from engine.errors import SetupError

MANIFEST = Path(__file__).with_name("jars.toml")
_EXCLUDED = ("software.amazon.glue:dqdl",)  # Deequ's DQDL parser: not used, and not on Maven Central
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-\d[^-]*(?:-.*)?\.jar$")


@dataclass(frozen=True)
class Artifact:
    """One Maven coordinate with its versions filled in; `transitive=False` resolves the jar alone."""

    coordinate: str
    transitive: bool = True

    @property
    def jar_name(self) -> str:
        _, artifact, version = self.coordinate.split(":")
        return f"{artifact}-{version}.jar"


@dataclass(frozen=True)
class Runtime:
    """Installed pyspark and delta-spark versions, and the artifacts they need."""

    pyspark: str
    delta: str
    artifacts: tuple[Artifact, ...]

    @property
    def deequ(self) -> str:
        """The Deequ coordinate, which the engine checks for on the classpath at start."""
        return next(a.coordinate for a in self.artifacts if a.coordinate.startswith("com.amazon.deequ:"))

    def cache_dir(self, cache_root: Path) -> Path:
        return cache_root / f"spark-{self.pyspark}_delta-{self.delta}"

    def packages(self) -> list[str]:
        return [a.coordinate for a in self.artifacts]

    def exclusions(self) -> list[str]:
        """`group:artifact` of the dependencies of the jars resolved alone, for `--exclude-packages`."""
        return list(_EXCLUDED) if any(not a.transitive for a in self.artifacts) else []


def load_runtime(manifest_path: Path = MANIFEST) -> Runtime:
    """Read the manifest and fill in the installed versions; fail if pyspark or delta-spark is unsupported."""
    manifest = tomllib.loads(manifest_path.read_text())
    versions = {"pyspark": metadata.version("pyspark"), "delta-spark": metadata.version("delta-spark")}
    for package, key in (("pyspark", "supported_pyspark"), ("delta-spark", "supported_delta")):
        supported = SpecifierSet(manifest[key])
        if Version(versions[package]) not in supported:
            raise SetupError(
                f"{package} {versions[package]} does not match the jars in {manifest_path.name}, "
                f"which are built for {package} {supported}"
            )
    runtime = Runtime(pyspark=versions["pyspark"], delta=versions["delta-spark"], artifacts=())
    artifacts = tuple(
        Artifact(a["coordinate"].format(pyspark=runtime.pyspark, delta=runtime.delta), a.get("transitive", True))
        for a in manifest["artifact"]
    )
    return replace(runtime, artifacts=artifacts)


def local_jars(runtime: Runtime, cache_root: Path) -> list[Path]:
    """Jars to load for this runtime; fail with one line when the cache does not match it."""
    cache = runtime.cache_dir(cache_root)
    missing = [a.coordinate for a in runtime.artifacts if not (cache / a.jar_name).exists()]
    if missing:
        raise SetupError(
            f"jar cache {cache} lacks {', '.join(missing)} for pyspark {runtime.pyspark} "
            f"and delta-spark {runtime.delta}; run scripts/setup"
        )
    return sorted(cache.glob("*.jar"))


def _pom(coordinates: list[str], *, transitive: bool) -> str:
    """A POM depending on the coordinates; `transitive=False` excludes all their dependencies."""
    exclusions = (
        ""
        if transitive
        else "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>"
    )
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version>".format(*c.split(":"))
        + f"{exclusions}</dependency>"
        for c in coordinates
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>featurelake</groupId><artifactId>jar-cache</artifactId><version>0</version>"
        f"<packaging>pom</packaging><dependencies>{deps}</dependencies></project>"
    )


def _maven_copy(coordinates: list[str], out_dir: Path, log: Path, *, transitive: bool) -> bool:
    """Copy the coordinates (and, when transitive, their runtime dependencies) into out_dir with `mvn`."""
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_pom(coordinates, transitive=transitive))
        command = [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out_dir}",
            "-DincludeScope=runtime",
        ]
        with log.open("a") as sink:
            return subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode == 0


def _shipped_by_pyspark() -> set[str]:
    """Artifact names of the jars pyspark already has, so they are never loaded twice."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {m["artifact"] for p in jars.glob("*.jar") if (m := _JAR_NAME.match(p.name))}


def resolve(runtime: Runtime, cache_root: Path) -> None:
    """Fill the cache for this runtime; fail in one line naming a coordinate Maven cannot resolve."""
    cache_root = cache_root.resolve()
    cache = runtime.cache_dir(cache_root)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache_root / "maven.log"
    shipped = _shipped_by_pyspark()
    for artifact in runtime.artifacts:
        if (cache / artifact.jar_name).exists():
            continue
        with tempfile.TemporaryDirectory(dir=cache_root) as staging:
            if not _maven_copy([artifact.coordinate], Path(staging), log, transitive=artifact.transitive):
                raise SetupError(f"Maven could not resolve {artifact.coordinate}; see {log}")
            for jar in Path(staging).glob("*.jar"):
                match = _JAR_NAME.match(jar.name)
                if match and match["artifact"] not in shipped:
                    shutil.move(str(jar), cache / jar.name)


def main(argv: list[str] | None = None) -> int:
    """`resolve` fills the jar cache; `coordinates` prints them for spark-submit and Databricks."""
    parser = argparse.ArgumentParser(prog="python -m engine.runtime.jars")
    sub = parser.add_subparsers(dest="command", required=True)
    res = sub.add_parser("resolve", help="resolve the manifest's jars into the cache")
    res.add_argument("--cache", type=Path, required=True)
    sub.add_parser("coordinates", help="print the Maven coordinates")
    args = parser.parse_args(argv)
    try:
        runtime = load_runtime()
        if args.command == "resolve":
            resolve(runtime, args.cache)
            return 0
        packages, excluded = runtime.packages(), ",".join(runtime.exclusions())
        print(f"spark-submit --packages {','.join(packages)}" + (f" --exclude-packages {excluded}" if excluded else ""))
        print("Databricks cluster libraries (Maven):")
        for coordinate in packages:
            print(f"  {coordinate}" + (f"  (exclusions: {excluded})" if excluded and "deequ" in coordinate else ""))
        return 0
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
