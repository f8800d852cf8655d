"""The validation report as JSON (for machines) and as one HTML page (for a person, at a glance)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from engine.quality.states import CheckStatus
from engine.quality.verify import ValidationReport

_COLOURS = {
    CheckStatus.PASSED: "#1a7f37",
    CheckStatus.FAILED: "#cf222e",
    CheckStatus.WARNING: "#9a6700",
    CheckStatus.SKIPPED: "#6e7781",
}
_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}th{background:#f6f8fa}"
    ".status{color:#fff;font-weight:600;border-radius:4px;padding:1px 6px}"
)


def _status(check: dict) -> CheckStatus:
    """The displayed status: a failed warning check shows as `warning`."""
    status = CheckStatus(check["status"])
    if status == CheckStatus.FAILED and check["severity"] == "warning":
        return CheckStatus.WARNING
    return status


def _number(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _interval(check: dict) -> str:
    interval = check.get("interval")
    return f"[{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""


def render_html(report: dict, title: str) -> str:
    """One table row per check with a coloured status, then quarantine counts, anomalies and drift."""
    outcome = "PASSED" if report["passed"] else "FAILED"
    rows = []
    for check in report["checks"]:
        status = _status(check)
        cells = [
            html.escape(check["dataset"]),
            html.escape(check["name"]),
            html.escape(check["kind"]),
            html.escape(check["layer"]),
            f'<span class="status" style="background:{_COLOURS[status]}">{status}</span>',
            _number(check["metric"]),
            html.escape(check["expected"]),
            _interval(check),
            _number(check["sample_size"]),
            html.escape(check["decided_by"]),
            html.escape(check["action"]),
            _number(check["quarantined"]),
            html.escape(check["detail"]),
        ]
        rows.append(
            f'<tr data-check="{html.escape(check["name"])}" data-status="{status}">'
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    header = "dataset check kind layer status metric expected interval sample decided_by action quarantined detail"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p id='outcome'>Validation {outcome} &middot; outcome: {html.escape(report['outcome'])}</p>",
        "<table id='checks'><tr>" + "".join(f"<th>{h}</th>" for h in header.split()) + "</tr>",
        *rows,
        "</table><h2>Rows</h2><table id='rows'><tr><th>dataset</th><th>rows</th><th>malformed</th>"
        "<th>quarantined</th></tr>",
        *[
            f"<tr><td>{html.escape(d)}</td><td>{n:,}</td><td>{report['malformed'].get(d, 0):,}</td>"
            f"<td>{report['quarantined'].get(d, 0):,}</td></tr>"
            for d, n in report["rows"].items()
        ],
        "</table>",
    ]
    if report["anomalies"]:
        parts.append("<h2>Anomalies</h2><ul id='anomalies'>")
        parts += [f"<li>{html.escape(a['message'])}</li>" for a in report["anomalies"]]
        parts.append("</ul>")
    if report["drift"]:
        parts.append(
            "<h2>Drift per feature</h2><table id='drift'><tr><th>feature</th><th>kind</th><th>psi</th>"
            "<th>js distance</th><th>l-inf</th><th>status</th></tr>"
        )
        for d in report["drift"]:
            status = CheckStatus.WARNING if d["drifted"] else CheckStatus.PASSED
            parts.append(
                f"<tr data-feature='{html.escape(d['feature'])}'><td>{html.escape(d['feature'])}</td>"
                f"<td>{d['kind']}</td><td>{_number(d['psi'])}</td><td>{_number(d['js'])}</td>"
                f"<td>{_number(d['linf'])}</td>"
                f'<td><span class="status" style="background:{_COLOURS[status]}">{status}</span></td></tr>'
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(report: ValidationReport, directory: Path, stem: str, title: str) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.html` atomically beside each other; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    content = report.to_dict()
    written = []
    for suffix, text in ((".json", json.dumps(content, indent=2, default=str)), (".html", render_html(content, title))):
        path = directory / f"{stem}{suffix}"
        partial = path.with_suffix(suffix + ".partial")
        partial.write_text(text)
        partial.replace(path)
        written.append(path)
    return written[0], written[1]
