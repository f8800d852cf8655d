"""The import walls, read from the source: every import statement, at module level or inside a function."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

LEAVES = ("engine.errors", "engine.sql")  # modules every layer may import; they import no engine module


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


def test_the_leaves_import_no_engine_module() -> None:
    found = [m for leaf in LEAVES for m in _imports(REPO / (leaf.replace(".", "/") + ".py")) if _under(m, "engine")]
    assert found == []


def test_config_imports_nothing_of_the_engine_but_the_leaves_and_no_heavy_library() -> None:
    """Loading a config must stay cheap: no Spark, no numpy or scikit-learn, no engine module but the leaves
    (errors, SQL quoting)."""
    engine = _violations("engine/config", lambda m: _under(m, *LEAVES, "engine.config"), ("engine",))
    heavy = ("pyspark", "numpy", "pandas", "sklearn", "ray", "mlflow", "pyarrow")
    assert engine + _violations("engine/config", lambda _: False, heavy) == []


# The layers, lowest first: the engine packages each package may import (besides itself and the leaf
# modules `engine.errors` and `engine.sql`). Sources and quality are peers that never import each other:
# what the source edge hands on (`SourceData`, `StoredGroups`) lives in runtime.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "runtime": {"config"},
    "observability": {"config", "runtime"},
    "resilience": {"config", "observability"},
    "tracking": {"config", "observability"},
    "sinks": {"config", "observability", "resilience", "runtime"},
    "sources": {"config", "observability", "resilience", "runtime"},
    "quality": {"config", "observability", "runtime"},
    "versioning": {"config", "runtime", "sinks"},
    "training": {"config", "runtime", "sinks", "versioning"},
    "features": {"config", "runtime", "training"},
    "online": {"config", "features", "observability", "runtime", "sinks", "training", "versioning"},
    "experiments": {"config", "features", "tracking"},
    "pipeline": {
        "config",
        "experiments",
        "features",
        "observability",
        "online",
        "quality",
        "resilience",
        "runtime",
        "sinks",
        "sources",
        "tracking",
        "training",
        "versioning",
    },
}


def _packages() -> set[str]:
    return {p.name for p in (REPO / "engine").iterdir() if (p / "__init__.py").is_file()}


def test_the_layer_table_names_every_package_under_engine() -> None:
    """A new package fails here until it is given its place among the layers."""
    assert set(ALLOWED) == _packages()


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = (f"engine.{package}", *LEAVES, *(f"engine.{p}" for p in ALLOWED[package]))
    # `import engine` itself names no layer: the sweep ships the whole package to Ray's workers
    assert _violations(f"engine/{package}", lambda m: m == "engine" or _under(m, *allowed), ("engine",)) == []


def test_sources_never_import_quality() -> None:
    assert _violations("engine/sources", lambda _: False, ("engine.quality",)) == []


def test_experiments_never_import_spark() -> None:
    """Trials run in Ray workers from what the driver sends them; they read with delta-rs, not Spark."""
    assert _violations("engine/experiments", lambda _: False, ("pyspark", "engine.sources", "engine.sinks")) == []


# Columns and files of the embedded flights dataset: the engine meets them only through conf/pipeline/flights.yaml
# and conf/features/flights.yaml.
FLIGHTS_NAMES = re.compile(
    r"tailnum|carrier|weather|flight_id|dep_delay|arr_delay|sched_dep|sched_arr|dep_time|arr_time|air_time"
    r"|time_hour|flights\.csv|planes\.csv"
)
# Where flights' names used to sit in code: each must still be scanned (as Python, apart from conf/'s YAML).
ONCE_FLIGHTS = ("config", "features", "experiments")


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
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words.append(node.name)
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            words.append(node.arg)
        elif isinstance(node, ast.alias):
            words += [node.name, *([node.asname] if node.asname else [])]
    return words


def _scanned() -> list[Path]:
    """The modules the flights test reads: every Python file under engine/ and jobs/."""
    return [*_files("engine"), *_files("jobs")]


def test_the_code_word_scan_sees_every_kind_of_name(tmp_path: Path) -> None:
    """Each way code can name a column counts; only comments and docstrings do not."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""tailnum in a docstring."""\n'
        "from x import a_col as alias_col  # tailnum in a comment\n"
        "def fn_col(arg_col, *, kwonly_col=1):\n"
        '    """tailnum here too."""\n'
        "    return g(key_col=name_col.attr_col, s='str_col', f=f'{x}fstr_col')\n"
        "class cls_col: ...\n"
    )
    words = _code_words(module)
    kinds = ["a_col", "alias_col", "fn_col", "arg_col", "kwonly_col", "key_col", "name_col", "attr_col"]
    assert {*kinds, "str_col", "fstr_col", "cls_col"} <= set(words)
    assert not any("tailnum" in w for w in words)


def test_the_flights_scan_reads_every_package_and_job() -> None:
    """The scan covers the Python of every package under engine/ (config, features and experiments, where the
    flights names once were, included) and of jobs/: no folder drops out of it unnoticed."""
    scanned = _scanned()
    packages = {p.relative_to(REPO / "engine").parts[0] for p in scanned if p.is_relative_to(REPO / "engine")}
    assert packages >= _packages() | set(ONCE_FLIGHTS)
    assert any(p.is_relative_to(REPO / "jobs") for p in scanned)
    for package in ONCE_FLIGHTS:
        modules = [p for p in scanned if p.is_relative_to(REPO / "engine" / package) and p.name != "__init__.py"]
        assert modules and all(_code_words(p) for p in modules), package


def test_no_engine_or_job_module_names_a_flights_column() -> None:
    """The feature job is generic: flights is a declaration under conf/, and no code outside comments and
    docstrings names its columns, files or dataset."""
    found = [f"{p.relative_to(REPO)}: {w!r}" for p in _scanned() for w in _code_words(p) if FLIGHTS_NAMES.search(w)]
    assert found == []
