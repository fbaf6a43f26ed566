"""The compliance report as one self-contained HTML file. Pure.

No script and no external asset (stylesheet, font, image): the file is evidence that is mailed,
archived and opened offline. Each set has a table of its exposures and a timeline drawn as inline
SVG: one bar per exposure from its start to its end (or to the report's end, if still open),
on the report's window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from remediation.report import Exposure, SetReport

WIDTH = 960  # the timeline's drawing width, in SVG user units
BAR = 14
GAP = 6
LABEL = 220  # room for the instance names left of the bars
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.open { color: #a4262c; font-weight: 600; }
.ended { color: #107c10; }
svg text { font: 11px system-ui, sans-serif; }
"""


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "unknown"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (
        f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    )


def _x(moment: datetime, since: datetime, until: datetime) -> float:
    span = max((until - since).total_seconds(), 1.0)
    offset = min(max((moment - since).total_seconds(), 0.0), span)
    return LABEL + (WIDTH - LABEL) * offset / span


def timeline(report: SetReport, since: datetime, until: datetime) -> str:
    """The set's exposures as bars on the window [since, until], in inline SVG."""
    shown = [e for e in report.exposures if e.began is not None]
    height = max(len(shown), 1) * (BAR + GAP) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="exposure timeline of '
        f'{escape(_short(report.scale_set))}">',
        f'<line x1="{LABEL}" y1="{height - 20}" x2="{WIDTH}" y2="{height - 20}" stroke="#888"/>',
        f'<text x="{LABEL}" y="{height - 5}">{since.strftime("%Y-%m-%d %H:%M")}</text>',
        f'<text x="{WIDTH}" y="{height - 5}" text-anchor="end">{until.strftime("%Y-%m-%d %H:%M")}</text>',
    ]
    for row, exposure in enumerate(shown):
        parts.append(_bar(exposure, row, since, until))
    parts.append("</svg>")
    return "".join(parts)


def _bar(exposure: Exposure, row: int, since: datetime, until: datetime) -> str:
    assert exposure.began is not None
    y = row * (BAR + GAP) + 4
    start = _x(exposure.began, since, until)
    end = _x(exposure.ended or until, since, until)
    colour = "#107c10" if exposure.ended else "#a4262c"
    title = (
        f"{_short(exposure.instance)}: public IP {_short(exposure.public_ip)}, "
        f"{exposure.status}, exposed {_duration(exposure.exposed_for(until))}"
    )
    return (
        f'<g class="exposure" data-status="{escape(exposure.status)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LABEL - 6}" y="{y + BAR - 3}" text-anchor="end">'
        f"{escape(_short(exposure.instance))}</text>"
        f'<rect x="{start:.1f}" y="{y}" width="{max(end - start, 1.0):.1f}" height="{BAR}" fill="{colour}"/>'
        "</g>"
    )


def _table(report: SetReport, until: datetime) -> str:
    head = "".join(
        f"<th>{name}</th>"
        for name in ("instance", "public IP", "origin", "began", "ended", "exposed", "status", "done", "by")
    )
    lines = [f"<table><tr>{head}</tr>"]
    for e in report.exposures:
        began = f"{e.began.isoformat()} ({e.began_from})" if e.began else ""
        done = e.action or e.why_open
        if e.failures:
            done += "; failed: " + "; ".join(e.failures)
        cells = (
            _short(e.instance),
            _short(e.public_ip),
            e.origin,
            began,
            e.ended.isoformat() if e.ended else "",
            _duration(e.exposed_for(until)),
        )
        lines.append(
            "<tr>"
            + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + f'<td class="{"ended" if e.ended else "open"}">{escape(e.status)}</td>'
            + f"<td>{escape(done)}</td><td>{escape(e.event_id)}</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)


def render_html(reports: list[SetReport], since: datetime, until: datetime) -> str:
    window = f"{since.isoformat()} to {until.isoformat()}"
    exposures = sum(len(r.exposures) for r in reports)
    still_open = sum(1 for r in reports for e in r.exposures if e.ended is None)
    body = [
        "<h1>Public IP exposure on restricted scale sets</h1>",
        f"<p>{escape(window)}: {len(reports)} scale sets, {exposures} exposures, {still_open} still open. "
        "From the remediator's audit log: what it saw and did.</p>",
    ]
    for report in reports:
        body.append(f"<h2>{escape(_short(report.scale_set))}</h2>")
        body.append(
            f"<p><code>{escape(report.scale_set)}</code>, mode {escape(report.mode or 'unknown')}</p>"
        )
        if report.exposures:
            body.append(timeline(report, since, until))
            body.append(_table(report, until))
        if report.failures:
            body.append("<h3>Failures</h3><ul>")
            body.extend(f"<li>{escape(line)}</li>" for line in report.failures)
            body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Public IP exposure, {escape(window)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
