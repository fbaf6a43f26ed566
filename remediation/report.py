"""The compliance report: per restricted set, every public IP that appeared on an instance, how
long it was exposed, what was done about it and by which event, what failed, what was exempt. Pure.

Built from the audit log alone (the records `remediation audit` shows), so it says what the
remediator saw and did, not what ARM holds now:
- an exposure is one public IP on one instance, first named by a decision record;
- it began when the instance was created (``exposed_since``, from ARM's ``timeCreated``), or, if
  that is unknown, when the remediator first saw it (the report says which);
- it ended at the succeeded outcome of the write that took the IP off the instance (a detach, an
  eviction, capacity 0, an upgrade to a model without it), else at the verification record;
- an exposure still open at the report's end is shown as open, with why (left alone, audit mode,
  a failed write, a dry run).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediation.model import ActionKind, RecordKind, Result
from remediation.records import AuditRecord
from remediation.review import parse_time

# The writes after which an instance no longer carries the public IP (a deletion of an IP that is
# already off its NIC ends nothing).
ENDS_EXPOSURE = frozenset(
    kind.value
    for kind in (
        ActionKind.DETACH_PUBLIC_IP,
        ActionKind.DELETE_VM,
        ActionKind.SET_CAPACITY_ZERO,
        ActionKind.UPGRADE_INSTANCES,
    )
)


@dataclass
class Exposure:
    """One public IP on one instance of a set, as the audit log tells it."""

    scale_set: str
    instance: str
    public_ip: str
    origin: str = ""
    mode: str = ""
    began: datetime | None = None
    began_from: str = "seen"  # "created" (the instance's timeCreated) or "seen" (first record)
    ended: datetime | None = None
    action: str = ""  # what ended it (or "")
    event_id: str = ""  # the handling (event, re-check, sweep, replay) that ended it
    why_open: str = ""  # the latest reason it was left, while it is open
    failures: list[str] = field(default_factory=list)
    dry_run: bool = False

    def exposed_for(self, until: datetime) -> timedelta | None:
        if self.began is None:
            return None
        return max((self.ended or until) - self.began, timedelta(0))

    @property
    def status(self) -> str:
        if self.ended is not None:
            return "ended"
        return "open (dry run)" if self.dry_run else "open"


@dataclass(frozen=True)
class SetReport:
    scale_set: str
    mode: str
    exposures: tuple[Exposure, ...]
    failures: tuple[str, ...]  # the set's failed records, each in a line


def _key(record: AuditRecord) -> tuple[str, str, str]:
    return (record.scale_set.lower(), record.instance.lower(), record.public_ip.lower())


def _began(record: AuditRecord) -> datetime | None:
    try:
        return parse_time(record.exposed_since) if record.exposed_since else None
    except ValueError:
        return None


Exposures = dict[tuple[str, str, str], list[Exposure]]  # per (set, instance, IP): oldest first


def build(records: Iterable[AuditRecord]) -> list[SetReport]:
    """The report of the records given (one window of the log), set by set."""
    ordered = sorted(records, key=lambda r: r.time)
    intents = {r.record_id: r for r in ordered if r.kind is RecordKind.INTENT}
    exposures: Exposures = {}
    modes: dict[str, str] = {}
    failures: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for record in ordered:
        if not record.scale_set:
            continue
        set_key = record.scale_set.lower()
        names.setdefault(set_key, record.scale_set)
        modes[set_key] = record.mode or modes.get(set_key, "")
        if record.failed:
            what = " ".join(
                part for part in (record.kind.value, record.action, record.error or record.reason) if part
            )
            failures.setdefault(set_key, []).append(f"{record.time.isoformat()} {what}")
        if record.kind is RecordKind.DECISION and record.instance and record.public_ip:
            _seen(exposures, record)
        elif record.kind is RecordKind.OUTCOME and record.intent_id in intents:
            intent = intents[record.intent_id]
            for exposure in exposures.get(_key(intent), [])[-1:]:
                _closed(exposure, intent, record)
        elif record.kind is RecordKind.VERIFIED:
            for exposure in exposures.get(_key(record), [])[-1:]:
                if exposure.ended is None:
                    exposure.ended, exposure.event_id = record.time, exposure.event_id or record.event_id
    by_set: dict[str, list[Exposure]] = {}
    for listed in exposures.values():
        by_set.setdefault(listed[0].scale_set.lower(), []).extend(listed)
    return [
        SetReport(
            names[key],
            modes.get(key, ""),
            tuple(sorted(by_set.get(key, []), key=lambda e: (e.began is None, e.began or e.ended))),
            tuple(failures.get(key, [])),
        )
        for key in sorted(names)
        if by_set.get(key) or failures.get(key)
    ]


def _seen(exposures: Exposures, decision: AuditRecord) -> None:
    """A decision naming a public IP on an instance: the exposure goes on, or a new one begins (the
    first, or the same IP back after the last one ended)."""
    listed = exposures.setdefault(_key(decision), [])
    if not listed or (listed[-1].ended is not None and decision.time > listed[-1].ended):
        created = _began(decision) if not listed else None
        listed.append(
            Exposure(
                decision.scale_set,
                decision.instance,
                decision.public_ip,
                began=created or decision.time,
                began_from="created" if created else "seen",
            )
        )
    exposure = listed[-1]
    exposure.origin, exposure.mode = decision.origin or exposure.origin, decision.mode or exposure.mode
    exposure.dry_run = decision.dry_run
    if decision.action in ("", "none") or decision.dry_run:
        exposure.why_open = decision.reason


def _closed(exposure: Exposure, intent: AuditRecord, outcome: AuditRecord) -> None:
    if exposure.ended is not None:
        return
    if outcome.result == Result.SUCCEEDED.value and intent.action in ENDS_EXPOSURE:
        exposure.ended, exposure.action, exposure.event_id = outcome.time, intent.action, intent.event_id
    elif outcome.result in (Result.FAILED.value, Result.UNKNOWN.value):
        what = outcome.error or outcome.reason
        exposure.failures.append(f"{intent.action} {outcome.result} at {outcome.time.isoformat()}: {what}")


def _row(report: SetReport, exposure: Exposure, until: datetime) -> dict[str, Any]:
    exposed = exposure.exposed_for(until)
    return {
        "scale_set": report.scale_set,
        "mode": exposure.mode or report.mode,
        "instance": exposure.instance,
        "public_ip": exposure.public_ip,
        "origin": exposure.origin,
        "began": exposure.began.isoformat() if exposure.began else "",
        "began_from": exposure.began_from,
        "ended": exposure.ended.isoformat() if exposure.ended else "",
        "exposed_seconds": round(exposed.total_seconds(), 3) if exposed is not None else None,
        "status": exposure.status,
        "action": exposure.action,
        "event_id": exposure.event_id,
        "left_alone": exposure.why_open if exposure.ended is None else "",
        "failures": list(exposure.failures),
    }


def rows(reports: Iterable[SetReport], until: datetime) -> list[dict[str, Any]]:
    return [_row(report, exposure, until) for report in reports for exposure in report.exposures]


def document(reports: list[SetReport], since: datetime, until: datetime) -> dict[str, Any]:
    """The report as one JSON document (what ``-o json`` prints and ``--query`` reads)."""
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "sets": [
            {
                "scale_set": report.scale_set,
                "mode": report.mode,
                "exposures": [_row(report, e, until) for e in report.exposures],
                "failures": list(report.failures),
            }
            for report in reports
        ],
    }


def render_csv(reports: list[SetReport], until: datetime) -> str:
    out = io.StringIO()
    listed = rows(reports, until)
    names = list(_row(SetReport("", "", (), ()), Exposure("", "", ""), until))
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in listed:
        writer.writerow({**row, "failures": "; ".join(row["failures"])})
    return out.getvalue()
