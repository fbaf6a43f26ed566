"""Reading the audit log: query parameters, a summary, and the table / JSON / CSV renderings. Pure.

The same parameters mean the same thing on the command line (`remediation audit`) and over HTTP
(`GET /api/audit`), so both parse them here, and both name a bad parameter in their error.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.model import RecordKind, Result
from remediation.records import AuditRecord

_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_ARM_ID = re.compile(r"/subscriptions/[^ ,;]+/([^/ ,;]+)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
OUTCOMES = frozenset({result.value for result in Result} | {kind.value for kind in RecordKind})


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``: how far back."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-21T10:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    since: datetime
    until: datetime
    scale_set: str = ""
    event_id: str = ""
    correlation_id: str = ""
    outcome: str = ""
    writes: bool = False  # intents and outcomes only (what recovery and `audit verify` read)


def parse_filters(params: Mapping[str, str], now: datetime) -> Filters:
    """``since`` (a duration, default 24h), ``until`` (ISO time, default now), ``scale_set``,
    ``event_id``, ``correlation_id``, ``outcome``. Errors name the parameter."""
    known = {"since", "until", "scale_set", "event_id", "correlation_id", "outcome"}
    try:
        until = parse_time(params["until"]) if params.get("until") else now
    except ValueError as error:
        raise ValueError(f"until: {error}") from None
    try:
        since = until - parse_duration(params.get("since") or "24h")
    except ValueError as error:
        raise ValueError(f"since: {error}") from None
    outcome = (params.get("outcome") or "").strip().lower()
    if outcome and outcome not in OUTCOMES:
        raise ValueError(f"outcome: {outcome!r} is not one of {', '.join(sorted(OUTCOMES))}")
    for key in known - {"since", "until", "outcome"}:
        if len(params.get(key) or "") > 1024:
            raise ValueError(f"{key}: longer than 1024 characters")
    return Filters(
        since=since,
        until=until,
        scale_set=(params.get("scale_set") or "").strip(),
        event_id=(params.get("event_id") or "").strip(),
        correlation_id=(params.get("correlation_id") or "").strip(),
        outcome=outcome,
    )


@dataclass(frozen=True)
class Summary:
    records: int
    by_set_and_outcome: dict[tuple[str, str], int]
    exposure_s: dict[str, float]  # instance -> seconds from its creation to its remediation

    def as_json(self) -> dict[str, Any]:
        windows = sorted(self.exposure_s.values())
        return {
            "records": self.records,
            "by_set_and_outcome": [
                {"scale_set": s, "outcome": o, "count": n}
                for (s, o), n in sorted(self.by_set_and_outcome.items())
            ],
            "exposure_seconds": {
                "instances": len(windows),
                "max": windows[-1] if windows else None,
                "median": windows[len(windows) // 2] if windows else None,
                "by_instance": self.exposure_s,
            },
        }


def _outcome_of(record: AuditRecord) -> str:
    return record.result or record.kind.value


def summarise(records: Iterable[AuditRecord]) -> Summary:
    """Counts by set and outcome, and each remediated instance's exposure window."""
    counts: Counter[tuple[str, str]] = Counter()
    exposure: dict[str, float] = {}
    total = 0
    for record in records:
        total += 1
        counts[(_short(record.scale_set) or "-", _outcome_of(record))] += 1
        ends_exposure = record.action in ("detach-public-ip", "delete-vm", "set-capacity-zero")
        succeeded = record.kind is RecordKind.OUTCOME and record.result == "succeeded"
        if ends_exposure and succeeded and record.exposed_since and record.instance:
            began = datetime.fromisoformat(record.exposed_since)
            exposure[record.instance] = round((record.time - began).total_seconds(), 3)
    return Summary(total, dict(counts), exposure)


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def _shorten_ids(text: str) -> str:
    """Resource ids in free text, shortened to their names (the full ids are in the fields)."""
    return _ARM_ID.sub(r"\1", text)


def render_table(records: Iterable[AuditRecord]) -> str:
    """A readable table for a terminal: resource ids shortened to names."""
    lines = [
        f"{'time (UTC)':<24} {'kind':<9} {'scale set':<20} {'instance':<26} "
        f"{'action':<33} {'result':<10} reason"
    ]
    for record in records:
        lines.append(
            f"{record.time.astimezone(UTC).isoformat()[:23]:<24} {record.kind.value:<9} "
            f"{_short(record.scale_set):<20} {_short(record.instance) or _short(record.resource):<26} "
            f"{record.action:<33} {record.result:<10} "
            f"{_shorten_ids(record.reason or record.error or record.operation)}"
        )
    return "\n".join(lines)


def render_summary(summary: Summary) -> str:
    lines = [f"{summary.records} records"]
    for (scale_set, outcome), count in sorted(summary.by_set_and_outcome.items()):
        lines.append(f"  {scale_set:<30} {outcome:<12} {count}")
    if summary.exposure_s:
        windows = sorted(summary.exposure_s.values())
        lines.append(
            f"exposure (instance creation -> remediation): {len(windows)} instances, "
            f"median {windows[len(windows) // 2]:.1f} s, max {windows[-1]:.1f} s"
        )
    return "\n".join(lines)


def render_json(records: Iterable[AuditRecord]) -> str:
    return json.dumps([record.as_json() for record in records], indent=2)


def render_csv(records: Iterable[AuditRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[spec.name for spec in fields(AuditRecord)])
    writer.writeheader()
    for record in records:
        row = record.as_json()
        row["evidence"] = " | ".join(row["evidence"])
        writer.writerow(row)
    return buffer.getvalue()
