"""One ARM write, write-ahead: its intent stored first, then the write, then its outcome.

A ``Context`` is one handling of a trigger (an event, a re-check, a sweep): its facts, carried into
every record, and the journal its records go to. ``announced_write`` is the only way the product
writes to ARM (a plan's writes, repairs, leftover deletions): if the intent cannot be stored, ARM
is not touched; the outcome says how the write ended (``arm_errors``: succeeded, failed, conflict
or unknown), and an outcome that is not a success is stored at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from remediation.arm_errors import ArmError, OutcomeUnknown, PreconditionFailed
from remediation.arm_rest import WriteResult
from remediation.journal import AuditUnavailable, Journal
from remediation.model import Finding, RecordKind, Result
from remediation.records import AuditRecord
from remediation.resource_ids import ResourceId


@dataclass(frozen=True)
class Recovered:
    """What reading a write's target by id says, when the write's own answers were lost."""

    result: Result | None  # None: ARM's state does not say yet
    seen: str  # what ARM showed, cited in the outcome record
    write: WriteResult | None = None  # the state read, standing in for the lost answer


# Reads a write's target by id once its answers were lost; given the write's intent.
Recover = Callable[[AuditRecord], Recovered]


@dataclass(frozen=True)
class Context:
    """One handling of a trigger (an event, a re-check, a sweep): its facts, carried into every
    record, and the journal its records go to."""

    journal: Journal = field(repr=False, compare=False)
    event_id: str = ""
    correlation_id: str = ""
    event_type: str = ""
    operation: str = ""
    caller: str = ""
    resource: str = ""
    replay_of: str = ""
    dry_run: bool = False

    def record(self, kind: RecordKind, finding: Finding | None = None, **fields: Any) -> AuditRecord:
        values: dict[str, Any] = {
            "event_id": self.event_id,
            "correlation_id": self.correlation_id,
            "event_type": self.event_type,
            "operation": self.operation,
            "caller": self.caller,
            "resource": self.resource,
            "replay_of": self.replay_of,
            "dry_run": self.dry_run,
        }
        if finding is not None:
            created = finding.instance.time_created
            values.update(
                scale_set=finding.scale_set.id.value,
                instance=finding.instance.id.value,
                nic=finding.nic.id.value,
                public_ip=",".join(ip.value for ip in finding.public_ip_ids),
                origin=finding.origin.value,
                evidence=finding.evidence,
                exposed_since=created.isoformat() if created else "",
            )
        values.update(fields)
        return AuditRecord(kind=kind, **values)

    def note(self, kind: RecordKind, finding: Finding | None = None, **fields: Any) -> AuditRecord:
        """Record, buffered: stored with the next write-ahead or when the handling ends."""
        return self.journal.write(self.record(kind, finding, **fields))

    def outcome(self, intent: AuditRecord, result: Result, **fields: Any) -> AuditRecord:
        """The outcome record closing ``intent``: this handling's facts, the write's own fields."""
        written = {name: getattr(intent, name) for name in WRITE_FIELDS}
        return self.record(
            RecordKind.OUTCOME, **{**written, **fields}, result=result.value, intent_id=intent.record_id
        )


# The fields of an intent that say which write it is: an outcome closing it carries them too.
WRITE_FIELDS = (
    "target",
    "scale_set",
    "instance",
    "nic",
    "public_ip",
    "mode",
    "action",
    "origin",
    "evidence",
    "exposed_since",
    "state_before",
)

# What each way of ending says about the state the write was to change.
_STATE_AFTER = {
    Result.CONFLICT: "changed since it was read (412): re-read and re-planned",
    Result.UNKNOWN: "unknown: ARM's answers do not say whether it applied; the set's next reconcile reads it",
}


def announced_write(
    context: Context,
    perform: Callable[[], WriteResult],
    finding: Finding | None,
    *,
    action: str,
    target: ResourceId,
    reason: str,
    before: str,
    after: str,
    recover: Recover | None = None,
    **fields: Any,
) -> WriteResult:
    """One ARM write, write-ahead: its intent stored first, then the write, then its outcome.

    If the intent cannot be stored, ARM is not touched: the outcome ``skipped`` is buffered beside
    the intent (the handling's last flush stores both if storage is back) and AuditUnavailable
    propagates. A failed, conflicting or unknown write's outcome is stored at once: the handling
    ends there, and reviewers look for it first.

    When the write's answers are lost (``OutcomeUnknown``: a dropped connection, a throttled or
    lost poll) and ``recover`` is given, the target is read by id at once: if ARM shows the write
    applied, that is its outcome (citing what was seen) and the handling goes on; otherwise the
    outcome is ``unknown`` as before, and the set's next reconcile judges it.
    """
    intent = context.record(
        RecordKind.INTENT,
        finding,
        action=action,
        target=target.value,
        reason=reason,
        state_before=before,
        **fields,
    )
    try:
        context.journal.write_ahead(intent)
    except AuditUnavailable as error:
        context.journal.write(
            context.outcome(
                intent,
                Result.SKIPPED,
                reason="not written: the audit store failed before this intent was stored",
                error=str(error),
                state_after=before,
            )
        )
        raise
    started = time.monotonic()
    try:
        result = perform()
    except OutcomeUnknown as error:
        recovered = _recovered(recover, intent)
        if recovered is None or recovered.result is not Result.SUCCEEDED or recovered.write is None:
            _store_failure(context, intent, error, started)
            raise
        context.journal.write(
            context.outcome(
                intent,
                Result.SUCCEEDED,
                reason=f"its answer was lost ({error.code}); read by id, ARM shows {recovered.seen}",
                state_after=after,
                arm_request_id=error.request_id,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        )
        return recovered.write
    except ArmError as error:
        _store_failure(context, intent, error, started)
        raise
    context.journal.write(
        context.outcome(
            intent,
            Result.SUCCEEDED,
            state_after=after,
            arm_request_id=result.request_id,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    return result


def _recovered(recover: Recover | None, intent: AuditRecord) -> Recovered | None:
    if recover is None:
        return None
    try:
        return recover(intent)
    except ArmError:  # the read failed too: the outcome stays unknown
        return None


def _store_failure(context: Context, intent: AuditRecord, error: ArmError, started: float) -> None:
    """A write that did not succeed: its outcome, stored at once (conflict, unknown or failed)."""
    ended = (
        Result.CONFLICT
        if isinstance(error, PreconditionFailed)
        else Result.UNKNOWN
        if isinstance(error, OutcomeUnknown)
        else Result.FAILED
    )
    context.journal.write_ahead(
        context.outcome(
            intent,
            ended,
            error=str(error),
            state_after=_STATE_AFTER.get(ended, intent.state_before),
            arm_request_id=error.request_id,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
