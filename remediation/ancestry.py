"""Which subscriptions are under the monitored management groups: read from ARM (the groups'
descendants), never from an event, and cached per process.

A tenant-wide deployment watches every subscription under its management groups, including ones
that join after it was configured. The policy decides (``Policy.monitors``, pure) from the set of
subscriptions found under the groups; this module keeps that set:

- fresh for ``ttl_s`` (10 minutes): a subscription moved out of a group is no longer monitored
  after that at the latest;
- a subscription not in the set (one that may just have joined) reads the groups again, at most
  once every ``miss_interval_s`` (a minute) whatever the number of such subscriptions and events, so
  a subscription that joins is accepted within a minute and a storm of events from unmonitored
  subscriptions costs one read a minute;
- shared by the threads of one process: one read at a time, the others wait for its answer, but
  no longer than ``wait_s`` (a worker's read retries for minutes under throttling; an Event Grid
  delivery has 30 s): past it they are told the groups are being read (an ``ArmError`` with no
  status, which intake treats as a slow read: the event goes to the work queue).

A read that fails raises (``ArmError``): the caller handles it as it handles any ARM read that
failed (intake: a refusal recorded, a slow read handed to the work queue, anything else raised so
Event Grid delivers again), and the cache keeps what it had, so the next ask reads again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from remediation.arm_errors import ArmError
from remediation.policy import Policy

TTL_S = 600.0
MISS_INTERVAL_S = 60.0
WAIT_S = 5.0

# The subscriptions (ids) under one management group, at any depth: ArmGateway's read.
ReadGroup = Callable[[str], Iterable[str]]


class GroupMembers:
    """The subscriptions under the monitored management groups, cached (see the module)."""

    def __init__(
        self,
        groups: Iterable[str],
        *,
        ttl_s: float = TTL_S,
        miss_interval_s: float = MISS_INTERVAL_S,
        wait_s: float = WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = tuple(sorted({group.lower() for group in groups}))
        self.ttl_s = ttl_s
        self.miss_interval_s = miss_interval_s
        self.wait_s = wait_s
        self._clock = clock
        self._lock = threading.Lock()
        self._members: frozenset[str] = frozenset()
        self._read_at: float | None = None  # when the members were last read (clock's time)
        self.reads = 0  # how many times the groups were read (each group once per read)

    def members(self, read: ReadGroup, *, looking_for: str = "") -> frozenset[str]:
        """Every subscription (lower case) under the groups: the cached set while it is fresh,
        else read again with ``read``. ``looking_for``: a subscription not in the cached set reads
        again too, if the last read is ``miss_interval_s`` old."""
        if not self.groups:
            return frozenset()
        wanted = looking_for.lower()
        if not self._lock.acquire(timeout=self.wait_s):
            raise ArmError(
                None, "ManagementGroupsBeingRead", "another read of the management groups is under way"
            )
        try:
            now = self._clock()
            age = float("inf") if self._read_at is None else now - self._read_at
            missed = bool(wanted) and wanted not in self._members
            if age >= self.ttl_s or (missed and age >= self.miss_interval_s):
                found = frozenset(
                    subscription.lower() for group in self.groups for subscription in read(group)
                )
                self._members, self._read_at = found, self._clock()
                self.reads += 1
            return self._members
        finally:
            self._lock.release()

    def monitors(self, policy: Policy, subscription: str, read: ReadGroup) -> bool:
        """``policy.monitors(subscription)``, with the groups read from ARM only when it needs them
        (the subscription is not listed and groups are monitored). Raises ``ArmError`` when they
        cannot be read."""
        if not policy.needs_ancestry(subscription):
            return policy.monitors(subscription)
        return policy.monitors(subscription, self.members(read, looking_for=subscription))
