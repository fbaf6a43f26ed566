"""Event intake: an event -> validated, archived, recorded -> its owning set -> handed to the work
queue if the set is restricted. Short and bounded, since Event Grid waits 30 s for an answer and
delivers again, to any host, when it does not come (DESIGN.md: delivery).

Level-triggered (DESIGN.md decision 1): an event only says "look at this scale set now". The
look itself (read the set, plan, write) runs on the queue (``worker``), one set per message.
De-duplicated on the way: a redelivered event that was handled to the end is a duplicate, and an
event for a set whose look is pending renews the set's mark (``single_flight``) instead of
queuing another, so a storm of N events for one set costs a handful of reconciles, not N.

Failure contract with the Functions host: a bad event is recorded as rejected and the function
returns (retrying cannot fix it); an unreachable audit store or queue raises, so Event Grid
delivers the event again. On the Event Grid path ARM is read without retries and with a short
timeout: an event whose set cannot be resolved in time (throttled, slow) is handed to the queue
whole, and a worker resolves it with ARM's full retries.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError
from remediation.audit import AuditLog, EventArchive, RecheckQueue
from remediation.events import parse_event
from remediation.journal import AuditUnavailable
from remediation.model import QueuedEvent, Recheck, RecordKind, Rejection, ResourceId, Result
from remediation.observe import Unresolvable, owning_scale_set
from remediation.reconcile import ReconcileResult, SetReconciler
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.write_ahead import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    """What a function did with one event or message."""

    event_id: str
    # intake: rejected | duplicate | ignored | refused | queued | joined | deferred;
    # worker: also served | busy | reconciled | continued
    status: str
    reason: str = ""
    reconcile: ReconcileResult | None = None
    elapsed_s: float = field(default=0.0, compare=False)


def record_refusal(context: Context, error: ArmError) -> None:
    """A refusal that stands (403, 400, 404): asking again cannot change it; the set's next
    reconcile (the sweep) tries again, once the role or the resource may have changed."""
    reason = "ARM refused a read; not retried: the set's next reconcile (the sweep) tries again"
    context.note(RecordKind.ERROR, result=Result.FAILED.value, error=str(error), reason=reason)


def record_failure(context: Context, error: BaseException, retry: str) -> None:
    """Keep what is known when handling fails: the error, and everything the journal holds
    (after an audit outage, what it kept: it is stored if storage is back)."""
    if not isinstance(error, AuditUnavailable):
        context.note(
            RecordKind.ERROR,
            result=Result.FAILED.value,
            error=f"{type(error).__name__}: {error}",
            reason=f"handling failed; {retry}",
        )
    with contextlib.suppress(AuditUnavailable):
        context.journal.flush()


class Intake:
    """Takes events in. ``arm`` reads with the budget of the path it serves (see the module)."""

    def __init__(
        self,
        settings: Settings,
        arm: ArmGateway,
        audit: AuditLog,
        *,
        work: RecheckQueue,
        archive: EventArchive,
        sets: SetReconciler,
        locks: SetLocks,
        hand_off_when_slow: bool,
    ) -> None:
        self.settings = settings
        self.arm = arm
        self.audit = audit
        self.work = work
        self.archive = archive
        self.sets = sets
        self.locks = locks
        self.hand_off_when_slow = hand_off_when_slow

    def handle(self, event: object, queued: QueuedEvent | None = None) -> Handled:
        """Take one event in: as delivered by Event Grid, or (``queued``) from the work queue, as a
        replay (a fresh look, recorded under the replay's id, not checked against handled
        events) or as an event Event Grid's delivery handed over unresolved."""
        started = time.monotonic()
        journal = self.audit.journal()
        trigger = parse_event(event)
        replay_of = queued.replay_of if queued else ""
        event_id = queued.event_id if queued else trigger.event_id
        dry_run = self.settings.dry_run or bool(queued and queued.dry_run)
        archived, not_archived = "", ""
        if queued is None:
            try:
                archived = self.archive.store(event_id, event, datetime.now(UTC))
            except AuditUnavailable as error:  # replay loses this event; remediation must not
                not_archived = f"not archived: {error}"
        if not isinstance(trigger, Rejection) and not self.settings.policy.monitors(trigger.subscription_id):
            trigger = Rejection(
                trigger.event_id,
                f"subscription {trigger.subscription_id} is not monitored",
                trigger.event_type,
            )
        if isinstance(trigger, Rejection):
            context = Context(
                journal,
                dry_run=dry_run,
                event_id=event_id,
                event_type=trigger.event_type,
                replay_of=replay_of,
            )
            context.note(RecordKind.REJECTED, reason=trigger.reason, archive=archived, error=not_archived)
            journal.flush()
            log.warning("event %s rejected: %s", trigger.event_id, trigger.reason)
            return Handled(event_id, "rejected", trigger.reason, elapsed_s=time.monotonic() - started)
        context = Context(
            journal,
            dry_run=dry_run,
            event_id=event_id,
            correlation_id=trigger.correlation_id,
            event_type=trigger.event_type,
            operation=trigger.operation,
            caller=str(trigger.caller),
            resource=trigger.resource_id.value,
            replay_of=replay_of,
        )
        if queued is None and self.audit.was_handled(event_id):
            context.note(
                RecordKind.DUPLICATE, reason="event was handled before", archive=archived, error=not_archived
            )
            journal.flush()
            return Handled(event_id, "duplicate", elapsed_s=time.monotonic() - started)
        if queued is None or replay_of:
            reason = queued.note if queued else ""
            context.note(RecordKind.RECEIVED, archive=archived, reason=reason, error=not_archived)
        handled_marker = "" if replay_of else event_id
        try:
            status, reason = self._look_for(event, trigger.resource_id, context, archived, queued)
        except ArmError as error:
            if not error.refused:
                record_failure(context, error, "the event is delivered again")
                raise
            record_refusal(context, error)
            journal.flush(handled_event=handled_marker, outcome="refused")
            return Handled(event_id, "refused", str(error), elapsed_s=time.monotonic() - started)
        except BaseException as error:
            record_failure(context, error, "the event is delivered again")
            raise
        journal.flush(handled_event=handled_marker, outcome=status)
        return Handled(event_id, status, reason, elapsed_s=time.monotonic() - started)

    def _look_for(
        self,
        event: object,
        resource_id: ResourceId,
        context: Context,
        archived: str,
        queued: QueuedEvent | None,
    ) -> tuple[str, str]:
        """Resolve the owning set, gate it, and hand a restricted one to the work queue."""
        try:
            set_id = owning_scale_set(self.arm, resource_id)
            gated = self.sets.gate(set_id, self.arm.get_scale_set(set_id), context)
        except Unresolvable as unresolvable:
            context.note(RecordKind.DECISION, reason=f"nothing to do: {unresolvable}")
            return "ignored", str(unresolvable)
        except ArmError as error:
            if error.refused or not self.hand_off_when_slow:
                raise
            return self._defer(event, archived, context, error)
        if isinstance(gated, ReconcileResult):
            return "ignored", gated.reason
        replay = bool(queued and queued.replay_of)
        return hand_over(
            self.locks,
            self.work,
            set_id,
            context,
            f"{'replay' if replay else 'event'} {context.event_id}",
            join=not replay,  # a replay asks for a fresh look
            dry_run=bool(queued and queued.dry_run),
        )

    def _defer(self, event: object, archived: str, context: Context, error: ArmError) -> tuple[str, str]:
        reason = (
            f"the owning set was not resolved in Event Grid's time ({error.code or error.status}): "
            "handed to the work queue, whose worker resolves it with ARM's full retries"
        )
        self.work.schedule_event(QueuedEvent(context.event_id, event, note=reason), archived)
        context.note(RecordKind.DECISION, reason=reason)
        return "deferred", reason


def hand_over(
    locks: SetLocks,
    work: RecheckQueue,
    set_id: ResourceId,
    context: Context,
    why: str,
    *,
    join: bool = True,
    dry_run: bool = False,
) -> tuple[str, str]:
    """Ask for a look at a restricted set: join the pending look if the set is marked (``join``),
    otherwise queue one and mark the set. Queued before marked: a mark always has a look behind it,
    so a failure here costs a look too many, never a lost one. Blob storage unreachable: queued,
    unmarked. ``join=False`` (the sweep, replays): a look is queued whatever the mark says, so a
    mark left behind (a look that ended before it landed, one poisoned) is settled by it.
    ``dry_run``: a dry-run look in an app that writes, which takes no lease and touches no mark."""
    from azure.core.exceptions import AzureError

    try:
        if join and not dry_run and locks.join(set_id):
            reason = "joined: a look at the set is pending; its mark was renewed, so the look sees this"
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
            return "joined", reason
    except AzureError as error:
        log.warning("the mark of %s could not be read: %s; queuing a look", set_id, error)
    look = Recheck(set_id, 0, reason=why, origin=context.event_id, dry_run=dry_run)
    work.schedule(look, 0)  # raises AuditUnavailable: the caller is asked again
    if not dry_run:
        try:
            locks.mark(set_id)
        except AzureError as error:
            log.warning("the set %s could not be marked: %s", set_id, error)
    reason = f"queued: a look at the set ({why})"
    context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
    return "queued", reason
