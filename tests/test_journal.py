"""Specification of the journal's write-ahead promise under parallel writers: an intent is stored
before its own ARM write goes out, whatever other threads flush; a failed store loses nothing and
lets no further write start.

The interleavings are forced, not hoped for: the store is injected and blocks on an event, and the
one point where a thread may be pre-empted (after its record is buffered, before it asks for it to
be stored) is held with a barrier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from remediation.journal import AuditUnavailable, Journal
from remediation.model import RecordKind
from remediation.records import AuditRecord

Entities = list[tuple[str, dict[str, Any]]]


class InjectedStore:
    """Stands in for the audit table: stores entity batches, or blocks, or fails, on command."""

    def __init__(self) -> None:
        self.stored: list[str] = []  # record ids, in the order their batches were stored
        self.operations: list[str] = []
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_calls: set[int] = set()
        self._lock = threading.Lock()

    def block_next(self) -> None:
        self.entered.clear()
        self.release.clear()

    def __call__(self, entities: Entities) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.entered.set()
        assert self.release.wait(10), "the test never released the store"
        if call in self.fail_calls:
            raise AuditUnavailable(f"injected: store call {call} failed")
        with self._lock:
            for operation, entity in entities:
                if entity["PartitionKey"].startswith("h-"):
                    self.stored.append(entity["record_id"])
                    self.operations.append(operation)

    store_entities = __call__


class ObservedCondition(threading.Condition):
    """The journal's condition, telling the test which threads are waiting on it (so the test can
    wait until a writer is parked, rather than hope it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: set[threading.Thread] = set()
        self.changed = threading.Condition()

    def wait(self, timeout: float | None = None) -> bool:
        with self.changed:
            self.waiting.add(threading.current_thread())
            self.changed.notify_all()
        try:
            return super().wait(timeout)
        finally:
            with self.changed:
                self.waiting.discard(threading.current_thread())
                self.changed.notify_all()

    def until(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout=10), "the writers never got there"


def observed(journal: Journal) -> ObservedCondition:
    condition = ObservedCondition()
    journal._changed = condition
    return condition


def intent(name: str) -> AuditRecord:
    return AuditRecord(RecordKind.INTENT, event_id="e1", action="detach-public-ip", nic=name)


def run(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException], list[Any]]:
    errors: list[BaseException] = []
    results: list[Any] = []

    def body() -> None:
        try:
            results.append(target())
        except BaseException as error:  # noqa: BLE001 - reported to the test
            errors.append(error)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors, results


@pytest.mark.parametrize("store_fails", [True, False], ids=["store-fails", "store-succeeds"])
def test_an_intent_another_threads_store_took_is_stored_before_its_write_ahead_returns(
    monkeypatch: pytest.MonkeyPatch, store_fails: bool
) -> None:
    store = InjectedStore()
    journal = Journal(store)
    condition = observed(journal)
    b_intent, a_intent = intent("nic-b"), intent("nic-a")
    b_buffered, a_storing = threading.Event(), threading.Event()
    buffer = Journal.write

    def write_then_be_preempted(self: Journal, record: AuditRecord) -> AuditRecord:
        buffer(self, record)
        if record is b_intent:  # B is pre-empted right after buffering its intent
            b_buffered.set()
            assert a_storing.wait(10)
        return record

    monkeypatch.setattr(Journal, "write", write_then_be_preempted)
    written_to_arm: list[bool] = []  # whether B's intent was stored when B went on to its ARM write
    b_done = threading.Event()

    def writer_b() -> None:
        try:
            journal.write_ahead(b_intent)
            written_to_arm.append(b_intent.record_id in store.stored)
        finally:
            b_done.set()

    b, b_errors, _ = run(writer_b)
    assert b_buffered.wait(10)
    store.block_next()
    store.fail_calls = {1} if store_fails else set()
    a, a_errors, _ = run(lambda: journal.write_ahead(a_intent))  # A's store takes B's intent too
    assert store.entered.wait(10)
    a_storing.set()  # B resumes while A's store, holding B's intent, is still running
    condition.until(lambda: b in condition.waiting or b_done.is_set())  # B waits, or went on
    store.release.set()
    a.join(10)
    b.join(10)

    if store_fails:
        assert written_to_arm == [], "B went on to its ARM write although its intent was never stored"
        assert [type(error) for error in (*a_errors, *b_errors)] == [AuditUnavailable, AuditUnavailable]
    else:
        assert written_to_arm == [True], "B went on to its ARM write before its intent was stored"
        assert a_errors == b_errors == []


def test_a_failed_store_keeps_its_records_and_the_next_flush_stores_them() -> None:
    store = InjectedStore()
    journal = Journal(store)
    decision = journal.write(AuditRecord(RecordKind.DECISION, event_id="e1", reason="remediate"))
    first = intent("nic-a")
    store.fail_calls = {1}

    with pytest.raises(AuditUnavailable):
        journal.write_ahead(first)
    journal.flush()

    assert store.stored == [decision.record_id, first.record_id]
    assert set(store.operations) == {"upsert"}, "a retried batch may have been stored in part"


def test_after_a_failed_store_no_further_write_ahead_succeeds() -> None:
    store = InjectedStore()
    journal = Journal(store)
    store.fail_calls = {1}
    with pytest.raises(AuditUnavailable):
        journal.write_ahead(intent("nic-a"))

    # Storage is back, but this handling already failed: no further ARM write may start in it.
    with pytest.raises(AuditUnavailable, match="injected: store call 1 failed"):
        journal.write_ahead(intent("nic-b"))
    journal.flush()
    assert len(store.stored) == 2, "both intents are kept and stored by the final flush"


def test_writers_that_arrive_during_a_store_share_the_next_one() -> None:
    store = InjectedStore()
    journal = Journal(store)
    condition = observed(journal)
    stored_when_returned: list[bool] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        record = intent(f"nic-{number}")
        journal.write_ahead(record)
        with lock:
            stored_when_returned.append(record.record_id in store.stored)

    store.block_next()
    first = threading.Thread(target=writer, args=(0,))
    first.start()
    assert store.entered.wait(10)  # the first writer leads a store of its own intent, held there
    others = [threading.Thread(target=writer, args=(n,)) for n in range(1, 16)]
    for thread in others:
        thread.start()
    condition.until(lambda: set(others) <= condition.waiting)  # all 15 buffered, waiting
    store.release.set()
    for thread in [first, *others]:
        thread.join(10)

    assert stored_when_returned == [True] * 16
    assert store.calls == 2, "the 15 writers that waited were stored by one leader's store (group commit)"
