"""Specification of the group commit under the audit log (remediation.group_commit): concurrent
writers share entity-group transactions, and none returns before its own entities are stored; a
failed transaction fails exactly the writers whose entities it held.

The interleavings are forced, not hoped for: the injected ``submit`` blocks on an event, and the
test waits until the other writers are parked on the committer's condition (observed, as
tests/test_journal.py observes the journal's) before it lets the store go on. No sleeps.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from localazure.stack import LocalAzure
from localazure.storage_faults import StorageFaults, StorageRequest
from remediation.audit import AuditLog
from remediation.group_commit import CommitFailed, GroupCommit, Operation
from remediation.journal import AuditUnavailable
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.review import Filters

WAIT_S = 10  # bounded: a broken committer fails the test, it does not hang it


class Refused(Exception):
    """A transaction refused for what it holds (as a TableTransactionError is)."""


class Unreachable(Exception):
    """Storage did not answer (as a dropped connection is)."""


class InjectedStorage:
    """Stands in for the table: records each transaction; holds or fails it on command."""

    def __init__(self) -> None:
        self.transactions: list[tuple[str, list[str]]] = []  # (partition, row keys) as submitted
        self.stored: set[tuple[str, str]] = set()
        self.gates: dict[str, tuple[threading.Event, threading.Event]] = {}  # entered, release
        self.refuse: Callable[[str, list[Operation]], bool] = lambda partition, operations: False
        self.down: Callable[[str, list[Operation]], bool] = lambda partition, operations: False
        self._lock = threading.Lock()

    def hold(self, partition: str) -> tuple[threading.Event, threading.Event]:
        """The next transaction of ``partition`` waits: (set once it is entered, set to release it)."""
        gate = self.gates[partition] = (threading.Event(), threading.Event())
        return gate

    def submit(self, partition: str, operations: list[Operation]) -> None:
        with self._lock:
            self.transactions.append((partition, [entity["RowKey"] for _, entity in operations]))
            gate = self.gates.pop(partition, None)
        if gate is not None:
            gate[0].set()
            assert gate[1].wait(WAIT_S), "the test never released the store"
        if self.down(partition, operations):
            raise Unreachable(f"no answer for {partition}")
        if self.refuse(partition, operations):
            raise Refused(f"{partition}: an entity was refused")
        with self._lock:
            self.stored.update((entity["PartitionKey"], entity["RowKey"]) for _, entity in operations)


class ObservedCondition(threading.Condition):
    """The committer's condition, telling the test which threads wait on it."""

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
            assert self.changed.wait_for(condition, timeout=WAIT_S), "the writers never got there"


def observed(committer: GroupCommit) -> ObservedCondition:
    condition = ObservedCondition()
    committer._changed = condition
    return condition


def entities(writer: str, partitions: tuple[str, ...] = ("h-2026120222",)) -> list[Operation]:
    """A record's copies: one per partition, the same RowKey in each (as AuditRecord.to_entities)."""
    row = f"20261202T220000.000000Z-{writer}"
    return [
        ("create", {"PartitionKey": partition, "RowKey": row, "writer": writer}) for partition in partitions
    ]


class Writer:
    """A thread committing its operations; on return, whether each was stored at that moment."""

    def __init__(self, committer: GroupCommit, storage: InjectedStorage, operations: list[Operation]) -> None:
        self.operations = operations
        self.stored_when_returned: bool | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def body() -> None:
            try:
                committer.commit(operations)
                keys = {(entity["PartitionKey"], entity["RowKey"]) for _, entity in operations}
                self.stored_when_returned = keys <= storage.stored
            except BaseException as error:  # noqa: BLE001 - reported to the test
                self.error = error
            finally:
                self.done.set()

        self.thread = threading.Thread(target=body, daemon=True)  # a hung one fails its test, not the run
        self.thread.start()

    def join(self) -> None:
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive()


def a_wave_of(
    committer: GroupCommit, storage: InjectedStorage, writers: dict[str, list[Operation]]
) -> dict[str, Writer]:
    """The given writers, queued in this order behind a first writer whose store is held:
    released, they are committed together, as one wave."""
    condition = observed(committer)
    entered, release = storage.hold("p-first")
    first = Writer(committer, storage, entities("first", ("p-first",)))
    assert entered.wait(WAIT_S)
    started: dict[str, Writer] = {}
    for name, operations in writers.items():  # one at a time: the queue's order is the test's
        started[name] = Writer(committer, storage, operations)
        condition.until(lambda: {w.thread for w in started.values()} <= condition.waiting)
    storage.transactions.clear()
    release.set()
    for writer in [first, *started.values()]:
        writer.join()
    return started


def test_concurrent_writers_share_one_transaction_per_partition_and_return_once_stored() -> None:
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit)
    # 16 events' records: each its own by-event partition, all sharing the hour's and one set's.
    writers = a_wave_of(
        committer,
        storage,
        {f"w{n}": entities(f"w{n}", ("h-2026120222", f"e-event-{n}", "s-set")) for n in range(16)},
    )

    records = sum(len(w.operations) for w in writers.values())
    assert [w.error for w in writers.values()] == [None] * 16
    assert [w.stored_when_returned for w in writers.values()] == [True] * 16
    assert sorted(partition for partition, _ in storage.transactions) == sorted(
        ["h-2026120222", "s-set", *(f"e-event-{n}" for n in range(16))]
    ), "one transaction per partition of the wave"
    assert len(storage.transactions) == 18 < records == 48


def test_a_failed_transaction_fails_exactly_the_writers_whose_entities_it_held() -> None:
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit)
    storage.refuse = lambda partition, operations: partition == "e-b"  # B's own partition
    writers = a_wave_of(
        committer,
        storage,
        {name: entities(name, ("h-2026120222", f"e-{name}")) for name in ("a", "b", "c")},
    )

    assert isinstance(writers["b"].error, CommitFailed)
    assert isinstance(writers["b"].error.__cause__, Refused)
    assert writers["a"].error is None and writers["c"].error is None
    assert writers["a"].stored_when_returned and writers["c"].stored_when_returned
    assert ("h-2026120222", entities("b")[0][1]["RowKey"]) in storage.stored, (
        "B's copy in the shared partition was stored: B fails for its own partition alone"
    )


def test_later_partitions_go_after_the_rest_of_the_wave_and_only_for_writers_not_failed() -> None:
    """The audit log's by-hour copies (``later``) are submitted after every other partition of
    their wave, and left out for a writer whose other copy was refused: a record visible by time
    is visible by event too."""
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit, later=lambda partition: partition.startswith("h-"))
    storage.refuse = lambda partition, operations: partition == "e-b"
    writers = a_wave_of(
        committer,
        storage,
        {name: entities(name, ("h-2026120222", f"e-{name}")) for name in ("a", "b", "c")},
    )

    assert [partition for partition, _ in storage.transactions] == ["e-a", "e-b", "e-c", "h-2026120222"]
    assert storage.transactions[-1][1] == [entities(n)[0][1]["RowKey"] for n in ("a", "c")], (
        "B's by-hour copy left out: its by-event copy was refused"
    )
    assert isinstance(writers["b"].error, CommitFailed)
    assert writers["a"].stored_when_returned and writers["c"].stored_when_returned
    assert ("h-2026120222", entities("b")[0][1]["RowKey"]) not in storage.stored


def test_no_writer_returns_before_its_entities_are_stored() -> None:
    """B and C arrive while A's wave is being stored; their own transactions are then held in
    turn. Whichever of them leads their wave, the other is a follower whose entities are not
    stored yet: it is waiting, not returned."""
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit)
    condition = observed(committer)
    a_entered, a_release = storage.hold("e-a")
    a = Writer(committer, storage, entities("a", ("h-2026120222", "e-a")))
    assert a_entered.wait(WAIT_S)  # A leads; its hour's copy is stored, its event's is held
    assert not a.done.is_set(), "A returned with its by-event copy unstored"
    b = Writer(committer, storage, entities("b", ("h-2026120222", "e-b")))
    condition.until(lambda: b.thread in condition.waiting)
    c = Writer(committer, storage, entities("c", ("h-2026120222", "e-c")))
    condition.until(lambda: c.thread in condition.waiting)
    assert not b.done.is_set() and not c.done.is_set()
    b_entered, b_release = storage.hold("e-b")
    c_entered, c_release = storage.hold("e-c")
    a_release.set()
    a.join()
    assert a.error is None and a.stored_when_returned

    assert b_entered.wait(WAIT_S)  # B and C's wave: the hour's copies stored, B's held
    assert not b.done.is_set() and not c.done.is_set(), "returned before its entities were stored"
    b_release.set()
    assert c_entered.wait(WAIT_S)  # B is stored now, C's copy is held: neither returns before C's
    assert not c.done.is_set(), "C returned before its entities were stored"
    c_release.set()
    b.join()
    c.join()
    assert b.error is None and c.error is None
    assert b.stored_when_returned and c.stored_when_returned
    assert [p for p, _ in storage.transactions] == ["h-2026120222", "e-a", "h-2026120222", "e-b", "e-c"]


@pytest.mark.parametrize("fails", ["a", "b"])
def test_a_shared_transaction_refused_for_one_writers_entity_fails_that_writer_alone(fails: str) -> None:
    """The by-hour transaction holds every writer's copy; one copy is refused (too large, say):
    it is atomic, so nothing of it was stored, and each writer's share is submitted alone."""
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit)
    storage.refuse = lambda partition, operations: any(e["writer"] == fails for _, e in operations)
    writers = a_wave_of(committer, storage, {name: entities(name) for name in ("a", "b", "c")})

    assert {name for name, w in writers.items() if w.error is not None} == {fails}
    assert all(w.stored_when_returned for name, w in writers.items() if name != fails)
    assert [len(rows) for _, rows in storage.transactions] == [3, 1, 1, 1]


def test_storage_that_does_not_answer_fails_the_rest_of_the_wave_untried() -> None:
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit, unreachable=lambda error: isinstance(error, Unreachable))
    storage.down = lambda partition, operations: partition == "e-b"
    order = ("a", "b", "c")
    writers = a_wave_of(committer, storage, {name: entities(name, (f"e-{name}",)) for name in order})

    assert [partition for partition, _ in storage.transactions] == ["e-a", "e-b"], "e-c was not tried"
    assert writers["a"].error is None and writers["a"].stored_when_returned
    assert isinstance(writers["b"].error, CommitFailed) and isinstance(writers["c"].error, CommitFailed)
    assert isinstance(writers["c"].error.__cause__, Unreachable)
    committer.commit(entities("d", ("e-d",)))  # the next wave is tried again
    assert ("e-d", entities("d")[0][1]["RowKey"]) in storage.stored


def test_a_transaction_holds_at_most_100_operations_and_one_per_row() -> None:
    storage = InjectedStorage()
    committer = GroupCommit(storage.submit)
    many = [("create", {"PartitionKey": "h-1", "RowKey": f"r{n:03}"}) for n in range(250)]
    marker = {"PartitionKey": "e-1", "RowKey": "~handled"}
    committer.commit([*many, ("upsert", marker), ("upsert", dict(marker))])

    assert [(p, len(rows)) for p, rows in storage.transactions] == [
        ("h-1", 100),
        ("h-1", 100),
        ("h-1", 50),
        ("e-1", 1),
        ("e-1", 1),
    ]


class Interrupted(BaseException):
    """What no ``except Exception`` catches (as KeyboardInterrupt)."""


def test_a_committer_interrupted_wakes_its_wave_with_an_error() -> None:
    def interrupted(partition: str, operations: list[Operation]) -> None:
        raise Interrupted

    committer = GroupCommit(interrupted)
    with pytest.raises(Interrupted):
        committer.commit(entities("a"))
    storage = InjectedStorage()
    committer._submit = storage.submit
    after = Writer(committer, storage, entities("b"))  # the flag was released: it leads
    after.join()
    assert after.error is None and after.stored_when_returned


# --- against Azurite ----------------------------------------------------------------------


@pytest.fixture
def proxied_log(local_azure: LocalAzure) -> Iterator[tuple[AuditLog, StorageFaults]]:
    """An audit log on a fresh table, behind the storage proxy, which counts its requests."""
    with StorageFaults(local_azure.azurite) as proxy:
        settings = local_azure.settings(
            audit_table=f"gc{uuid.uuid4().hex[:12]}", storage_connection_string=proxy.connection_string
        )
        yield AuditLog(settings), proxy


def test_concurrent_handlings_share_transactions_on_azurite(
    proxied_log: tuple[AuditLog, StorageFaults], monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 handlings each append a record about one set (each its own journal) at once, as the
    Functions worker runs 16 invocations. Counted on the wire, by the proxy in front of Azurite:
    the 16 copies by set reach it in 2 requests (the first handling's, held until the others
    queued, then one transaction of 15), all the records in fewer requests than the 2 a record
    (set, hour) that one transaction per partition per handling sends; each record is stored,
    both copies, when its append returns."""
    log, proxy = proxied_log
    log.append(AuditRecord(RecordKind.DECISION, reason="the table exists"))
    scale_set = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v"
    records = [AuditRecord(RecordKind.DECISION, scale_set=scale_set, reason=f"look {n}") for n in range(16)]
    by_set = records[0].partitions()[1].encode()
    seen: list[tuple[int, int, bool]] = []  # per table write: (copies by set, in all, a transaction?)
    lock = threading.Lock()

    def count(request: StorageRequest) -> bool:  # a trigger that never fires: it only counts
        if request.service == "table" and request.method in ("POST", "PUT", "PATCH", "MERGE"):
            with lock:
                transaction = request.path.split("?")[0].endswith("$batch")
                seen.append((request.body.count(by_set), request.body.count(b'"PartitionKey"'), transaction))
        return False

    submit = log._commits._submit  # AuditLog._submit, bound
    first, release = threading.Event(), threading.Event()

    def first_held(partition: str, operations: list[Operation]) -> None:
        if not first.is_set():
            first.set()
            assert release.wait(WAIT_S)
        submit(partition, operations)

    monkeypatch.setattr(log._commits, "_submit", first_held)
    condition = observed(log._commits)
    proxy.fail_after(count, 1)
    stored_when_returned: list[bool] = []
    failures: list[AuditUnavailable] = []

    def append(record: AuditRecord) -> None:
        try:
            log.append(record)
        except AuditUnavailable as error:
            failures.append(error)
            return
        now = datetime.now(UTC)
        window = Filters(now - timedelta(hours=1), now + timedelta(minutes=1))
        copies = [r for r in log.search(window) if r.record_id == record.record_id]
        copies += [
            r for r in log.search(replace(window, scale_set=scale_set)) if r.record_id == record.record_id
        ]
        with lock:
            stored_when_returned.append(len(copies) == 2)

    threads = [threading.Thread(target=append, args=(record,)) for record in records]
    threads[0].start()
    assert first.wait(WAIT_S)  # the first handling's copy by set is held on its way
    for thread in threads[1:]:
        thread.start()
    condition.until(lambda: set(threads[1:]) <= condition.waiting)
    release.set()
    for thread in threads:
        thread.join(WAIT_S)

    assert failures == [] and stored_when_returned == [True] * 16
    assert [copies for copies, _, _ in seen if copies] == [1, 15], "the copies by set: 2 requests"
    assert sum(entities for _, entities, _ in seen) == 32
    assert all(transaction == (entities > 1) for _, entities, transaction in seen), (
        "a single entity goes as a plain insert, several as a transaction"
    )
    assert len(seen) < 2 * len(records), f"{len(seen)} requests for 16 records, 2 copies each"
