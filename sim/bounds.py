"""The lower bound a workload can reach under the simulator's active limits.

A benchmark's figure means little without the best any client could do against the same limits:
a storm remediated in 40 s is good against a bound of 35 s and poor against one of 5 s. The bound
here is that of a perfect client: it writes each NIC the instant both the NIC exists and a token
is free in every budget the write spends (ARM's write bucket and Microsoft.Network's), and deletes
each public IP the instant its detach is done and a delete token (and a network one) is free.
Network latency and the work of the simulator count as zero, so a real run is always above it.

Pure: times in seconds on any one clock; the simulator converts its buckets to real seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Budget:
    """A token bucket as it stands at time ``start``: its level and its refill per second."""

    level: float
    refill_per_s: float
    capacity: float
    start: float = 0.0

    def take(self, at: float) -> float:
        """Take one token no earlier than ``at``; when it was taken."""
        if at > self.start:
            self.level = min(self.capacity, self.level + (at - self.start) * self.refill_per_s)
            self.start = at
        if self.level < 1:
            wait = (1 - self.level) / self.refill_per_s
            self.start += wait
            self.level = 1.0
        self.level -= 1
        return self.start


@dataclass(frozen=True)
class StormBound:
    exposure_s: tuple[float, ...]  # per NIC: its creation to its detach, at best
    total_s: float  # from ``started`` to the last public IP deleted, at best

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.exposure_s)
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    @property
    def median_s(self) -> float:
        return statistics.median(self.exposure_s) if self.exposure_s else 0.0


def storm_bound(
    started: float,
    nic_created: Sequence[float],
    writes: Budget,
    deletes: Budget,
    network: Budget | None = None,
) -> StormBound:
    """One detach per NIC (created at ``nic_created``) and one delete per detached public IP.

    Tokens go first come, first served, as a perfect client spends them: NICs in the order they
    were created, each deletion as soon as its detach is done, the two interleaved in time where
    they share Microsoft.Network's budget."""
    created = sorted(nic_created)
    detached: list[float] = []
    deleted: list[float] = []
    while len(deleted) < len(created):
        write_at = _peek(writes, created[len(detached)]) if len(detached) < len(created) else None
        delete_at = _peek(deletes, detached[len(deleted)]) if len(deleted) < len(detached) else None
        if write_at is not None and (delete_at is None or write_at <= delete_at):
            at = writes.take(created[len(detached)])
            detached.append(max(at, network.take(at)) if network is not None else at)
        else:
            at = deletes.take(detached[len(deleted)])
            deleted.append(max(at, network.take(at)) if network is not None else at)
    exposure = tuple(d - c for d, c in zip(detached, created, strict=True))
    return StormBound(exposure, max(deleted, default=started) - started)


def _peek(budget: Budget, at: float) -> float:
    """When ``budget`` would give a token asked for at ``at``, without taking it."""
    return Budget(budget.level, budget.refill_per_s, budget.capacity, budget.start).take(at)
