"""ML checks on a feature table: drift against the previous version, and single-feature leakage.

Numeric features are binned at the previous version's deciles (nulls in a bin of their own);
both versions are counted per bin in one aggregation each, and compared with the population
stability index and the Jensen-Shannon distance. Categorical features are compared by the
L-infinity distance of their value shares. A feature that alone ranks the label almost perfectly
(binned AUC at or above `max_feature_auc`, or at or below 1 - it) is reported as leakage, and so
is a feature with a row whose value became known after the label time.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.quality import DriftConfig
from engine.quality.findings import FeatureDrift, FeatureKind

EPSILON = 1e-4


def _edges(previous: DataFrame, features: list[str], bins: int) -> dict[str, list[float]]:
    """Distinct inner bin edges of each numeric feature, at the previous version's quantiles."""
    ranks = [i / bins for i in range(1, bins)]
    row = previous.agg(
        *[F.percentile_approx(F.col(f).cast("double"), ranks, 1_000).alias(f"e{i}") for i, f in enumerate(features)]
    ).first()
    return {f: sorted(set(row[f"e{i}"] or [])) for i, f in enumerate(features)}


def _bin(feature: str, edges: list[float]) -> Column:
    """Bin index 0..len(edges) of a value; null values get -1."""
    value = F.col(feature).cast("double")
    index = sum((F.when(value >= e, 1).otherwise(0) for e in edges), F.lit(0))
    return F.when(value.isNull(), F.lit(-1)).otherwise(index)


def _counts(df: DataFrame, edges: dict[str, list[float]], label: str | None) -> dict[str, dict[int, tuple[int, int]]]:
    """Rows (and positives when a label is given) per bin of every feature, in one grouping.

    Each row becomes one (feature, bin, positive) entry per feature, so each bin expression is
    evaluated once per row and the grouping has at most features x (bins + 1) keys.
    """
    features = list(edges)
    positive = (F.col(label) == 1).cast("int") if label else F.lit(0)
    entries = F.explode(
        F.array(*[F.struct(F.lit(i).alias("f"), _bin(f, edges[f]).alias("b")) for i, f in enumerate(features)])
    )
    counted = (
        df.select(entries.alias("e"), positive.alias("p"))
        .groupBy(F.col("e.f").alias("f"), F.col("e.b").alias("b"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum("p").alias("p"))
        .collect()
    )
    result: dict[str, dict[int, tuple[int, int]]] = {f: {} for f in features}
    for row in counted:
        result[features[row["f"]]][row["b"]] = (row["n"], row["p"] or 0)
    return result


def _shares(counts: dict[int, tuple[int, int]]) -> dict[int, float]:
    """Share of rows per bin."""
    total = sum(n for n, _ in counts.values())
    return {b: n / total for b, (n, _) in counts.items()} if total else {}


def psi(p: dict, q: dict) -> float:
    """Population stability index of current shares `p` against previous shares `q`."""
    keys = set(p) | set(q)
    return sum(
        (max(p.get(k, 0), EPSILON) - max(q.get(k, 0), EPSILON))
        * math.log(max(p.get(k, 0), EPSILON) / max(q.get(k, 0), EPSILON))
        for k in keys
    )


def js_distance(p: dict, q: dict) -> float:
    """Jensen-Shannon distance (base 2, so within 0..1)."""

    def kl(a: dict, m: dict) -> float:
        return sum(v * math.log2(v / m[k]) for k, v in a.items() if v > 0)

    keys = set(p) | set(q)
    m = {k: (p.get(k, 0) + q.get(k, 0)) / 2 for k in keys}
    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def linf(p: dict, q: dict) -> float:
    return max((abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q)), default=0.0)


def binned_auc(counts: dict[int, tuple[int, int]]) -> float | None:
    """AUC of ranking by the feature's bin (ties share half), from per-bin positives and rows."""
    bins = sorted(b for b in counts if b >= 0)
    positives = sum(counts[b][1] for b in bins)
    negatives = sum(counts[b][0] - counts[b][1] for b in bins)
    if not positives or not negatives:
        return None
    below, area = 0, 0.0
    for b in bins:
        n, p = counts[b]
        area += p * (below + (n - p) / 2)
        below += n - p
    return area / (positives * negatives)


def _categorical_shares(df: DataFrame, features: list[str]) -> dict[str, dict[str, float]]:
    """Value shares of each categorical feature, in one grouping of (feature, value)."""
    pairs = F.explode(
        F.map_from_arrays(F.array(*[F.lit(f) for f in features]), F.array(*[F.col(f).cast("string") for f in features]))
    )
    counts = df.select(pairs.alias("feature", "value")).groupBy("feature", "value").count().collect()
    totals: dict[str, int] = {}
    for r in counts:
        totals[r["feature"]] = totals.get(r["feature"], 0) + r["count"]
    shares: dict[str, dict[str, float]] = {f: {} for f in features}
    for r in counts:
        shares[r["feature"]][r["value"]] = r["count"] / totals[r["feature"]]
    return shares


def late_rows(df: DataFrame, cfg: DriftConfig, features: list[str]) -> dict[str, int]:
    """Per feature with a time column: rows whose value became known after the label time (one pass)."""
    timed = [f for f in features if f in cfg.time_columns]
    if not timed or not cfg.label_time:
        return {}
    label_time = F.col(cfg.label_time)
    row = df.agg(*[F.count_if(F.col(cfg.time_columns[f]) > label_time).alias(f"t{i}") for i, f in enumerate(timed)])
    first = row.first()
    return {f: first[f"t{i}"] for i, f in enumerate(timed)}


def feature_drift(
    current: DataFrame,
    previous: DataFrame,
    features: list[str],
    cfg: DriftConfig,
    label: str | None = None,
    rows: int | None = None,
) -> list[FeatureDrift]:
    """Per feature: PSI, JS distance (numeric) or L-inf (categorical), leakage AUC, and whether it drifted.

    With `rows` (the current version's row count) above `cfg.sample_rows`, both versions are
    compared on uniform samples of the same fraction.
    """
    late = late_rows(current, cfg, features) if label else {}
    if rows and cfg.sample_rows and rows > cfg.sample_rows:
        fraction = cfg.sample_rows / rows
        current = current.sample(withReplacement=False, fraction=fraction, seed=cfg.seed)
        previous = previous.sample(withReplacement=False, fraction=fraction, seed=cfg.seed)
    current = current.select(*features, *([label] if label else [])).cache()  # scanned twice or more
    previous = previous.select(*features).cache()
    try:
        return _compare(current, previous, features, cfg, label, late)
    finally:
        current.unpersist()
        previous.unpersist()


def _compare(
    current: DataFrame, previous: DataFrame, features: list[str], cfg: DriftConfig, label: str | None, late: dict
) -> list[FeatureDrift]:
    """The per-feature comparison of two (cached) frames."""
    categorical = [f for f in features if f in cfg.categorical]
    numeric = [f for f in features if f not in cfg.categorical]
    results = []
    if numeric:
        edges = _edges(previous, numeric, cfg.bins)
        now, before = _counts(current, edges, label), _counts(previous, edges, None)
        for feature in numeric:
            p, q = _shares(now[feature]), _shares(before[feature])
            auc = binned_auc(now[feature]) if label else None
            value_psi, value_js = psi(p, q), js_distance(p, q)
            results.append(
                FeatureDrift(
                    feature=feature,
                    kind=FeatureKind.NUMERIC,
                    psi=value_psi,
                    js=value_js,
                    linf=None,
                    auc=auc,
                    drifted=value_psi > cfg.max_psi or value_js > cfg.max_js,
                    late_rows=late.get(feature),
                    leakage=(auc is not None and max(auc, 1 - auc) >= cfg.max_feature_auc) or bool(late.get(feature)),
                )
            )
    if categorical:
        now_shares, before_shares = (
            _categorical_shares(current, categorical),
            _categorical_shares(previous, categorical),
        )
        for feature in categorical:
            distance = linf(now_shares[feature], before_shares[feature])
            late_rows = late.get(feature)
            drifted = distance > cfg.max_linf
            results.append(
                FeatureDrift(
                    feature, FeatureKind.CATEGORICAL, None, None, distance, None, drifted, late_rows, bool(late_rows)
                )
            )
    return results
