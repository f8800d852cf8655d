"""The HTML validation report, rendered from a ValidationReport of the engine's own types (no Spark): failures
first, one row per check, Deequ's message under each failure, a gauge for each measured check, and the run in
the header; and the JSON written beside it."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from engine.config.quality import AnomalyStrategy
from engine.quality.findings import Anomaly, FeatureDrift, FeatureKind
from engine.quality.report import render_html, write_reports
from engine.quality.verify import CheckResult, ValidationReport

LONG = "row 17 has dep_delay=-9999 " * 40


def _check(name: str, status: str, **fields: object) -> CheckResult:
    check = CheckResult(
        dataset="flights",
        name=name,
        kind="completeness",
        layer="statistical",
        severity="error",
        action="halt_pipeline",
        columns=["dep_delay"],
        expected=">= 0.95",
        status=status,
        threshold=0.95,
        metric=0.97,
    )
    return replace(check, **fields)


CHECKS = [
    _check("sampled_ok", "passed", metric=0.98, interval=[0.972, 0.986], sample_size=2000, decided_by="sample"),
    _check(
        "long_detail",
        "passed",
        kind="mean",
        threshold=None,
        min=0.0,
        max=60.0,
        metric=12.5,
        expected="in [0, 60]",
        detail=LONG,
    ),
    _check("schema_ok", "passed", kind="schema", layer="schema", threshold=None, metric=None, expected="columns"),
    _check(
        "arr_delay_complete", "failed", metric=0.91, message="Value: 0.91 does not meet the constraint requirement!"
    ),
    _check("air_time_range", "failed", severity="warning", message="air_time out of range in 3% of rows"),
    _check("straddling", "borderline", metric=0.951, interval=[0.94, 0.96], decided_by="sample", sample_size=500),
    _check("no_rows", "skipped", metric=None, decided_by="no data"),
]
ANOMALY = Anomaly(
    "flights", "rows", 1.0, 9.0, 9.0, AnomalyStrategy.RELATIVE_RATE_OF_CHANGE, "flights.rows changed from 1 to 9"
)
DRIFT = FeatureDrift("dep_delay", FeatureKind.NUMERIC, 0.3, 0.1, None, None, True, None, False)
REPORT = ValidationReport(
    checks=CHECKS,
    anomalies=[ANOMALY],
    rows={"flights": 6012},
    malformed={"flights": 2},
    quarantined={"flights": 5},
    drift=[DRIFT],
    outcome="halt",
    sources={"flights": "delta output/flights @ version 3"},
    run_id="run-4f2a",
)


class _Rows(HTMLParser):
    """Every check row in document order as (check, status), and the rows whose first cell holds an <svg>."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self.with_svg: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr":
            self.current = values.get("data-check")
            if self.current is not None:
                self.rows.append((self.current, values["data-status"] or ""))
        elif tag == "svg" and self.current is not None:
            self.with_svg.add(self.current)


def _parse(page: str) -> _Rows:
    parser = _Rows()
    parser.feed(page)
    return parser


def test_one_row_per_check_failures_first() -> None:
    rows = _parse(render_html(REPORT, "validation")).rows
    assert sorted(name for name, _ in rows) == sorted(c.name for c in CHECKS)
    assert [status for _, status in rows] == ["failed", "warning", "borderline", "skipped", *["passed"] * 3]
    assert [name for name, _ in rows][-3:] == ["sampled_ok", "long_detail", "schema_ok"]  # stable within a group


def test_failure_messages_gauges_and_details() -> None:
    page = render_html(REPORT, "validation")
    assert "Value: 0.91 does not meet the constraint requirement!" in page
    assert "air_time out of range in 3% of rows" in page
    assert _parse(page).with_svg == {"sampled_ok", "long_detail", "arr_delay_complete", "air_time_range", "straddling"}
    assert "sample (n=2,000)" in page
    assert LONG.strip() in page and "<details>" in page  # the long detail is on demand, not in the line


def test_header_and_sections() -> None:
    page = render_html(REPORT, "featurelake <validation>")
    assert "featurelake &lt;validation&gt;" in page
    assert "run-4f2a" in page and "delta output/flights @ version 3" in page
    assert ">3 passed<" in page and ">1 failed<" in page and ">1 warned<" in page and ">1 borderline<" in page
    assert "<div id='outcome'" in page and "Validation FAILED" in page and "outcome: halt" in page
    for section in ("id='rows'", "id='checks'", "id='anomalies'", "id='drift'", "data-feature='dep_delay'"):
        assert section in page
    passing = render_html(replace(REPORT, outcome="continue", checks=CHECKS[:2]), "v")
    assert "Validation PASSED" in passing and ">0 failed<" in passing and ">1 skipped<" not in passing


def test_the_json_beside_the_page_holds_the_same_report(tmp_path: Path) -> None:
    json_path, html_path = write_reports(REPORT, tmp_path, "run", "validation")
    content = json.loads(json_path.read_text())
    assert content["passed"] is False and content["outcome"] == "halt" and content["run_id"] == "run-4f2a"
    assert [c["name"] for c in content["checks"]] == [c.name for c in CHECKS]
    assert content["checks"][0]["decided_by"] == "sample" and content["checks"][0]["interval"] == [0.972, 0.986]
    assert content["anomalies"][0]["message"] == ANOMALY.message and content["drift"][0]["psi"] == 0.3
    assert html_path.read_text() == render_html(REPORT, "validation")
