"""The jar manifest: coordinates, the cache, and one-line version-mismatch errors."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pyspark
import pytest

from engine.errors import SetupError
from engine.runtime.jars import _JAR_NAME, MANIFEST, load_runtime, local_jars
from tests.conftest import REPO

CACHE = REPO / ".cache" / "jars"


def test_coordinates_follow_the_installed_packages() -> None:
    runtime = load_runtime()
    delta = metadata.version("delta-spark")
    assert runtime.packages(include_optional=False) == [
        f"io.delta:delta-spark_4.1_2.13:{delta}",
        f"io.delta:delta-storage:{delta}",
        "org.apache.spark:spark-avro_2.13:4.1.1",
    ]
    assert "com.amazon.deequ:deequ:2.0.18-spark-4.1" in runtime.packages()


def test_coordinates_command_prints_both_forms() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.runtime.jars", "coordinates"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    runtime = load_runtime()
    required = runtime.packages(include_optional=False)
    assert out[0] == f"spark-submit --packages {','.join(required)}"
    assert [line.strip() for line in out[2 : 2 + len(required)]] == required
    assert out[2 + len(required) :] == ["optional: com.amazon.deequ:deequ:2.0.18-spark-4.1"]


def test_unsupported_pyspark_fails_in_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "jars.toml"
    manifest.write_text(MANIFEST.read_text().replace('">=4.1.2,<4.2"', '">=4.2,<4.3"'))
    with pytest.raises(SetupError) as err:
        load_runtime(manifest)
    assert str(err.value) == (
        f"pyspark {pyspark.__version__} does not match the jars in jars.toml, which are built for pyspark <4.3,>=4.2"
    )


def test_cache_for_another_version_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"lacks delta-spark_4\.1_2\.13-.*; run scripts/setup"):
        local_jars(load_runtime(), tmp_path)


def test_cached_jars_never_duplicate_pyspark_jars() -> None:
    jars = local_jars(load_runtime(), CACHE)
    shipped = {_JAR_NAME.match(p.name)["artifact"] for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    cached = {_JAR_NAME.match(p.name)["artifact"] for p in jars}
    assert "delta-spark_4.1_2.13" in cached
    assert not cached & shipped
