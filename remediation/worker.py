"""The work queue's trigger: one message, one set (or one event to take in), under the set's lease.

A look at a set reconciles it through ``one_at_a_time`` (single flight across hosts); a look that
runs out of its time budget leaves the rest to a follow-up message, so no invocation runs past
the host's limits. A set still growing (its write's event came before its instances) is watched:
looked at again every ``WATCH_INTERVAL_SECONDS`` while it grows, each look handed over as an
event's is (joining a look already pending), so each new instance's public IP is stripped within
seconds of its NIC existing; the delayed re-checks remain the fallback. An event queued by a
replay or by an Event Grid delivery that could not resolve its set in time goes through intake
here, with ARM's full retries.

Failure contract with the Functions host: a malformed message is recorded as rejected and removed;
a refusal that stands is recorded and removed (retrying it would only fill the poison queue); an
unreachable audit store or a failed ARM call raises, so the host makes the message visible again
after host.json's visibilityTimeout, and after maxDequeueCount tries moves it to the poison
queue, whose trigger records it (``poisoned``) for `remediation replay --poison`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from remediation.archive import EventArchive
from remediation.arm_errors import ArmError
from remediation.audit import AuditLog
from remediation.events import parse_work
from remediation.intake import Handled, Intake, hand_over, record_failure, record_refusal
from remediation.model import QueuedEvent, Recheck, RecordKind, Rejection, Result
from remediation.one_at_a_time import BUSY, OneAtATime
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

log = logging.getLogger(__name__)

RETRIED = "the queue delivers the message again"
POISON_PREFIX = "poison/"


class Worker:
    def __init__(
        self,
        settings: Settings,
        audit: AuditLog,
        *,
        work: RecheckQueue,
        archive: EventArchive,
        locks: SetLocks,
        flight: OneAtATime,
        intake: Intake,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.work = work
        self.archive = archive
        self.locks = locks
        self.flight = flight
        self.intake = intake

    def take(self, body: object) -> Handled | QueuedEvent | Recheck:
        """Handle one message; a dry-run message for a remediator that is not dry-run comes back
        parsed, for the caller to hand to one that is."""
        started = time.monotonic()
        work = parse_work(body)
        if isinstance(work, Rejection):
            journal = self.audit.journal()
            Context(journal, event_id=work.event_id, event_type="work").note(
                RecordKind.REJECTED, reason=work.reason
            )
            journal.flush()
            return Handled(work.event_id, "rejected", work.reason, elapsed_s=time.monotonic() - started)
        if work.dry_run and not self.settings.dry_run:
            return work
        if isinstance(work, QueuedEvent):
            event = self.archive.load(work.archive) if work.archive else work.event
            return self.intake.handle(event, work)
        return self.look(work)

    def look(self, look: Recheck) -> Handled:
        """Reconcile the set the message names, within the time budget."""
        started = time.monotonic()
        journal = self.audit.journal()
        set_id = look.scale_set
        context = Context(
            journal,
            dry_run=self.settings.dry_run,
            event_id=look.origin or f"look-{uuid.uuid4()}",
            event_type="recheck" if look.attempt or look.if_marked else "look",
            operation=look.reason,
            resource=set_id.value,
        )
        try:
            monitored = self.intake.monitors(set_id.subscription)
        except ArmError as error:  # the monitored management groups could not be read
            return self._failed_read(context, error, started)
        if not monitored:
            # A message queued before the policy changed, or put on the queue by anyone else.
            reason = f"look at {set_id.value} refused: subscription {set_id.subscription} is not monitored"
            context.note(RecordKind.REJECTED, scale_set=set_id.value, reason=reason)
            journal.flush()
            return Handled(context.event_id, "rejected", reason, None, time.monotonic() - started)
        if look.if_marked and not self.locks.marked(set_id):
            reason = "served: the reconcile that held the set looked at it again before this re-check"
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
            journal.flush()
            return Handled(context.event_id, "served", reason, None, time.monotonic() - started)
        deadline = started + self.settings.reconcile_budget_s
        try:
            result = self.flight.reconcile(
                set_id,
                context,
                look.attempt,
                way_back=look.if_marked,
                deadline=deadline,
                guarded=not look.dry_run,
                watch=look.watch,
            )
        except ArmError as error:
            return self._failed_read(context, error, started)
        except BaseException as error:
            record_failure(context, error, RETRIED)
            raise
        status = "reconciled"
        if result is not None and result.deferred:
            # Not if_marked: the rest is owed whether or not the set is marked meanwhile.
            follow_up = dataclasses.replace(
                look,
                if_marked=False,
                follow_up=look.follow_up + 1,
                reason=f"follow-up {look.follow_up + 1}: {result.deferred} findings left by the time budget",
            )
            self.work.schedule(follow_up, 0)
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=f"continued: {follow_up.reason}")
            status = "continued"
        elif result is not None and result.growing and not context.dry_run:
            self._watch(look, result.growing, context)
        journal.flush()
        if result is None:
            return Handled(context.event_id, "busy", BUSY, None, time.monotonic() - started)
        return Handled(context.event_id, status, result.reason, result, time.monotonic() - started)

    def _watch(self, look: Recheck, growing: str, context: Context) -> None:
        """Look at the growing set again in a few seconds, unless a look at it is pending already."""
        interval = self.settings.watch_interval_s
        if look.watch * interval >= self.settings.watch_max_s:
            reason = (
                f"watch ended after {look.watch} looks ({growing}): the delayed re-checks and the "
                "sweep look again"
            )
            context.note(RecordKind.DECISION, scale_set=look.scale_set.value, reason=reason)
            return
        later = Recheck(
            look.scale_set,
            0,
            reason=f"watch {look.watch + 1}: {growing}",
            origin=look.origin,
            watch=look.watch + 1,
        )
        hand_over(self.locks, self.work, look.scale_set, context, later.reason, look=later, delay_s=interval)

    @staticmethod
    def _failed_read(context: Context, error: ArmError, started: float) -> Handled:
        """A look ARM did not answer for: a refusal that stands is recorded and the message removed
        (the queue would retry it into the poison queue); anything else raises (delivered again)."""
        if not error.refused:
            record_failure(context, error, RETRIED)
            raise error
        record_refusal(context, error)
        context.journal.flush()
        return Handled(context.event_id, "refused", str(error), None, time.monotonic() - started)

    def poisoned(self, body: str, message_id: str) -> Handled:
        """A message the host gave up on: kept in the archive, recorded, for replay --poison."""
        journal = self.audit.journal()
        name = self.archive.keep(
            f"{POISON_PREFIX}{datetime.now(UTC):%Y/%m/%d/%H}/{message_id or uuid.uuid4()}.json", body
        )
        work = parse_work(body)
        origin = (
            ""
            if isinstance(work, Rejection)
            else (work.origin if isinstance(work, Recheck) else work.event_id)
        )
        scale_set = work.scale_set.value if isinstance(work, Recheck) else ""
        reason = (
            "poison: the work queue's trigger failed on this message as many times as host.json's "
            "maxDequeueCount allows; kept for `remediation replay --poison`"
        )
        Context(journal, event_id=origin or f"poison-{message_id}", event_type="poison").note(
            RecordKind.ERROR, result=Result.FAILED.value, scale_set=scale_set, archive=name, reason=reason
        )
        journal.flush()
        return Handled(origin or message_id, "poisoned", reason)

    def poison_since(self, since: timedelta) -> Iterator[tuple[str, str]]:
        """The poison messages kept in the last ``since`` that no replay has taken: (blob name,
        message body)."""
        now = datetime.now(UTC)
        yield from self.archive.kept(POISON_PREFIX, now - since, now, unreplayed=True)
