"""CSV headers read before Spark: a file that is not text, or whose header does not fit the declared
schema, fails in one line naming the source, the file and the reason.

Spark would fail the same file inside a task, with a stack trace naming neither the source nor the
missing column. Only local files are read here (a remote source is fetched to the staging folder
first); other paths are left to Spark.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
from pathlib import Path

from engine.config.quality import FileSourceConfig
from engine.errors import SourceError

MAX_HEADER_BYTES = 1 << 20
# Compressed files Spark decompresses by their extension; others (lz4, snappy, zstd) are left to Spark.
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open}
_LEFT_TO_SPARK = (".lz4", ".snappy", ".zst", ".deflate")


def _files(path: Path) -> list[Path]:
    """The files Spark reads at `path`: the file itself, or a folder's files that are not hidden."""
    if path.is_file():
        return [path]
    hidden = (".", "_")
    files = (p for p in path.rglob("*") if p.is_file())
    return sorted(p for p in files if not any(part.startswith(hidden) for part in p.relative_to(path).parts))


def _first_line(file: Path, encoding: str) -> str:
    opener = _OPENERS.get(file.suffix.lower(), open)
    try:
        with opener(file, "rb") as stream:
            raw = stream.readline(MAX_HEADER_BYTES)
    except (OSError, EOFError) as err:  # a .gz or .bz2 that is not one
        raise ValueError(f"not a {file.suffix[1:]} file ({err})") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"not text (a NUL byte at offset {nul})")
    try:
        return raw.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"not text (byte 0x{raw[err.start]:02x} at offset {err.start} is not {encoding})") from None
    except LookupError:
        raise ValueError(f"options.encoding: '{encoding}' is not an encoding") from None


def _names(line: str, cfg: FileSourceConfig) -> list[str]:
    sep = cfg.options.get("sep", cfg.options.get("delimiter", ","))
    quote = cfg.options.get("quote", '"') or '"'
    return next(csv.reader(io.StringIO(line), delimiter=sep, quotechar=quote), [])


def _listed(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _mismatch(header: list[str], schema: list[str], by_name: bool) -> str:
    """How the header differs from the schema, in words; empty when it fits."""
    found, wanted = [h.strip().lower() for h in header], [s.lower() for s in schema]
    missing = [s for s, w in zip(schema, wanted, strict=True) if w not in found]
    extra = [h for h, f in zip(header, found, strict=True) if f not in wanted]
    parts = [f"missing: {_listed(missing)}"] if missing else []
    parts += [f"not in the schema: {_listed(extra)}"] if extra else []
    detail = "; ".join(parts)
    if len(header) != len(schema):
        return f"the header has {len(header)} columns, the schema {len(schema)}" + (f" ({detail})" if detail else "")
    if by_name and found != wanted:
        return f"the header's columns are not the schema's ({detail or 'same names, another order'})"
    return ""


def check_csv_header(cfg: FileSourceConfig, schema: list[str]) -> None:
    """Every local file of a CSV source with a header: text, and a header of the schema's columns (by count;
    by name too when Spark checks names, `enforceSchema: false`). Raises a SourceError naming the file."""
    if cfg.format != "csv" or cfg.options.get("header", "true").lower() != "true":
        return
    if "://" in cfg.path or cfg.path.startswith("dbfs:") or not Path(cfg.path).exists():
        return
    encoding = cfg.options.get("encoding", cfg.options.get("charset", "utf-8"))
    by_name = cfg.options.get("enforceSchema", "true").lower() == "false"
    for file in (f for f in _files(Path(cfg.path)) if f.suffix.lower() not in _LEFT_TO_SPARK):
        try:
            problem = _mismatch(_names(_first_line(file, encoding), cfg), schema, by_name)
        except ValueError as err:
            problem = str(err)
        if problem:
            raise SourceError(f"source {cfg.name}: {file.name}: {problem}")
