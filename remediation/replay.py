"""Replays: events from the archive, Event Grid's dead letters, a file, or the poison queue's
kept messages, put on the work queue under one replay id; the workers take them in as live events
are taken in, recording each under that id with ``replay_of``, so `audit --event-id <id>` (and
`GET /api/audit?event_id=<id>`) shows the replay's progress and results.

A replay asks for a fresh look: it is not checked against handled events, and being
level-triggered, a fresh look at a remediated set writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from remediation.archive import EventArchive
from remediation.audit import AuditLog
from remediation.model import QueuedEvent, RecordKind
from remediation.review import Filters
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

# How far back `replay --event-id` looks for the event's received record.
ARCHIVE_LOOKBACK = timedelta(days=3650)


@dataclass(frozen=True)
class ReplayItem:
    """An event to replay, where it came from, and what its source said about it. A poison
    message is replayed as it was (``message``), not as an event."""

    source: str  # e.g. "archive 2026/11/21/10/<id>.json", "dead-letter <blob>", "poison <blob>"
    event: object = None
    note: str = ""  # e.g. why Event Grid dead-lettered it
    archive: str = ""  # the archive blob holding the event, when it came from there
    message: str = ""  # a poison message's body
    # The kept blob it came from (a poison message, a dead letter) and its container ("": the
    # archive's), marked replayed once queued so `doctor` stops counting it as waiting.
    kept: str = ""
    kept_in: str = ""


@dataclass(frozen=True)
class Queued:
    replay_id: str
    queued: int


def archived_event(audit: AuditLog, archive: EventArchive, event_id: str) -> ReplayItem:
    """The raw event as it was received, found through its received record."""
    window = Filters(datetime.now(UTC) - ARCHIVE_LOOKBACK, datetime.now(UTC), event_id=event_id)
    for record in audit.search(window):
        if record.kind in (RecordKind.RECEIVED, RecordKind.REJECTED, RecordKind.DUPLICATE) and record.archive:
            return ReplayItem(
                f"archive {record.archive}", archive.load(record.archive), archive=record.archive
            )
    raise LookupError(f"no archived event with id {event_id!r}")


def archived_since(archive: EventArchive, since: timedelta) -> Iterator[ReplayItem]:
    now = datetime.now(UTC)
    for name, event in archive.since(now - since, now):
        yield ReplayItem(f"archive {name}", event, archive=name)


def dead_lettered(archive: EventArchive, container: str) -> Iterator[ReplayItem]:
    for name, event in archive.dead_letters(container):
        reason = event.get("deadLetterReason", "unknown reason")
        attempts = event.get("deliveryAttempts", "?")
        outcome = event.get("lastDeliveryOutcome", "")
        note = f"dead-lettered ({reason}) after {attempts} attempts, last: {outcome}; from {name}"
        yield ReplayItem(f"dead-letter {name}", event, note, kept=name, kept_in=container)


def poisoned(kept: Iterable[tuple[str, str]]) -> Iterator[ReplayItem]:
    for name, body in kept:
        yield ReplayItem(f"poison {name}", message=body, kept=name)


def queue_replay(
    audit: AuditLog,
    work: RecheckQueue,
    archive: EventArchive,
    items: Iterable[ReplayItem],
    *,
    dry_run: bool,
    progress: Callable[[int], None] | None = None,
) -> Queued:
    """Put every item on the work queue under a new replay id, recorded before and after; each
    kept blob whose items were all queued is marked replayed (not on a dry run)."""
    replay_id = f"replay-{uuid.uuid4()}"
    journal = audit.journal()
    context = Context(journal, dry_run=dry_run, event_id=replay_id, event_type="replay", operation="replay")
    queued = 0
    done: list[tuple[str, str]] = []  # kept blobs all of whose events are queued
    current: tuple[str, str] | None = None
    try:
        for item in items:
            blob = (item.kept_in, item.kept) if item.kept else None
            if current is not None and blob != current:
                done.append(current)  # a dead-letter blob's events come together
            current = blob
            if item.message:
                work.send(item.message)
            else:
                original = item.event.get("id") if isinstance(item.event, Mapping) else None
                replay_of = original if isinstance(original, str) and original else "unidentified"
                queued_event = QueuedEvent(
                    replay_id, item.event, "", replay_of, item.note or item.source, dry_run
                )
                work.schedule_event(queued_event, item.archive)
            queued += 1
            if progress is not None:
                progress(queued)
        if current is not None:
            done.append(current)
    finally:
        context.note(
            RecordKind.DECISION,
            reason=f"replay: {queued} events queued{' (dry run)' if dry_run else ''}; "
            "each is recorded under this id as a worker takes it in",
        )
        journal.flush()
        if not dry_run:
            for container, name in dict.fromkeys(done):
                archive.mark_replayed(name, replay_id, container)
    return Queued(replay_id, queued)
