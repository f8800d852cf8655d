"""Schema policy: compare an incoming DataFrame's schema with the table's and decide before writing."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from engine.config.schema import SchemaPolicy
from engine.errors import FeaturelakeError


class SchemaChangeRefused(FeaturelakeError):
    """The write would drop or retype columns (or add any, under `strict`); nothing was written."""


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[str, ...]
    dropped: tuple[str, ...]
    retyped: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.dropped or self.retyped)

    def describe(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("added", self.added), ("dropped", self.dropped), ("changed type", self.retyped))
            if names
        ]
        return "; ".join(parts)


def schema_diff(table: StructType, incoming: StructType) -> SchemaDiff:
    """Columns the incoming data adds, drops or retypes relative to the table (names compared exactly).

    Types are compared as Spark names them (`array<string>`), so element nullability, which Delta
    reconciles on write, is not a type change.
    """
    old = {f.name: f.dataType for f in table.fields}
    new = {f.name: f.dataType for f in incoming.fields}
    return SchemaDiff(
        added=tuple(n for n in new if n not in old),
        dropped=tuple(n for n in old if n not in new),
        retyped=tuple(
            f"{n} ({old[n].simpleString()} -> {new[n].simpleString()})"
            for n in new
            if n in old and old[n].simpleString() != new[n].simpleString()
        ),
    )


def enforce(policy: SchemaPolicy, diff: SchemaDiff, path: str, full_overwrite: bool) -> None:
    """Raise SchemaChangeRefused unless `policy` allows `diff`; `replace` applies only to a full overwrite."""
    if diff.empty or (policy == SchemaPolicy.REPLACE and full_overwrite):
        return
    refused = diff if policy == SchemaPolicy.STRICT else SchemaDiff((), diff.dropped, diff.retyped)
    if refused.empty:
        return
    allowed = "no change" if policy == SchemaPolicy.STRICT else "only new columns"
    raise SchemaChangeRefused(
        f"sink: schema change refused for {path}: {diff.describe()} "
        f"(schema_policy={policy} allows {allowed}; nothing was written)"
    )
