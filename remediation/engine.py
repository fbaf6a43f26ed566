"""The orchestration, put together: one Remediator per process and configuration, whose parts
each have a module of their own:

- ``intake``: an Event Grid delivery -> validated, archived, recorded, its owning set resolved and
  gated -> a restricted set handed to the work queue. Short: Event Grid waits 30 s.
- ``worker``: the work queue's trigger -> one set reconciled per message (``reconcile``), one at a
  time across hosts (``one_at_a_time``, ``single_flight``), within a time budget.
- ``sweep``: the timer's backstop -> every restricted set handed to the work queue.
- ``replay``: archived, dead-lettered, filed or poison events -> the work queue, under one id.
- ``recovery`` (through ``reconcile``): interrupted writes judged from the log and ARM.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from remediation import replay as replays
from remediation.ancestry import GroupMembers
from remediation.archive import EventArchive
from remediation.arm import ArmGateway
from remediation.audit import AuditLog
from remediation.intake import Handled, Intake
from remediation.one_at_a_time import OneAtATime
from remediation.recent_reads import RecentReads
from remediation.reconcile import SetReconciler
from remediation.replay import Queued, ReplayItem
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.sweep import SweepResult, sweep
from remediation.work_queue import RecheckQueue
from remediation.worker import Worker

# Event Grid's intake reads ARM once per resource, without retries and with this timeout: an
# answer that would take longer (or a 429) hands the event to the work queue instead, so the
# delivery is answered well within Event Grid's 30 s, and in about a second at worst.
INTAKE_READ_TIMEOUT_S = 1.0

__all__ = ["Handled", "Remediator", "ReplayItem", "SweepResult", "remediator_for"]


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
        intake_arm: ArmGateway | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``intake_arm``: the gateway Event Grid's intake reads with (default: ``arm``, whose
        retries a test may want); ``clock``: what "now" is when judging how old an unfinished
        write is (a test or harness may move it)."""
        self.settings = settings
        self.arm = arm
        self.audit = audit
        self.rechecks = rechecks
        self.archive = archive
        self.locks = locks
        self.clock = clock
        # One per process: the subscriptions under the monitored management groups and those the
        # policy's scopes name.
        self.groups = GroupMembers.for_policy(
            settings.policy, miss_interval_s=settings.management_group_refresh_s
        )
        self.sets = SetReconciler(settings, arm, audit, rechecks, self.now, groups=self.groups)
        self.flight = OneAtATime(settings, arm, self.sets, locks, rechecks)
        recent = RecentReads()  # one per process too: the reads intake's events share
        self.intake, queued_intake = (
            Intake(
                settings,
                gateway,
                audit,
                work=rechecks,
                archive=archive,
                sets=self.sets,
                locks=locks,
                hand_off_when_slow=slow,
                recent=recent,
                groups=self.groups,
            )
            for gateway, slow in ((intake_arm or arm, intake_arm is not None), (arm, False))
        )
        self.worker = Worker(
            settings,
            audit,
            work=rechecks,
            archive=archive,
            locks=locks,
            flight=self.flight,
            intake=queued_intake,
        )

    def now(self) -> datetime:
        return self.clock()

    def handle(self, event: object) -> Handled:
        """An Event Grid delivery (``intake``)."""
        return self.intake.handle(event)

    def work(self, body: object) -> Handled:
        """A work-queue message (``worker``); a dry-run one goes to the dry-run remediator."""
        taken = self.worker.take(body)
        if isinstance(taken, Handled):
            return taken
        dry = remediator_for(dataclasses.replace(self.settings, dry_run=True))
        return dry.work(body)

    def poisoned(self, body: str, message_id: str) -> Handled:
        return self.worker.poisoned(body, message_id)

    def sweep(
        self,
        subscriptions: Iterable[str] = (),
        progress: Callable[[int, int], None] | None = None,
        *,
        scheduled: bool = False,
    ) -> SweepResult:
        journal = self.audit.journal()
        return sweep(
            self.settings,
            self.arm,
            journal,
            sets=self.sets,
            locks=self.locks,
            work=self.rechecks,
            archive=self.archive,
            subscriptions=subscriptions,
            progress=progress,
            scheduled=scheduled,
            groups=self.groups,
        )

    def replay(self, items: Iterable[ReplayItem], progress: Callable[[int], None] | None = None) -> Queued:
        return replays.queue_replay(
            self.audit, self.rechecks, self.archive, items, dry_run=self.settings.dry_run, progress=progress
        )

    def archived_event(self, event_id: str) -> ReplayItem:
        return replays.archived_event(self.audit, self.archive, event_id)

    def archived_since(self, since: timedelta) -> Iterable[ReplayItem]:
        return replays.archived_since(self.archive, since)

    def dead_lettered(self, container: str) -> Iterable[ReplayItem]:
        return replays.dead_lettered(self.archive, container)

    def poison_since(self, since: timedelta) -> Iterable[ReplayItem]:
        return replays.poisoned(self.worker.poison_since(since))


_remediators: dict[Settings, Remediator] = {}
_remediators_lock = threading.Lock()


def remediator_for(settings: Settings) -> Remediator:
    """One Remediator (one set of SDK clients) per process and configuration.

    Locked: the host may start several invocations at once, and they must share the clients.
    """
    with _remediators_lock:
        remediator = _remediators.get(settings)
        if remediator is None:
            quick = dataclasses.replace(
                settings,
                arm_retry_total=0,
                arm_read_timeout_s=INTAKE_READ_TIMEOUT_S,
                arm_max_pacing_wait_s=INTAKE_READ_TIMEOUT_S,
            )
            remediator = Remediator(
                settings,
                ArmGateway(settings),
                AuditLog(settings),
                RecheckQueue(settings),
                EventArchive(settings),
                locks=SetLocks(settings),
                intake_arm=ArmGateway(quick),
            )
            _remediators[settings] = remediator
        return remediator
