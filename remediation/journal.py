"""Write-ahead for one handling's audit records, safe under parallel writers (DESIGN.md decision 4).

The findings of a reconcile are remediated in parallel, and each ARM write must have its intent
stored before it goes out. Buffering every record and storing the buffer at each write-ahead
keeps storage cheap (a few entity-group transactions per wave, not one request per record), but
a writer whose intent another thread's store took must still wait for that store: returning at
once would let its ARM write overtake its intent. So the journal is a group commit: the first
writer to find no store running becomes the leader and stores everything buffered so far; every
writer waits until its own record has been stored (by whichever leader took it). One store of a
journal runs at a time, so a store that returned holds every record buffered before it. Below
it, the audit log commits the stores of all the process's journals together (``group_commit``),
and returns from a store only once all of its entities are stored. An event's handled marker is
stored last, in a store of its own, once every record of the event is.

A failed store loses nothing: its records stay buffered (and are stored again by the handling's
final flush, as upserts, since part of a failed batch may have been stored). It also poisons the
journal: every later write-ahead of this handling raises ``AuditUnavailable`` before its ARM
write could start, and the invocation fails, so the event is delivered again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from remediation import telemetry
from remediation.records import AuditRecord, handled_marker_key

Entities = list[tuple[str, dict[str, Any]]]


class AuditUnavailable(RuntimeError):
    """The audit store could not be written or read; nothing may be written to ARM."""


class EntityStore(Protocol):
    def store_entities(self, entities: Entities) -> None:
        """Store entities (operation, entity) durably, or raise AuditUnavailable."""


class Journal:
    """The records of one handling (an event, a re-check, a sweep), stored write-ahead. Thread-safe."""

    def __init__(self, store: EntityStore) -> None:
        self._store = store
        self._changed = threading.Condition()
        self._buffer: list[AuditRecord] = []  # buffered, not yet known to be stored, in order
        self._buffered = 0  # records buffered so far
        self._stored = 0  # records stored: always the first ``_stored`` buffered
        self._leader = False  # a store is running
        self._retried: set[str] = set()  # ids of records that were in a failed batch
        self._failure: AuditUnavailable | None = None

    def write(self, record: AuditRecord) -> AuditRecord:
        """Buffer a record; it is stored with the next write-ahead, or at ``flush``."""
        with self._changed:
            self._buffer.append(record)
            self._buffered += 1
        return record

    def write_ahead(self, record: AuditRecord) -> AuditRecord:
        """Store ``record``, and everything buffered before it, before returning.

        Raises AuditUnavailable if that store fails, or if an earlier store of this journal
        failed: in both cases the caller must not make the ARM write the record announces.
        """
        self.write(record)  # kept even when this raises: the final flush stores it with its outcome
        with self._changed:
            if self._failure is not None:
                raise AuditUnavailable(f"an earlier audit store of this handling failed: {self._failure}")
        # Stored once it has left the buffer (only a successful store removes records).
        self._store_until(lambda: all(kept is not record for kept in self._buffer), retry=False)
        return record

    def flush(self, handled_event: str = "", outcome: str = "") -> None:
        """Store everything buffered, again what a failed store kept; with ``handled_event``, then
        mark that event handled, in a store of its own once all its records are stored (a marker
        stored first would make a redelivery a duplicate while records were still missing)."""
        with self._changed:
            number = self._buffered
        self._store_until(lambda: self._stored >= number, retry=True)
        if handled_event:
            # Upsert: two concurrent deliveries may both finish; either marker says the same.
            partition, row = handled_marker_key(handled_event)
            marker = {
                "PartitionKey": partition,
                "RowKey": row,
                "event_id": handled_event,
                "outcome": outcome,
                "time": datetime.now(UTC).isoformat(),
            }
            self._store.store_entities([("upsert", marker)])

    def _store_until(self, done: Callable[[], bool], *, retry: bool) -> None:
        """Return once ``done()`` holds (checked under the lock), leading a store of everything
        buffered whenever none is running. ``retry``: store again after a failure (the final
        flush) instead of raising it."""
        while True:
            with self._changed:
                while self._leader:
                    self._changed.wait()
                if done():
                    return
                if self._failure is not None and not retry:
                    raise AuditUnavailable(f"audit records were not stored: {self._failure}")
                batch = list(self._buffer)
                self._leader = True
            error: AuditUnavailable | None = AuditUnavailable("the store was interrupted")
            try:
                error = self._lead(batch)
            finally:  # whatever happens, the next writer may lead (a stuck flag would hang them all)
                with self._changed:
                    self._leader = False
                    if error is None:
                        del self._buffer[: len(batch)]
                        self._stored += len(batch)
                        self._retried.difference_update(record.record_id for record in batch)
                    else:
                        self._failure = self._failure or error
                        self._retried.update(record.record_id for record in batch)
                    self._changed.notify_all()
            if error is not None:
                raise error
            for record in batch:
                telemetry.emit(record)

    def _lead(self, batch: Sequence[AuditRecord]) -> AuditUnavailable | None:
        entities: Entities = [
            ("upsert" if record.record_id in self._retried else "create", entity)
            for record in batch
            for entity in record.to_entities()
        ]
        try:
            if entities:
                self._store.store_entities(entities)
        except AuditUnavailable as error:
            return error
        return None
