"""`remediation doctor`'s reads of the app's own storage: the audit table, the work and poison
queues, the ledger, archive and dead-letter containers, and the last timer sweep in the audit log,
each judged by doctor.py (doctor_probe.py runs them in order, each guarded)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from remediation.doctor import (
    Check,
    Status,
    SweepSeen,
    alert_window,
    longest_gap,
    sweep_check,
    waiting_check,
)
from remediation.sweep import SCHEDULED_SWEEP
from remediation.worker import POISON_PREFIX

if TYPE_CHECKING:
    from remediation.engine import Remediator
    from remediation.settings import Settings

# How far back doctor looks for the last sweep (an hour of the audit log at a time, newest first).
SWEEP_LOOKBACK_MIN = timedelta(hours=2)
SWEEP_LOOKBACK_CAP = timedelta(days=7)


def storage_check(settings: Settings, remediator: Remediator) -> Check:
    missing = [] if remediator.audit.reachable() else [f"table {settings.audit_table}"]
    work, _ = remediator.rechecks.backlog()
    containers = [settings.ledger_container, settings.dead_letter_container]
    missing += [f"container {name}" for name in remediator.archive.missing_containers(containers)]
    queues = f"work queue: {'not yet created' if work is None else f'{work} waiting'}"
    if missing:
        return Check(
            "storage",
            Status.FAIL,
            f"storage reached ({queues}); missing: {', '.join(missing)}",
            "check the names in the app settings; azd provision creates them (the ledger under "
            "its immutability policy)",
        )
    return Check(
        "storage",
        Status.OK,
        f"table {settings.audit_table}, {queues}, ledger and dead-letter containers reached",
    )


def last_sweep_check(settings: Settings, remediator: Remediator, now: datetime) -> Check:
    try:
        # Further back than the judgement, so a stale sweep is named by its age.
        look_back = min(
            max(2 * alert_window(longest_gap(settings.sweep_schedule)), SWEEP_LOOKBACK_MIN),
            SWEEP_LOOKBACK_CAP,
        )
    except ValueError:
        look_back = SWEEP_LOOKBACK_MIN  # sweep_check names the schedule
    return sweep_check(last_sweep(remediator, now, look_back), now, settings.sweep_schedule, look_back)


def last_sweep(remediator: Remediator, now: datetime, look_back: timedelta) -> SweepSeen | None:
    """The newest timer sweep that ended (recorded its decision or its failure) within
    ``look_back``, read an hour of the audit log at a time from now (a dry-run deployment's
    too). Sweeps run by hand (`remediation sweep`) do not count: the no-sweep alert counts the
    timer's."""
    from remediation.model import RecordKind
    from remediation.review import Filters

    end = now
    while end > now - look_back:
        start = max(end - timedelta(hours=1), now - look_back)
        records = remediator.audit.search(Filters(start, end))
        sweeps = [r for r in records if r.event_type == "sweep" and r.operation == SCHEDULED_SWEEP]
        errors = [r for r in sweeps if r.kind is RecordKind.ERROR]
        # A sweep that raised recorded "handling failed" (record_failure); its other errors (a
        # group it could not read, sets it could not judge) leave it ended, partly.
        failed = {r.event_id: r.error or r.reason for r in errors if r.reason.startswith("handling failed")}
        partial = {r.event_id: r.reason for r in errors if not r.reason.startswith("handling failed")}
        ended = [r for r in sweeps if r.kind is RecordKind.DECISION or r.event_id in failed]
        if ended:
            newest = max(ended, key=lambda r: r.time)
            return SweepSeen(
                newest.time,
                newest.event_id,
                failure=failed.get(newest.event_id, ""),
                partial=partial.get(newest.event_id, ""),
            )
        end = start
    return None


def poison_check(settings: Settings, remediator: Remediator) -> Check:
    _, in_queue = remediator.rechecks.backlog()
    kept = remediator.archive.waiting(POISON_PREFIX) or 0
    return waiting_check(
        "poison",
        kept + (in_queue or 0),
        f"the poison queue ({in_queue or 0}) and the archive's kept poison messages ({kept})",
        # the kept poison messages live until the lifecycle rule removes them, a day or two past it
        f"remediation replay --poison {settings.archive_retention_days + 2}d",
    )


def dead_letter_check(settings: Settings, remediator: Remediator) -> Check:
    container = settings.dead_letter_container
    waiting = remediator.archive.waiting(container=container)
    if waiting is None:
        return Check(
            "dead letters",
            Status.FAIL,
            f"container {container} does not exist",
            "azd provision creates it (Event Grid dead-letters there)",
        )
    return waiting_check(
        "dead letters", waiting, f"container {container}", f"remediation replay --dead-letter {container}"
    )
