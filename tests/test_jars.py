"""The pinned runtime: the jar manifest and its coordinates, the cache, one-line version-mismatch errors, and
the session's SQL mode."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pyspark
import pytest
from pyspark.errors import NumberFormatException
from pyspark.sql import SparkSession

from engine.config.quality import CheckConfig, QualityConfig
from engine.errors import SetupError
from engine.quality.verify import verify
from engine.runtime.jars import _JAR_NAME, MANIFEST, load_runtime, local_jars
from tests.conftest import REPO

CACHE = REPO / ".cache" / "jars"


def test_coordinates_follow_the_installed_packages() -> None:
    runtime = load_runtime()
    delta = metadata.version("delta-spark")
    assert runtime.packages() == [
        f"io.delta:delta-spark_2.12:{delta}",
        f"io.delta:delta-storage:{delta}",
        "com.amazon.deequ:deequ:2.1.0-spark-3.5",
        f"org.apache.spark:spark-avro_2.12:{pyspark.__version__}",
    ]
    assert runtime.deequ == "com.amazon.deequ:deequ:2.1.0-spark-3.5"
    assert runtime.exclusions() == ["software.amazon.glue:dqdl"]


def test_coordinates_command_prints_both_forms() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.runtime.jars", "coordinates"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    required = load_runtime().packages()
    assert out[0] == f"spark-submit --packages {','.join(required)} --exclude-packages software.amazon.glue:dqdl"
    listed = [line.split()[0] for line in out[2:]]
    assert listed == required and "com.amazon.deequ:deequ:2.1.0-spark-3.5" in listed
    assert out[2 + listed.index("com.amazon.deequ:deequ:2.1.0-spark-3.5")].endswith(
        "(exclusions: software.amazon.glue:dqdl)"
    )


def test_unsupported_pyspark_fails_in_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "jars.toml"
    manifest.write_text(MANIFEST.read_text().replace('">=3.5.3,<3.6"', '">=4.2,<4.3"'))
    with pytest.raises(SetupError) as err:
        load_runtime(manifest)
    assert str(err.value) == (
        f"pyspark {pyspark.__version__} does not match the jars in jars.toml, which are built for pyspark <4.3,>=4.2"
    )


def test_unsupported_delta_fails_in_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "jars.toml"
    manifest.write_text(MANIFEST.read_text().replace('">=3.3,<3.4"', '">=4.0"'))
    with pytest.raises(SetupError, match=r"^delta-spark 3\.3\.\d+ does not match the jars in jars\.toml, .* >=4\.0$"):
        load_runtime(manifest)


def test_a_cache_without_deequ_fails_naming_its_coordinate(tmp_path: Path) -> None:
    runtime = load_runtime()
    cache = runtime.cache_dir(tmp_path)
    cache.mkdir(parents=True)
    for jar in local_jars(runtime, CACHE):
        if not jar.name.startswith("deequ-"):
            (cache / jar.name).symlink_to(jar)
    with pytest.raises(SetupError, match=r"^jar cache .* lacks com\.amazon\.deequ:deequ:2\.1\.0-spark-3\.5 for"):
        local_jars(runtime, tmp_path)


def test_cache_for_another_version_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"lacks io\.delta:delta-spark_2\.12:.*deequ:2\.1\.0-spark-3\.5.*; run"):
        local_jars(load_runtime(), tmp_path)


def test_cached_jars_never_duplicate_pyspark_jars() -> None:
    jars = local_jars(load_runtime(), CACHE)
    shipped = {_JAR_NAME.match(p.name)["artifact"] for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    cached = {_JAR_NAME.match(p.name)["artifact"] for p in jars}
    assert {"delta-spark_2.12", "deequ"} <= cached
    assert not cached & shipped


def test_the_session_runs_ansi_sql_and_deequ_leaves_it_on(spark: SparkSession) -> None:
    """Spark 3.5 leaves ANSI off; the session turns it on, and Deequ's runs (which need it off) restore it."""
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"
    with pytest.raises(NumberFormatException, match="CAST_INVALID_INPUT"):
        spark.sql("SELECT CAST('x' AS INT)").collect()
    check = CheckConfig(name="c", kind="completeness", columns=["c"], threshold=0.5)
    frame = spark.createDataFrame([("a",), (None,)], "c STRING")
    report = verify(frame, "d", [check], QualityConfig(), rows=2, as_of=datetime(2024, 1, 1))
    assert report.checks[0].metric == 0.5 and spark.conf.get("spark.sql.ansi.enabled") == "true"
