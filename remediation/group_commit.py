"""Group commit of Table entities: the records that writers of one process store at the same
moment go to storage together, one entity-group transaction per partition per wave. Pure: the
storing is the ``submit(partition, operations)`` it is given (``audit.AuditLog`` gives its table).

Leader/follower. A writer queues its operations (``(operation, entity)``, as azure-data-tables
takes them) and waits. A writer that finds no commit running becomes the committer: it takes
everything queued (a wave), groups it by PartitionKey in order of first appearance, cuts each
partition into transactions of at most ``max_operations`` (Azure Table's limit is 100) and
``max_text`` characters of property text, never with two operations on one row, submits them one
after the other, then wakes the wave's writers, each with its own outcome. Writers that arrive
meanwhile wait for the next wave, which the first of them to wake leads.

What a writer is told (``commit``):
- it returns only once every transaction holding one of its operations was submitted and
  succeeded: its operations are then all durably stored;
- otherwise it raises ``CommitFailed``, caused by the error of a transaction that held its
  operations. A writer whose transactions all succeeded is not failed by anyone else's.
- A transaction that fails for what it holds (an entity refused, one already there: the
  transaction is atomic, so nothing of it was stored) and held several writers' operations is
  submitted again writer by writer, so that a bad record fails its own writer, not its wave.
- A failure saying that storage did not answer (``unreachable``: a dropped connection, a 5xx
  after the SDK's retries) fails the wave's transactions not yet tried as well, untried: each
  would only wait out the same retries in turn while every writer of the process waits.

Ordering: the partitions that ``later`` names (the audit log's by-hour copies) are submitted
after every other partition of their wave, and a writer already failed in its wave has its
operations taken out of the transactions still to come: a writer's ``later`` copies are stored
only if all its others were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Operation = tuple[str, dict[str, Any]]
Submit = Callable[[str, list[Operation]], None]

MAX_OPERATIONS = 100  # an entity-group transaction holds at most 100 operations
# Property text per transaction: Azure takes 4 MiB a request; JSON escaping may grow the text.
MAX_TEXT = 1_000_000


class CommitFailed(Exception):
    """Some of the writer's operations were not stored; ``__cause__`` is the transaction's error."""


@dataclass(eq=False)
class _Writer:
    operations: Sequence[Operation]
    unstored: int = 0  # transactions holding its operations not yet stored
    error: BaseException | None = None
    settled: bool = False


@dataclass(eq=False)
class _Transaction:
    partition: str
    operations: list[Operation] = field(default_factory=list)
    writers: list[_Writer] = field(default_factory=list)
    shares: list[list[Operation]] = field(default_factory=list)  # each writer's operations in it
    rows: set[str] = field(default_factory=set)
    text: int = 0

    def without_failed(self) -> _Transaction:
        """The same transaction without the operations of writers already failed."""
        kept = _Transaction(self.partition)
        for writer, share in zip(self.writers, self.shares, strict=True):
            if writer.error is None:
                kept.writers.append(writer)
                kept.shares.append(share)
                kept.operations.extend(share)
        return kept

    def add(self, writer: _Writer, operation: Operation, text: int) -> None:
        if not self.writers or self.writers[-1] is not writer:
            self.writers.append(writer)
            self.shares.append([])
            writer.unstored += 1
        self.operations.append(operation)
        self.shares[-1].append(operation)
        self.rows.add(operation[1]["RowKey"])
        self.text += text


def _text(entity: dict[str, Any]) -> int:
    return sum(len(value) for value in entity.values() if isinstance(value, str))


class GroupCommit:
    """Thread-safe; one per table client (one per process and configuration)."""

    def __init__(
        self,
        submit: Submit,
        *,
        unreachable: Callable[[BaseException], bool] = lambda error: False,
        max_operations: int = MAX_OPERATIONS,
        max_text: int = MAX_TEXT,
        later: Callable[[str], bool] = lambda partition: False,
    ) -> None:
        self._submit = submit
        self._later = later
        self._unreachable = unreachable
        self._max_operations = max_operations
        self._max_text = max_text
        self._changed = threading.Condition()
        self._queue: list[_Writer] = []
        self._committing = False

    def commit(self, operations: Sequence[Operation]) -> None:
        """Store ``operations`` (with whatever else is queued) before returning; raise
        ``CommitFailed`` if any of them may not be stored."""
        if not operations:
            return
        writer = _Writer(operations)
        wave: list[_Writer] = []
        with self._changed:
            self._queue.append(writer)
            while not writer.settled:
                if not self._committing:  # no commit running: this writer leads the next wave
                    wave, self._queue = self._queue, []
                    self._committing = True
                    break
                self._changed.wait()
        if wave:
            self._lead(wave)  # settles every writer of the wave, this one included
        if writer.error is not None:
            raise CommitFailed(f"not stored: {writer.error}") from writer.error

    def _lead(self, wave: list[_Writer]) -> None:
        down: BaseException | None = None  # storage did not answer: the rest fails untried
        try:
            for transaction in self._plan(wave):
                down = self._settle(transaction, down)
        finally:  # whatever happens, the writers wake and the next may lead (a stuck flag hangs all)
            with self._changed:
                for writer in wave:
                    if writer.error is None and writer.unstored:
                        writer.error = RuntimeError("the group commit was interrupted before storing these")
                    writer.settled = True
                self._committing = False
                self._changed.notify_all()

    def _settle(self, transaction: _Transaction, down: BaseException | None) -> BaseException | None:
        """Submit one transaction (unless storage is down) and tell its writers; returns ``down``.
        Writers failed by an earlier transaction of the wave are left out of it."""
        if any(writer.error is not None for writer in transaction.writers):
            transaction = transaction.without_failed()
            if not transaction.writers:
                return down
        error = down if down is not None else self._try(transaction.partition, transaction.operations)
        if error is None:
            for writer in transaction.writers:
                writer.unstored -= 1
            return None
        if down is not None or self._unreachable(error) or len(transaction.writers) == 1:
            for writer in transaction.writers:
                writer.error = writer.error or error
            return error if down is not None or self._unreachable(error) else None
        # Refused for what it holds, and atomic: nothing of it was stored. Each writer's share alone.
        for writer, share in zip(transaction.writers, transaction.shares, strict=True):
            error = down if down is not None else self._try(transaction.partition, share)
            if error is None:
                writer.unstored -= 1
                continue
            writer.error = writer.error or error
            if down is None and self._unreachable(error):
                down = error
        return down

    def _try(self, partition: str, operations: list[Operation]) -> BaseException | None:
        try:
            self._submit(partition, operations)
        except Exception as error:  # noqa: BLE001 - handed to the writers it concerns, raised there
            return error
        return None

    def _plan(self, wave: list[_Writer]) -> list[_Transaction]:
        """The wave's transactions: by partition, in order of first appearance (``later``
        partitions after the rest), each within the limits and with at most one operation per row."""
        last: dict[str, _Transaction] = {}
        planned: list[_Transaction] = []
        for writer in wave:
            for operation in writer.operations:
                entity = operation[1]
                partition, text = entity["PartitionKey"], _text(entity)
                transaction = last.get(partition)
                if (
                    transaction is None
                    or len(transaction.operations) >= self._max_operations
                    or (transaction.operations and transaction.text + text > self._max_text)
                    or entity["RowKey"] in transaction.rows
                ):
                    transaction = last[partition] = _Transaction(partition)
                    planned.append(transaction)
                transaction.add(writer, operation, text)
        return sorted(planned, key=lambda transaction: self._later(transaction.partition))  # stable
