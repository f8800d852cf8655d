"""The import walls, read from the source: every import statement, at module level or inside a function."""

from __future__ import annotations

import ast
import re
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
        ("engine/sources", ("engine.features", "engine.pipeline", "engine.sinks")),
        ("engine/quality", ("engine.sources", "engine.sinks", "engine.pipeline")),
        ("engine/features", ("engine.sources", "engine.sinks", "engine.pipeline")),
        ("engine/experiments", ("pyspark", "engine.sources", "engine.sinks")),
    ],
)
def test_layers_never_reach_into_their_edges(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(folder, lambda _: False, forbidden) == []


# Columns of the embedded flights dataset: the engine meets them only through conf/pipeline/flights.yaml.
FLIGHTS_NAMES = re.compile(r"tailnum|carrier|weather|flight_id|dep_delay|arr_delay|sched_dep")


def _code_words(path: Path) -> list[str]:
    """Every name, attribute and string literal of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.arg | ast.keyword) and getattr(node, "name", None):
            words.append(node.name)
    return words


def test_no_engine_or_job_module_names_a_flights_column() -> None:
    """The feature job is generic: flights is a declaration under conf/, and no code outside comments and
    docstrings names its columns, files or dataset."""
    found = [
        f"{p.relative_to(REPO)}: {w!r}"
        for p in [*_files("engine"), *_files("jobs")]
        for w in _code_words(p)
        if FLIGHTS_NAMES.search(w)
    ]
    assert found == []
