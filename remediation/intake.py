"""Event intake: an event -> validated -> its owning set resolved and gated -> if the set is
restricted, de-duplicated, archived, recorded and handed to the work queue; if not, recorded and
done. Short and bounded, since Event Grid waits 30 s for an answer and delivers again, to any
host, when it does not come (DESIGN.md: delivery).

Level-triggered (DESIGN.md decision 1): an event only says "look at this scale set now". The
look itself (read the set, plan, write) runs on the queue (``worker``), one set per message.
An event about a set that is gone or not restricted costs the reads that resolve its set (a read
ARM served after the event's time answers it too: ``recent_reads``, so a backlog costs a read per
set, not per event) and its two records (received, decision) in the process's next group commit:
it can lead to no write, so it is neither archived nor checked against handled events. An event
raised by this app's own NIC write (its caller is this app's identity) costs its records only: the
look that wrote verified what it wrote, and anything else that changed raises its own event.
De-duplicated on the way otherwise: a redelivered event that was handled to the end is a
duplicate, and an event for a set whose look is pending renews the set's mark (``single_flight``)
instead of queuing another, so a storm of N events for one set costs a handful of reconciles.

Failure contract with the Functions host: a bad event is recorded as rejected and the function
returns (retrying cannot fix it); an unreachable audit store or queue raises, so Event Grid
delivers the event again. On the Event Grid path ARM is read without retries and with a short
timeout: an event whose set cannot be resolved in time (throttled, slow) is handed to the queue
whole, and a worker resolves it with ARM's full retries. Whether the event's subscription is
monitored may need ARM too (the subscriptions under the monitored management groups: ``ancestry``);
when that read fails the event is handled the same way, never dropped as unmonitored.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from remediation.ancestry import GroupMembers
from remediation.archive import EventArchive
from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError
from remediation.audit import AuditLog
from remediation.events import parse_event
from remediation.journal import AuditUnavailable
from remediation.model import QueuedEvent, Recheck, RecordKind, Rejection, Result, Trigger
from remediation.observe import Unresolvable, owning_scale_set
from remediation.recent_reads import RecentReads
from remediation.reconcile import NothingOwed, ReconcileResult, SetReconciler
from remediation.resource_ids import NIC_TYPE, ResourceId
from remediation.resources import NetworkInterface, PublicIp, ScaleSet, VirtualMachine
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

log = logging.getLogger(__name__)
T = TypeVar("T")

OWN_WRITE = (
    "nothing to do: raised by this app's own write; the look that wrote verified what it wrote, "
    "and anything else that changed raises an event of its own"
)


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
        recent: RecentReads | None = None,
        groups: GroupMembers | None = None,
    ) -> None:
        self.settings = settings
        self.arm = arm
        self.audit = audit
        self.work = work
        self.archive = archive
        self.sets = sets
        self.locks = locks
        self.hand_off_when_slow = hand_off_when_slow
        self.recent = recent or RecentReads()
        self.groups = groups or GroupMembers.for_policy(settings.policy)

    def monitors(self, subscription: str) -> bool:
        """Whether the policy monitors the subscription: listed, or under a monitored management
        group as ARM shows it (read with this intake's gateway, cached: ``ancestry``). Raises
        ``ArmError`` when the groups are needed and cannot be read."""
        return self.groups.monitors(
            self.settings.policy, subscription, self.arm.management_group_subscriptions
        )

    def handle(self, event: object, queued: QueuedEvent | None = None) -> Handled:
        """Take one event in: as delivered by Event Grid, or (``queued``) from the work queue, as a
        replay (a fresh look, recorded under the replay's id, not checked against handled
        events) or as an event Event Grid's delivery handed over unresolved.

        The owning set is resolved and gated first: an event about a set that is gone or not
        restricted (or about no set) is recorded (received, and the decision) and costs nothing
        more: it is not archived, not checked against handled events, and no handled marker is
        kept for it (a redelivery is taken in again, as cheaply). Only an event that may lead to
        work (its set restricted, or not known: ARM did not answer) is checked against handled
        events and archived, and marked handled once its handling ends."""
        started = time.monotonic()
        received = datetime.now(UTC)
        journal = self.audit.journal()
        trigger = parse_event(event)
        replay_of = queued.replay_of if queued else ""
        event_id = queued.event_id if queued else trigger.event_id
        dry_run = self.settings.dry_run or bool(queued and queued.dry_run)
        unread: ArmError | None = None  # the monitored management groups could not be read
        try:
            if not isinstance(trigger, Rejection) and not self.monitors(trigger.subscription_id):
                trigger = Rejection(
                    trigger.event_id,
                    f"subscription {trigger.subscription_id} is not monitored",
                    trigger.event_type,
                )
        except ArmError as error:
            unread = error
        if isinstance(trigger, Rejection):
            # Bad input is kept as evidence of what was refused (rare, and off the no-op path).
            archived, not_archived = ("", "") if queued else self._archive(event_id, event, received)
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
        if unread is not None:
            # Not dropped: whether the subscription is monitored is not known, so the event is
            # handled as one whose owning set ARM did not answer for (refused: recorded; slow:
            # handed to the queue; otherwise raised, and Event Grid delivers it again).
            status, reason = self._not_read(event, context, received, queued, unread)
        else:
            status, reason = self._take_in(event, trigger, context, received, queued)
        return Handled(event_id, status, reason, elapsed_s=time.monotonic() - started)

    def _take_in(
        self,
        event: object,
        trigger: Trigger,
        context: Context,
        received: datetime,
        queued: QueuedEvent | None,
    ) -> tuple[str, str]:
        """Resolve and gate the owning set; admit and hand over a restricted one. Returns the
        status and why."""
        journal = context.journal
        # A queued event's own delivery kept the marker; a replay is a fresh look and keeps none.
        marker = "" if context.replay_of else context.event_id
        try:
            if self._own_write(trigger, context):
                self._note_received(context, queued, received)
                context.note(RecordKind.DECISION, reason=OWN_WRITE)
                journal.flush(handled_event=marker if queued else "", outcome="ignored")
                return "ignored", OWN_WRITE
            reads = ReadsForEvent(self.arm, self.recent, trigger.event_time)
            set_id = owning_scale_set(reads, trigger.resource_id)
            # The groups read with this intake's gateway (a delivery's short timeout), if at all.
            verdict = self.sets.verdict(reads.get_scale_set(set_id), self.arm.management_group_subscriptions)
        except Unresolvable as unresolvable:
            self._note_received(context, queued, received)
            context.note(RecordKind.DECISION, reason=f"nothing to do: {unresolvable}")
            journal.flush(handled_event=marker if queued else "", outcome="ignored")
            return "ignored", str(unresolvable)
        except ArmError as error:  # ARM did not answer in time, or refused: work may be owed
            return self._not_read(event, context, received, queued, error)
        except BaseException as error:
            if queued is None:
                blob, not_archived = self._archive(context.event_id, event, received)
                context.note(RecordKind.RECEIVED, time=received, archive=blob, error=not_archived)
            else:
                self._note_received(context, queued, received)
            record_failure(context, error, "the event is delivered again")
            raise
        if isinstance(verdict, NothingOwed):
            self._note_received(context, queued, received)
            result = self.sets.record_nothing_owed(set_id, verdict, context)
            journal.flush(handled_event=marker if queued else "", outcome="ignored")
            return "ignored", result.reason
        if self._admit(event, context, received, queued) is None:
            return "duplicate", ""
        replay = bool(queued and queued.replay_of)
        try:
            status, reason = hand_over(
                self.locks,
                self.work,
                set_id,
                context,
                f"{'replay' if replay else 'event'} {context.event_id}",
                join=not replay,  # a replay asks for a fresh look
                dry_run=bool(queued and queued.dry_run),
            )
        except BaseException as error:
            record_failure(context, error, "the event is delivered again")
            raise
        journal.flush(handled_event=marker, outcome=status)
        return status, reason

    def _own_write(self, trigger: Trigger, context: Context) -> bool:
        """An event of this app's own NIC write (a detach): its caller is this app's identity. Only
        NIC events: a scale-set write made with this identity (by whoever else can act as it) is
        still looked at, and replays always are."""
        if context.replay_of or not trigger.resource_id.is_type(NIC_TYPE):
            return False
        return trigger.caller.is_principal(self.arm.identity())

    def _not_read(
        self, event: object, context: Context, received: datetime, queued: QueuedEvent | None, error: ArmError
    ) -> tuple[str, str]:
        """ARM did not answer what the event's handling needs (``_unresolved``), and the outcome kept."""
        status, reason = self._unresolved(event, context, received, queued, error)
        if status != "duplicate":
            marker = "" if context.replay_of else context.event_id
            context.journal.flush(handled_event=marker, outcome=status)
        return status, reason

    def _unresolved(
        self, event: object, context: Context, received: datetime, queued: QueuedEvent | None, error: ArmError
    ) -> tuple[str, str]:
        """The owning set could not be read: admitted like an event about a restricted set (a
        duplicate ends there); a refusal that stands is recorded, a slow or throttled read hands
        the event to the work queue (``hand_off_when_slow``), anything else raises (the event is
        delivered again). Returns the status and why."""
        archived = self._admit(event, context, received, queued)
        if archived is None:
            return "duplicate", ""
        if error.refused:
            record_refusal(context, error)
            return "refused", str(error)
        if not self.hand_off_when_slow:
            record_failure(context, error, "the event is delivered again")
            raise error
        try:
            return self._defer(event, archived, context, error)
        except BaseException as failure:
            record_failure(context, failure, "the event is delivered again")
            raise

    def _admit(
        self, event: object, context: Context, received: datetime, queued: QueuedEvent | None
    ) -> str | None:
        """An event that may lead to work: a live one is checked against handled events (None: a
        duplicate, recorded and stored) and archived; then it is recorded as received. Returns
        the archive blob's name ("" when not archived)."""
        if queued is not None:
            self._note_received(context, queued, received)
            return ""
        if self.audit.was_handled(context.event_id):
            context.note(RecordKind.DUPLICATE, reason="event was handled before")
            context.journal.flush()
            return None
        archived, not_archived = self._archive(context.event_id, event, received)
        context.note(RecordKind.RECEIVED, time=received, archive=archived, error=not_archived)
        return archived

    def _archive(self, event_id: str, event: object, received: datetime) -> tuple[str, str]:
        """Keep the raw event for replay: (its blob name, or "" and why not)."""
        try:
            return self.archive.store(event_id, event, received), ""
        except AuditUnavailable as error:  # replay loses this event; remediation must not
            return "", f"not archived: {error}"

    @staticmethod
    def _note_received(context: Context, queued: QueuedEvent | None, received: datetime) -> None:
        """The received record: a live event's (not archived), or a replayed one's; an event
        handed over by its Event Grid delivery was recorded received there."""
        if queued is None:
            context.note(RecordKind.RECEIVED, time=received)
        elif queued.replay_of:
            context.note(RecordKind.RECEIVED, time=received, reason=queued.note)

    def _defer(self, event: object, archived: str, context: Context, error: ArmError) -> tuple[str, str]:
        reason = (
            f"ARM did not answer in Event Grid's time ({error.code or error.status}): the event is "
            "handed to the work queue, whose worker takes it in with ARM's full retries"
        )
        self.work.schedule_event(QueuedEvent(context.event_id, event, note=reason), archived)
        context.note(RecordKind.DECISION, reason=reason)
        return "deferred", reason


class ReadsForEvent:
    """ARM's reads for one event: a recent read that answers the event (``recent_reads``), else
    a read of its own, kept for the events after it."""

    def __init__(self, arm: ArmGateway, recent: RecentReads, event_time: datetime | None) -> None:
        self.arm = arm
        self.recent = recent
        self.event_time = event_time

    def _read(self, kind: str, resource_id: ResourceId, read: Callable[[], T | None]) -> T | None:
        return self.recent.read(kind, resource_id.value, self.event_time, lambda: self.arm.served(read))

    def get_public_ip(self, ip_id: ResourceId) -> PublicIp | None:
        return self._read("publicIp", ip_id, lambda: self.arm.get_public_ip(ip_id))

    def get_nic(self, nic_id: ResourceId) -> NetworkInterface | None:
        return self._read("nic", nic_id, lambda: self.arm.get_nic(nic_id))

    def get_vm(self, vm_id: ResourceId) -> VirtualMachine | None:
        return self._read("vm", vm_id, lambda: self.arm.get_vm(vm_id))

    def get_scale_set(self, set_id: ResourceId) -> ScaleSet | None:
        return self._read("scaleSet", set_id, lambda: self.arm.get_scale_set(set_id))


def hand_over(
    locks: SetLocks,
    work: RecheckQueue,
    set_id: ResourceId,
    context: Context,
    why: str,
    *,
    join: bool = True,
    dry_run: bool = False,
    look: Recheck | None = None,
    delay_s: float = 0.0,
) -> tuple[str, str]:
    """Ask for a look at a restricted set: join the pending look if the set is marked (``join``),
    otherwise queue one (``look``, visible after ``delay_s``: a watch's next look) and mark the
    set. Queued before marked: a mark always has a look behind it,
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
    look = look or Recheck(set_id, 0, reason=why, origin=context.event_id, dry_run=dry_run)
    work.schedule(look, delay_s)  # raises AuditUnavailable: the caller is asked again
    if not dry_run:
        try:
            locks.mark(set_id)
        except AzureError as error:
            log.warning("the set %s could not be marked: %s", set_id, error)
    reason = f"queued: a look at the set ({why})" + (f", in {delay_s:g} s" if delay_s else "")
    context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
    return "queued", reason
