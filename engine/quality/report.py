"""The validation report as JSON (for machines) and as one HTML page (for a person, at a glance).

The page reads, top to bottom: the verdict (outcome, check counts, run id), the datasets read (source
and version, rows, malformed and quarantined rows), then one line per check, failures first, each
with a gauge of its metric against its bound and Deequ's message under it when it failed; then
anomalies and drift. Long text opens on demand in a panel; the page is pure HTML and inline CSS.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from pathlib import Path

from engine.config.check_kinds import Severity
from engine.quality.states import CheckStatus, DecidedBy
from engine.quality.verify import CheckResult, ValidationReport

_COLOURS = {
    CheckStatus.PASSED: "#1a7f37",
    CheckStatus.FAILED: "#cf222e",
    CheckStatus.WARNING: "#9a6700",
    CheckStatus.SKIPPED: "#6e7781",
    CheckStatus.BORDERLINE: "#8250df",
}
_ORDER = {  # failing first, then warnings, then undecided, then passed
    CheckStatus.FAILED: 0,
    CheckStatus.WARNING: 1,
    CheckStatus.BORDERLINE: 2,
    CheckStatus.SKIPPED: 2,
    CheckStatus.PASSED: 3,
}
# (header, width in px; None takes the rest): 1,300 px less the margins holds them on one line.
_COLUMNS = (
    ("status", 88),
    ("dataset", 110),
    ("check", 220),
    ("kind", 110),
    ("metric", 88),
    ("expected", 120),
    ("metric vs bound", 176),
    ("decided by", 132),
    ("details", None),
)
_GAUGE_WIDTH, _GAUGE_HEIGHT, _GAUGE_INSET = 160, 18, 6
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#1f2328}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:24px 0 6px}
.muted{color:#656d76}code{font:12px ui-monospace,monospace}
.banner{display:flex;align-items:center;gap:16px;flex-wrap:wrap;padding:10px 14px;border-radius:6px;margin:12px 0;
color:#fff}
.banner .verdict{font-size:20px;font-weight:700}
.banner .pill{background:rgba(255,255,255,.22);border-radius:12px;padding:2px 10px;font-weight:600}
.counts{margin-left:auto;display:flex;gap:8px}
.count{background:#fff;border-radius:12px;padding:2px 10px;font-weight:600}
table{border-collapse:collapse;margin:6px 0;table-layout:fixed;width:100%}
td,th{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:middle;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis}
th{background:#f6f8fa;font-weight:600;border-top:1px solid #d8dee4}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;min-width:62px;text-align:center;color:#fff;font-weight:600;border-radius:4px;
padding:0 6px;font-size:12px}
tr.failed>td{background:#fff5f5}tr.warning>td{background:#fffbea}
tr.lead>td{border-bottom:none}
tr.note>td{padding:0 8px 5px;white-space:normal}
.msg{font-size:12px;color:#57606a;overflow-wrap:anywhere;display:-webkit-box;-webkit-line-clamp:3;
-webkit-box-orient:vertical;overflow:hidden}
.msg b{font-weight:600}
td.more{overflow:visible}
details{position:relative}
summary{display:block;list-style:none;cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:#0969da}
summary::-webkit-details-marker{display:none}
summary::before{content:"\\25B8  ";color:#656d76}details[open]>summary::before{content:"\\25BE  "}
.panel{position:absolute;right:0;top:100%;z-index:10;width:600px;max-height:420px;overflow:auto;background:#fff;
border:1px solid #d0d7de;border-radius:6px;box-shadow:0 8px 24px rgba(140,149,159,.3);padding:8px 12px;
white-space:normal}
.panel dl{display:grid;grid-template-columns:110px 1fr;gap:2px 10px;margin:0}
.panel dt{color:#656d76}.panel dd{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
svg{display:block}
"""


def _status(check: CheckResult) -> CheckStatus:
    """The displayed status: a failed warning check shows as `warning`."""
    status = check.status
    if status == CheckStatus.FAILED and check.severity == Severity.WARNING:
        return CheckStatus.WARNING
    return status


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object) -> str:
    """A short reading of a number (plain text): whole numbers with thousands separators, others to 4 digits."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _interval(check: CheckResult) -> str:
    interval = check.interval
    return f"[{interval[0]:.6g}, {interval[1]:.6g}]" if interval else ""


def _cell(text: str, css: str = "") -> str:
    """One ellipsised cell; the whole text is its tooltip."""
    escaped = html.escape(text)
    return f'<td{f" class={css!r}" if css else ""} title="{escaped}">{escaped}</td>'


def _num_cell(value: object, colour: str = "") -> str:
    style = f' style="color:{colour}"' if colour else ""
    return f'<td class="num"{style}>{html.escape(_number(value))}</td>'


def _badge(status: CheckStatus) -> str:
    return f'<span class="status" style="background:{_COLOURS[status]}">{status}</span>'


def _gauge(check: CheckResult, colour: str) -> str:
    """An inline SVG: the allowed region shaded, bounds as ticks, the interval as a bar, the metric as a dot.

    A ratio check (with `threshold`) lives on [0, 1] and must reach at least the threshold; the others
    must lie in [min, max], either side open. No metric or no bound: no gauge.
    """
    metric, threshold = check.metric, check.threshold
    low, high = (threshold, 1.0) if threshold is not None else (check.min, check.max)
    if not _finite(metric) or not (_finite(low) or _finite(high)):
        return ""
    interval = [v for v in (check.interval or []) if _finite(v)]
    values = [v for v in (low, high, metric, *interval) if _finite(v)]
    start, end = min(values), max(values)
    pad = 0.08 * ((end - start) or abs(end) or 1.0)
    start, end = start - pad, end + pad
    if threshold is not None:
        start, end = max(start, 0.0), min(end, 1.0)
    inner = _GAUGE_WIDTH - 2 * _GAUGE_INSET

    def x(value: float) -> float:
        return _GAUGE_INSET + (value - start) / ((end - start) or 1.0) * inner

    left = x(low) if _finite(low) else 0.0
    right = x(high) if _finite(high) else float(_GAUGE_WIDTH)
    ticks = [x(v) for v in ((threshold,) if threshold is not None else (low, high)) if _finite(v)]
    tip = f"{check.name}: metric {metric:.6g}, expected {check.expected}"
    if len(interval) == 2:
        tip += f", interval [{interval[0]:.6g}, {interval[1]:.6g}]"
    parts = [
        f'<svg width="{_GAUGE_WIDTH}" height="{_GAUGE_HEIGHT}" viewBox="0 0 {_GAUGE_WIDTH} {_GAUGE_HEIGHT}" '
        f'role="img" aria-label="{html.escape(tip)}"><title>{html.escape(tip)}</title>',
        f'<rect x="0" y="4" width="{_GAUGE_WIDTH}" height="10" rx="2" fill="#eaeef2"/>',
        f'<rect x="{left:.1f}" y="4" width="{max(right - left, 0):.1f}" height="10" fill="#c6ecd0"/>',
        *[f'<line x1="{t:.1f}" x2="{t:.1f}" y1="1" y2="17" stroke="#57606a" stroke-width="1.5"/>' for t in ticks],
    ]
    if len(interval) == 2:
        bar_left, bar_right = x(interval[0]), x(interval[1])
        parts.append(
            f'<rect x="{bar_left:.1f}" y="7" width="{max(bar_right - bar_left, 1.5):.1f}" height="4" rx="1" '
            f'fill="{colour}" opacity=".45"/>'
        )
    parts.append(f'<circle cx="{x(metric):.1f}" cy="9" r="3.5" fill="{colour}" stroke="#fff" stroke-width="1"/></svg>')
    return "".join(parts)


def _decided(check: CheckResult) -> str:
    decided_by, size = check.decided_by, check.sample_size
    return f"{decided_by} (n={size:,})" if decided_by == DecidedBy.SAMPLE and size is not None else str(decided_by)


def _panel(check: CheckResult) -> str:
    """The details on demand: everything the line leaves out, in a panel that opens over the page."""
    fields = [
        ("layer", str(check.layer)),
        ("severity", str(check.severity)),
        ("action", str(check.action)),
        ("columns", ", ".join(check.columns or [])),
        ("expected", check.expected),
        ("threshold", _number(check.threshold)),
        ("min", _number(check.min)),
        ("max", _number(check.max)),
        ("metric", "" if check.metric is None else repr(check.metric)),
        ("interval", _interval(check)),
        ("sample size", _number(check.sample_size)),
        ("decided by", str(check.decided_by)),
        ("quarantined", _number(check.quarantined)),
        ("message", check.message or ""),
        ("detail", check.detail or ""),
    ]
    summary = check.detail or check.message or ", ".join(check.columns or []) or "more"
    body = "".join(f"<dt>{k}</dt><dd>{html.escape(str(v))}</dd>" for k, v in fields if v not in ("", None))
    return (
        f'<td class="more"><details><summary>{html.escape(summary[:200])}</summary>'
        f'<div class="panel"><dl>{body}</dl></div></details></td>'
    )


def _check_rows(check: CheckResult) -> list[str]:
    """The check's line, and for a failure or warning a muted line under it with Deequ's message."""
    status = _status(check)
    colour = _COLOURS[status]
    failing = status in (CheckStatus.FAILED, CheckStatus.WARNING)
    metric = check.metric
    metric_cell = (
        f'<td class="num" title="{html.escape(repr(metric))}">{html.escape(_number(metric))}</td>'
        if metric is not None
        else '<td class="num muted">&ndash;</td>'
    )
    cells = [
        f"<td>{_badge(status)}</td>",
        _cell(check.dataset),
        _cell(check.name),
        _cell(check.kind),
        metric_cell,
        _cell(check.expected),
        f"<td>{_gauge(check, colour)}</td>",
        _cell(_decided(check)),
        _panel(check),
    ]
    css = f"{status}{' lead' if failing else ''}"
    rows = [
        f'<tr class="{css}" data-check="{html.escape(check.name)}" data-status="{status}">' + "".join(cells) + "</tr>"
    ]
    if failing:
        message = check.message or ""
        label, text = ("Deequ", message) if message else ("detail", check.detail or "(no constraint message)")
        rows.append(
            f'<tr class="note {status}"><td></td><td colspan="{len(_COLUMNS) - 1}">'
            f'<div class="msg" title="{html.escape(text)}"><b>{label}:</b> {html.escape(text)}</div></td></tr>'
        )
    return rows


def _header(report: ValidationReport, title: str, counts: Counter[CheckStatus]) -> list[str]:
    """Title and run id; the verdict banner with the check counts; one line per dataset read."""
    passed = report.passed
    verdict = "PASSED" if passed else "FAILED"
    colour = _COLOURS[CheckStatus.PASSED if passed else CheckStatus.FAILED]
    run_id = report.run_id
    chips = [(CheckStatus.PASSED, "passed"), (CheckStatus.FAILED, "failed"), (CheckStatus.WARNING, "warned")]
    chips += [(s, str(s)) for s in (CheckStatus.BORDERLINE, CheckStatus.SKIPPED) if counts[s]]
    sources = report.sources
    datasets = list(report.rows) + [d for d in sources if d not in report.rows]
    lines = [
        f"<h1>{html.escape(title)}</h1>",
        f"<div id='run' class='muted'>run <code>{html.escape(str(run_id))}</code></div>" if run_id else "",
        f"<div id='outcome' class='banner' style='background:{colour}'>"
        f"<span class='verdict'>Validation {verdict}</span>"
        f"<span class='pill'>outcome: {html.escape(str(report.outcome))}</span>"
        "<span class='counts'>"
        + "".join(
            f"<span class='count' id='count-{s}' style='color:{_COLOURS[s]}'>{counts[s]} {word}</span>"
            for s, word in chips
        )
        + "</span></div>",
        "<table id='rows'><colgroup><col style='width:160px'><col><col style='width:120px'>"
        "<col style='width:120px'><col style='width:120px'></colgroup>"
        "<tr><th>dataset</th><th>source (version)</th><th class='num'>rows</th><th class='num'>malformed</th>"
        "<th class='num'>quarantined</th></tr>",
    ]
    for dataset in datasets:
        rows = report.rows.get(dataset)
        malformed, quarantined = report.malformed.get(dataset, 0), report.quarantined.get(dataset, 0)
        lines.append(
            f"<tr data-dataset='{html.escape(dataset)}'>{_cell(dataset)}{_cell(str(sources.get(dataset, '')))}"
            f"{_num_cell(rows)}{_num_cell(malformed, '#cf222e' if malformed else '')}"
            f"{_num_cell(quarantined, '#9a6700' if quarantined else '')}</tr>"
        )
    lines.append("</table>")
    return lines


def render_html(report: ValidationReport, title: str) -> str:
    """The verdict and datasets, one line per check (failures first, each with its gauge), anomalies, drift."""
    checks = sorted(report.checks, key=lambda c: _ORDER[_status(c)])
    counts = Counter(_status(c) for c in checks)
    colgroup = "".join(f"<col style='width:{w}px'>" if w else "<col>" for _, w in _COLUMNS)
    heads = "".join(f"<th class='num'>{h}</th>" if h == "metric" else f"<th>{h}</th>" for h, _ in _COLUMNS)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        *_header(report, title, counts),
        f"<h2>Checks <span class='muted'>({len(checks)})</span></h2>",
        f"<table id='checks'><colgroup>{colgroup}</colgroup><tr>{heads}</tr>",
        *[row for check in checks for row in _check_rows(check)],
        "</table>",
    ]
    if report.anomalies:
        parts.append("<h2>Anomalies</h2><ul id='anomalies'>")
        parts += [
            f"<li><b>{html.escape(a.dataset)}</b> <code>{html.escape(a.metric)}</code>"
            f" &middot; {html.escape(a.message)}</li>"
            for a in report.anomalies
        ]
        parts.append("</ul>")
    if report.drift:
        parts.append(
            "<h2>Drift per feature</h2><table id='drift' style='width:760px'><colgroup><col><col style='width:110px'>"
            "<col style='width:100px'><col style='width:100px'><col style='width:100px'><col style='width:100px'>"
            "</colgroup><tr><th>feature</th><th>kind</th><th class='num'>psi</th><th class='num'>js distance</th>"
            "<th class='num'>l-inf</th><th>status</th></tr>"
        )
        for d in report.drift:
            status = CheckStatus.WARNING if d.drifted else CheckStatus.PASSED
            parts.append(
                f"<tr data-feature='{html.escape(d.feature)}'>{_cell(d.feature)}{_cell(str(d.kind))}"
                f"{_num_cell(d.psi)}{_num_cell(d.js)}{_num_cell(d.linf)}<td>{_badge(status)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_reports(report: ValidationReport, directory: Path, stem: str, title: str) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.html` atomically beside each other; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    pages = ((".json", json.dumps(report.to_dict(), indent=2, default=str)), (".html", render_html(report, title)))
    for suffix, text in pages:
        path = directory / f"{stem}{suffix}"
        partial = path.with_suffix(suffix + ".partial")
        partial.write_text(text)
        partial.replace(path)
        written.append(path)
    return written[0], written[1]
