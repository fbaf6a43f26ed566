"""The orchestration: an event -> the owning scale set -> reconcile the whole set -> audit.

Level-triggered (DESIGN.md decision 1): an event only says "look at this scale set now". The
set's live state is read again, planned against the policy and remediated, so duplicates,
reordering, lost events and forged payloads are harmless. A redelivered event that was already
handled to the end is recorded as a duplicate and costs no ARM call.

Failure contract with the Functions host: a bad event is recorded as rejected and the handler
returns normally (retrying cannot fix it); an unreachable audit store or a failed ARM write
raises, so Event Grid redelivers the event and the work is finished later.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError
from remediation.audit import AuditLog, EventArchive, RecheckQueue
from remediation.events import parse_event, parse_recheck
from remediation.journal import AuditUnavailable, Journal
from remediation.model import RecordKind, Rejection, ResourceId, Result
from remediation.observe import Unresolvable, owning_scale_set
from remediation.one_at_a_time import BUSY, OneAtATime
from remediation.policy import restriction_for
from remediation.reconcile import ReconcileResult, SetReconciler
from remediation.review import Filters
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.write_ahead import Context

log = logging.getLogger(__name__)

# How far back the sweep looks for unfinished writes of any set: as far as `audit verify` does.
RECOVERY_LOOKBACK = timedelta(days=7)

# How far back `replay --event-id` looks for the event's received record.
ARCHIVE_LOOKBACK = timedelta(days=3650)

# Sets reconciled at once by a sweep (each reconcile parallelises its own writes).
SWEEP_PARALLEL_SETS = 4

# An event is covered by a reconcile only if that reconcile started at least this long after the
# event's time: ARM's clock and ours may differ, and an event's time may precede the moment its
# write became visible to reads. Generous on purpose: being wrong here means a missed look.
CLOCK_SKEW = timedelta(seconds=60)
MAX_REMEMBERED_SETS = 10_000


@dataclass(frozen=True)
class SweepResult:
    sweep_id: str
    source: str  # "resource graph" or "listing"
    scale_sets: int
    restricted: tuple[ResourceId, ...]
    results: tuple[ReconcileResult, ...]


@dataclass(frozen=True)
class ReplayItem:
    """An event to replay, where it came from, and what its source said about it."""

    source: str  # e.g. "archive 2026/11/21/10/<id>.json", "dead-letter <blob>", "file events.json[3]"
    event: object
    note: str = ""  # e.g. why Event Grid dead-lettered it


@dataclass(frozen=True)
class Handled:
    """What the handler did with one event."""

    event_id: str
    status: str  # rejected | duplicate | ignored | covered | busy | served | refused | reconciled
    reason: str = ""
    reconcile: ReconcileResult | None = None
    elapsed_s: float = field(default=0.0, compare=False)


class Remediator:
    def __init__(
        self,
        settings: Settings,
        arm: ArmGateway,
        audit: AuditLog,
        rechecks: RecheckQueue,
        archive: EventArchive,
        *,
        locks: SetLocks,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.arm = arm
        self.audit = audit
        self.rechecks = rechecks
        self.archive = archive
        # What "now" is when judging how old an unfinished write is (a test or harness may move it).
        self.clock = clock
        self.sets = SetReconciler(settings, arm, audit, rechecks, self.now)
        self.locks = locks
        self.flight = OneAtATime(settings, arm, self.sets, locks, rechecks)
        # When the last reconcile of each set that completed started (see _covering_reconcile).
        self._last_reconcile: dict[ResourceId, datetime] = {}
        self._covered_lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock()

    def _covering_reconcile(self, set_id: ResourceId, happened: datetime | None) -> datetime | None:
        """When a reconcile of this set that completed in this process started after the event's
        write (allowing for clock skew), that reconcile already saw the write: level-triggered, the
        event asks for nothing more. Returns that reconcile's start, or None."""
        if happened is None:
            return None
        with self._covered_lock:
            started = self._last_reconcile.get(set_id)
        if started is not None and happened + CLOCK_SKEW < started:
            return started
        return None

    def _reconciled(self, set_id: ResourceId, started: datetime) -> None:
        with self._covered_lock:
            if started > self._last_reconcile.get(set_id, started - timedelta(seconds=1)):
                self._last_reconcile[set_id] = started
            if len(self._last_reconcile) > MAX_REMEMBERED_SETS:  # bounded: forget the oldest
                oldest = min(self._last_reconcile, key=self._last_reconcile.__getitem__)
                del self._last_reconcile[oldest]

    def _context(self, journal: Journal, **facts: Any) -> Context:
        return Context(journal, dry_run=self.settings.dry_run, **facts)

    def handle(self, event: object, *, replay_of: str = "", note: str = "") -> Handled:
        """Handle one event (or, with ``replay_of``, replay an archived one through the same path).

        A replay gets a new id and is not checked against the handled-event markers: it asks
        for a fresh look, and being level-triggered, a fresh look at a remediated set writes nothing.
        """
        started = time.monotonic()
        received = datetime.now(UTC)
        journal = self.audit.journal()
        trigger = parse_event(event)
        event_id = f"replay-{uuid.uuid4()}" if replay_of else trigger.event_id
        archived, not_archived = "", ""
        if not replay_of:
            try:
                archived = self.archive.store(event_id, event, received)
            except AuditUnavailable as error:  # replay loses this event; remediation must not
                not_archived = f"not archived: {error}"
        if not isinstance(trigger, Rejection) and not self.settings.policy.monitors(trigger.subscription_id):
            trigger = Rejection(
                trigger.event_id,
                f"subscription {trigger.subscription_id} is not monitored",
                trigger.event_type,
            )
        if isinstance(trigger, Rejection):
            context = self._context(
                journal, event_id=event_id, event_type=trigger.event_type, replay_of=replay_of
            )
            context.note(RecordKind.REJECTED, reason=trigger.reason, archive=archived, error=not_archived)
            journal.flush()
            log.warning("event %s rejected: %s", trigger.event_id, trigger.reason)
            return Handled(event_id, "rejected", trigger.reason, elapsed_s=time.monotonic() - started)

        context = self._context(
            journal,
            event_id=event_id,
            correlation_id=trigger.correlation_id,
            event_type=trigger.event_type,
            operation=trigger.operation,
            caller=str(trigger.caller),
            resource=trigger.resource_id.value,
            replay_of=replay_of,
        )
        if not replay_of and self.audit.was_handled(event_id):
            context.note(
                RecordKind.DUPLICATE, reason="event was handled before", archive=archived, error=not_archived
            )
            journal.flush()
            return Handled(event_id, "duplicate", elapsed_s=time.monotonic() - started)
        context.note(RecordKind.RECEIVED, archive=archived, reason=note, error=not_archived)
        try:
            # A replay asks for a fresh look: no earlier reconcile covers it.
            happened = None if replay_of else trigger.event_time
            status, reason, result = self._resolve_and_reconcile(trigger.resource_id, context, happened)
        except ArmError as error:
            if not error.refused:
                self._record_failure(context, error)
                raise
            self._record_refusal(context, error)
            journal.flush(handled_event=event_id, outcome="refused")
            return Handled(event_id, "refused", str(error), None, time.monotonic() - started)
        except BaseException as error:
            self._record_failure(context, error)
            raise
        journal.flush(handled_event=event_id, outcome=status)
        return Handled(event_id, status, reason, result, time.monotonic() - started)

    def _resolve_and_reconcile(
        self, resource_id: ResourceId, context: Context, happened: datetime | None
    ) -> tuple[str, str, ReconcileResult | None]:
        try:
            set_id = owning_scale_set(self.arm, resource_id)
        except Unresolvable as unresolvable:
            context.note(RecordKind.DECISION, reason=f"nothing to do: {unresolvable}")
            return "ignored", str(unresolvable), None
        covered_by = self._covering_reconcile(set_id, happened)
        if covered_by is not None:
            when = covered_by.isoformat()
            reason = f"covered: the reconcile that started at {when}, after this write, looked at it"
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
            return "covered", reason, None
        started = datetime.now(UTC)
        result = self.flight.reconcile(set_id, context)
        if result is None:
            return "busy", BUSY, None
        self._reconciled(set_id, started)
        return "reconciled", result.reason, result

    @staticmethod
    def _record_refusal(context: Context, error: ArmError) -> None:
        """A refusal that stands (403, 400, 404): asking again cannot change it; the set's next
        reconcile (the sweep) tries again, once the role or the resource may have changed."""
        reason = "ARM refused a read; not retried: the set's next reconcile (the sweep) tries again"
        context.note(RecordKind.ERROR, result=Result.FAILED.value, error=str(error), reason=reason)

    @staticmethod
    def _record_failure(context: Context, error: BaseException) -> None:
        """Keep what is known when handling fails: the error, and everything the journal holds
        (after an audit outage, what it kept: it is stored if storage is back)."""
        if not isinstance(error, AuditUnavailable):
            context.note(
                RecordKind.ERROR,
                result=Result.FAILED.value,
                error=f"{type(error).__name__}: {error}",
                reason="handling failed; Event Grid will redeliver the event",
            )
        with contextlib.suppress(AuditUnavailable):
            context.journal.flush()

    def replay(
        self, items: Iterable[ReplayItem], progress: Callable[[int], None] | None = None
    ) -> list[tuple[ReplayItem, Handled | Exception]]:
        """Replay events through the same path as live ones, recording ``replay_of`` on each.

        A failed replay is reported and the rest go on, except when the audit store is down: then
        nothing more can be recorded, so the replay stops with AuditUnavailable.
        """
        results: list[tuple[ReplayItem, Handled | Exception]] = []
        for done, item in enumerate(items, start=1):
            event = item.event
            original = event.get("id") if isinstance(event, Mapping) else None
            replay_of = original if isinstance(original, str) and original else "unidentified"
            try:
                results.append((item, self.handle(event, replay_of=replay_of, note=item.note or item.source)))
            except AuditUnavailable:
                raise
            except Exception as error:  # noqa: BLE001 - one failed replay must not stop the others
                results.append((item, error))
            if progress is not None:
                progress(done)
        return results

    def archived_event(self, event_id: str) -> ReplayItem:
        """The raw event as it was received, found through its received record."""
        window = Filters(datetime.now(UTC) - ARCHIVE_LOOKBACK, datetime.now(UTC), event_id=event_id)
        for record in self.audit.search(window):
            if (
                record.kind in (RecordKind.RECEIVED, RecordKind.REJECTED, RecordKind.DUPLICATE)
                and record.archive
            ):
                return ReplayItem(f"archive {record.archive}", self.archive.load(record.archive))
        raise LookupError(f"no archived event with id {event_id!r}")

    def archived_since(self, since: timedelta) -> Iterator[ReplayItem]:
        now = datetime.now(UTC)
        for name, event in self.archive.since(now - since, now):
            yield ReplayItem(f"archive {name}", event)

    def dead_lettered(self, container: str) -> Iterator[ReplayItem]:
        for name, event in self.archive.dead_letters(container):
            reason = event.get("deadLetterReason", "unknown reason")
            attempts = event.get("deliveryAttempts", "?")
            outcome = event.get("lastDeliveryOutcome", "")
            note = f"dead-lettered ({reason}) after {attempts} attempts, last: {outcome}; from {name}"
            yield ReplayItem(f"dead-letter {name}", event, note)

    def sweep(self, subscriptions: Iterable[str] = ()) -> SweepResult:
        """Reconcile every restricted set of the monitored subscriptions: the backstop for lost events."""
        chosen = sorted({s.lower() for s in subscriptions} or self.settings.policy.monitored_subscriptions)
        sweep_id = f"sweep-{uuid.uuid4()}"
        journal = self.audit.journal()
        context = self._context(journal, event_id=sweep_id, event_type="sweep", operation="sweep")
        if not chosen:
            context.note(
                RecordKind.DECISION,
                reason="sweep skipped: no subscription named "
                "(policy monitored_subscriptions or --subscription)",
            )
            journal.flush()
            return SweepResult(sweep_id, "none", 0, (), ())
        try:
            scale_sets, source = self.arm.query_scale_sets(chosen), "resource graph"
        except ArmError as error:
            # Resource Graph may be denied or unavailable: listing costs more calls but needs less.
            scale_sets = [found for sub in chosen for found in self.arm.list_scale_sets(sub)]
            source = f"listing (Resource Graph: {error.code})"
        restricted = tuple(s.id for s in scale_sets if restriction_for(s, self.settings.policy).restricted)
        # Unfinished writes of any set, found from the log (the set may be gone or no longer
        # restricted); stored before the reconciles read their sets' histories.
        judged = self.sets.recover_from_log(context, RECOVERY_LOOKBACK, set(chosen))
        context.note(
            RecordKind.DECISION,
            reason=f"sweep of {len(chosen)} subscriptions by {source}: "
            f"{len(scale_sets)} scale sets, {len(restricted)} restricted; "
            f"{judged} unfinished writes judged from the log",
        )
        journal.flush()
        with ThreadPoolExecutor(max_workers=SWEEP_PARALLEL_SETS, thread_name_prefix="sweep") as pool:
            futures = [
                pool.submit(
                    self.flight.run, set_id, context, functools.partial(self.reconcile, set_id, context)
                )
                for set_id in restricted
            ]
        errors = [failure for future in futures if (failure := future.exception()) is not None]
        if errors:
            context.note(RecordKind.ERROR, result=Result.FAILED.value, reason=f"{len(errors)} sets failed")
            self._record_failure(context, errors[0])
            raise errors[0]
        self.archive.prune(datetime.now(UTC))
        journal.flush()
        done = tuple(result for future in futures if (result := future.result()) is not None)
        return SweepResult(sweep_id, source, len(scale_sets), restricted, done)

    def recheck(self, body: object) -> Handled:
        """A delayed re-check from the queue: reconcile the set it names, like an event would."""
        started = time.monotonic()
        journal = self.audit.journal()
        recheck = parse_recheck(body)
        if isinstance(recheck, Rejection):
            self._context(journal, event_id=recheck.event_id, event_type="recheck").note(
                RecordKind.REJECTED, reason=recheck.reason
            )
            journal.flush()
            return Handled(recheck.event_id, "rejected", recheck.reason, elapsed_s=time.monotonic() - started)
        set_id = recheck.scale_set
        context = self._context(
            journal,
            event_id=f"recheck-{recheck.attempt}-{uuid.uuid4()}",
            event_type="recheck",
            operation=recheck.reason,
            resource=set_id.value,
        )
        if recheck.if_marked and not self.locks.marked(set_id):
            reason = "served: the reconcile that held the set looked at it again before this re-check"
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
            journal.flush()
            return Handled(context.event_id, "served", reason, None, time.monotonic() - started)
        try:
            result = self.flight.reconcile(set_id, context, recheck.attempt, way_back=recheck.if_marked)
        except ArmError as error:
            if not error.refused:
                self._record_failure(context, error)
                raise
            self._record_refusal(context, error)  # the queue would retry it into the poison queue
            journal.flush()
            return Handled(context.event_id, "refused", str(error), None, time.monotonic() - started)
        except BaseException as error:
            self._record_failure(context, error)
            raise
        journal.flush()
        if result is None:
            return Handled(context.event_id, "busy", BUSY, None, time.monotonic() - started)
        return Handled(context.event_id, "reconciled", result.reason, result, time.monotonic() - started)

    def reconcile(self, set_id: ResourceId, context: Context, attempt: int = 0) -> ReconcileResult:
        """Bring one scale set into line (``reconcile.SetReconciler``)."""
        return self.sets.reconcile(set_id, context, attempt)


_remediators: dict[Settings, Remediator] = {}
_remediators_lock = threading.Lock()


def remediator_for(settings: Settings) -> Remediator:
    """One Remediator (one set of SDK clients) per process and configuration.

    Locked: the host may start several invocations at once, and they must share the clients.
    """
    with _remediators_lock:
        remediator = _remediators.get(settings)
        if remediator is None:
            remediator = Remediator(
                settings,
                ArmGateway(settings),
                AuditLog(settings),
                RecheckQueue(settings),
                EventArchive(settings),
                locks=SetLocks(settings),
            )
            _remediators[settings] = remediator
        return remediator
