"""The audit ledger's storage: append blobs in ``<LEDGER_CONTAINER>``, which infra puts under a
time-based immutability (WORM) policy that still allows appends (``allowProtectedAppendWrites``):
what is appended can be neither changed nor deleted until the policy's period has passed.

``audit.AuditLog`` appends the lines of each hourly partition's share of a wave, after the table
has stored it and before the store returns (``integrity`` says what a line holds and why this
order); a failed append fails the store like a failed table write (``AuditUnavailable``: no ARM
write, the event is delivered again).

Layout: ``YYYY/MM/DD/HH/<n>.jsonl``, the hour of the records' hourly partition, ``n`` from
000000. An append blob takes at most 50,000 blocks of at most 4 MiB each: the lines of one call
go as few blocks as fit (a line is never split), and once a blob holds ``max_blocks`` blocks the
next append goes to ``n + 1``. A blob is created with ``If-None-Match: *``, so hosts that roll to
the same blob at once never truncate each other's; each host finds the hour's last blob by
listing the hour once, and follows the rolls it makes or meets (``BlockCountExceedsLimit``).

An append that fails fails its store, and the handling stores its records again (its last flush,
or the event's redelivery, which may not come if that flush also fails). Their table writes are
stored, though, so their lines are also kept here (the backlog, at most ``MAX_BACKLOG_LINES``, the
oldest dropped) and appended before the process's next lines: a storage outage then leaves no
record missing from the ledger once storage answers again, unless the process ends first.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remediation.journal import AuditUnavailable

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties, ContainerClient

MAX_BLOCKS_PER_BLOB = 50_000  # Azure's limit for an append blob
MAX_BLOCK_BYTES = 4 * 1024 * 1024  # Azure's limit for one Append Block
# Roll before the limit: hosts that have not yet seen the roll may still append a few blocks.
ROLL_AT_BLOCKS = MAX_BLOCKS_PER_BLOB - 1_000
# Lines whose records the table holds but whose append failed, kept for the process's next append.
MAX_BACKLOG_LINES = 100_000


class LedgerUnavailable(AuditUnavailable):
    """The ledger could not be appended to or read."""


def blob_prefix(partition: str) -> str:
    """The folder of an hourly partition's lines: ``h-2026120313`` -> ``2026/12/03/13/``."""
    hour = partition.removeprefix("h-")
    if len(hour) != 10 or not hour.isdigit():
        raise ValueError(f"{partition!r} is not an hourly partition")
    return f"{hour[:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}/"


def blob_name(partition: str, number: int) -> str:
    return f"{blob_prefix(partition)}{number:06d}.jsonl"


def blocks(lines: Sequence[str], max_bytes: int = MAX_BLOCK_BYTES) -> list[bytes]:
    """The lines, each ending in a newline, packed into as few blocks of at most ``max_bytes`` as
    keep every line whole (a line longer than ``max_bytes`` is a block of its own)."""
    packed: list[bytes] = []
    current = bytearray()
    for line in lines:
        data = line.encode() + b"\n"
        if current and len(current) + len(data) > max_bytes:
            packed.append(bytes(current))
            current = bytearray()
        current += data
    if current:
        packed.append(bytes(current))
    return packed


def _once(pending: list[tuple[str, Sequence[str]]]) -> list[tuple[str, Sequence[str]]]:
    """The pending appends without a line twice (a failed batch stored again repeats its backlog)."""
    seen: set[str] = set()
    kept: list[tuple[str, Sequence[str]]] = []
    for partition, lines in pending:
        fresh = [line for line in lines if line not in seen]
        seen.update(fresh)
        if fresh:
            kept.append((partition, fresh))
    return kept


class Ledger:
    """Appends lines to, and reads them back from, the ledger container. Thread-safe."""

    def __init__(
        self,
        container: ContainerClient,
        *,
        roll_at_blocks: int = ROLL_AT_BLOCKS,
        max_block_bytes: int = MAX_BLOCK_BYTES,
    ) -> None:
        self._container = container
        self._roll_at = roll_at_blocks
        self._max_block_bytes = max_block_bytes
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}  # hourly partition -> the blob number appended to
        self._backlog: list[tuple[str, Sequence[str]]] = []  # (partition, lines) not yet appended
        self._ready = False

    @property
    def name(self) -> str:
        return str(self._container.container_name)

    def append(self, partition: str, lines: Sequence[str]) -> None:
        """Append the lines of an hourly partition's records; raise LedgerUnavailable if any
        block of them may not be stored (some may have been: a store again appends them again)."""
        from azure.core.exceptions import AzureError

        if not lines:
            return
        with self._lock:
            pending, self._backlog = _once([*self._backlog, (partition, lines)]), []
        done = 0
        try:
            for held_partition, held in pending:
                for block in blocks(held, self._max_block_bytes):
                    self._append_block(held_partition, block)
                done += 1
        except AzureError as error:
            self._keep(pending[done:])
            raise LedgerUnavailable(f"ledger {self.name} was not appended to: {error}") from error

    @property
    def backlog(self) -> int:
        """Lines kept for the next append (their append failed)."""
        with self._lock:
            return sum(len(lines) for _, lines in self._backlog)

    def _keep(self, unappended: list[tuple[str, Sequence[str]]]) -> None:
        with self._lock:
            kept = [*self._backlog, *unappended]
            while sum(len(lines) for _, lines in kept) > MAX_BACKLOG_LINES and len(kept) > 1:
                kept.pop(0)
            self._backlog = kept

    def _append_block(self, partition: str, block: bytes) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

        number = self._number(partition)
        for _ in range(8):  # a few rolls or creations at most; more means something else is wrong
            blob = self._container.get_blob_client(blob_name(partition, number))
            try:
                answer = blob.append_block(block)
            except ResourceNotFoundError:  # the blob (or the container) is not there yet
                self._ensure_container()
                with contextlib.suppress(ResourceExistsError):  # another host created it first
                    blob.create_append_blob(match_condition=MatchConditions.IfMissing)
                continue
            except HttpResponseError as error:
                if getattr(error, "error_code", None) != "BlockCountExceedsLimit":
                    raise
                number = self._rolled(partition, number)
                continue
            if int(str(answer.get("blob_committed_block_count") or 0)) >= self._roll_at:
                self._rolled(partition, number)
            return
        raise LedgerUnavailable(f"ledger blob {blob_name(partition, number)} cannot be appended to")

    def _number(self, partition: str) -> int:
        with self._lock:
            known = self._current.get(partition)
        if known is not None:
            return known
        names = [blob.name for blob in self._list(blob_prefix(partition))]
        stems = (name.rsplit("/", 1)[-1].removesuffix(".jsonl") for name in names)
        numbers = [int(stem) for stem in stems if stem.isdigit()]
        found = max(numbers, default=0)
        with self._lock:
            return self._current.setdefault(partition, found)

    def _rolled(self, partition: str, full: int) -> int:
        with self._lock:
            number = max(self._current.get(partition, 0), full + 1)
            self._current[partition] = number
            return number

    def _list(self, prefix: str) -> Iterator[BlobProperties]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            yield from self._container.list_blobs(name_starts_with=prefix)
        except ResourceNotFoundError:  # no container yet: no lines
            return

    def _ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        if self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        self._ready = True

    def lines(self, since: datetime, until: datetime) -> Iterator[str]:
        """Every line of the hours [since, until] (UTC), hour by hour, each hour's blobs in order."""
        from azure.core.exceptions import AzureError

        hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        try:
            while hour <= until:
                partition = f"h-{hour:%Y%m%d%H}"
                names = sorted(blob.name for blob in self._list(blob_prefix(partition)))
                for name in names:
                    text = self._container.download_blob(name).readall().decode()
                    yield from (line for line in text.split("\n") if line)
                hour += timedelta(hours=1)
        except AzureError as error:
            raise LedgerUnavailable(f"ledger {self.name} cannot be read: {error}") from error
