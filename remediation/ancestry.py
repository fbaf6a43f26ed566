"""Which subscriptions are under the monitored management groups, and under those the policy's
scopes name: read from ARM (the groups' descendants), never from an event, and cached per process.

A tenant-wide deployment watches every subscription under its management groups, including ones
that join after it was configured, and may restrict a whole group. The policy decides
(``Policy.monitors``, ``restriction_for``: pure) from the subscriptions found under the groups;
this module keeps them:

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

A read that fails (``ArmError``) is not tried again for ``miss_interval_s`` if ARM refused it
(403, 404), for ``retry_failed_s`` (5 s) otherwise, so a refusal or an outage costs a read a minute
or every few seconds, not one per event. Meanwhile the groups as last read stand (a
subscription moved out stays monitored until a read succeeds); with none read yet, the failure is
raised to every caller, who handles it as any ARM read that failed (intake: a refusal recorded, a
slow read handed to the work queue, anything else raised so Event Grid delivers again).
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
# How long a failed read stands before the next: a refusal (403, 404) a minute (``miss_interval_s``),
# anything else (throttled, unavailable, timed out) this long.
RETRY_FAILED_S = 5.0

# The subscriptions (ids) under one management group, at any depth: ArmGateway's read.
ReadGroup = Callable[[str], Iterable[str]]


class GroupMembers:
    """The subscriptions under the monitored management groups, cached (see the module)."""

    def __init__(
        self,
        groups: Iterable[str],
        *,
        scoped: Iterable[str] = (),
        ttl_s: float = TTL_S,
        miss_interval_s: float = MISS_INTERVAL_S,
        wait_s: float = WAIT_S,
        retry_failed_s: float = RETRY_FAILED_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = tuple(sorted({group.lower() for group in groups}))  # the monitored ones
        # Every group read: the monitored ones and those a restricted scope names.
        self._read_groups = tuple(sorted(set(self.groups) | {group.lower() for group in scoped}))
        self.ttl_s = ttl_s
        self.miss_interval_s = miss_interval_s
        self.wait_s = wait_s
        self.retry_failed_s = min(retry_failed_s, miss_interval_s)  # never slower than a miss
        self._clock = clock
        self._lock = threading.Lock()
        self._by_group: dict[str, frozenset[str]] = {}
        self._read_at: float | None = None  # when the members were last read (clock's time)
        self._failure: tuple[float, ArmError] | None = None  # the last read's failure, and when
        self.reads = 0  # how many times the groups were read (each group once per read)
        self.failed_reads = 0

    @classmethod
    def for_policy(cls, policy: Policy, *, miss_interval_s: float = MISS_INTERVAL_S) -> GroupMembers:
        """The groups ``policy`` monitors and those its scopes name."""
        return cls(
            policy.monitored_management_groups, scoped=policy.scope_groups, miss_interval_s=miss_interval_s
        )

    def members(self, read: ReadGroup, *, looking_for: str = "") -> frozenset[str]:
        """Every subscription (lower case) under the monitored groups: the cached set while it is
        fresh, else read again with ``read``. ``looking_for``: a subscription not in the cached set
        reads again too, if the last read is ``miss_interval_s`` old."""
        by_group = self._read(read, looking_for, self.groups)
        return frozenset().union(*(by_group[group] for group in self.groups))

    def placed(self, policy: Policy, read: ReadGroup, *, looking_for: str = "") -> Policy:
        """``policy`` told which subscriptions are under the groups its scopes name (``Policy.placed``):
        itself when it names none, without a read."""
        if not policy.scope_groups:
            return policy
        return policy.placed(self._read(read, looking_for, tuple(sorted(policy.scope_groups))))

    def _read(self, read: ReadGroup, looking_for: str, asked: tuple[str, ...]) -> dict[str, frozenset[str]]:
        """The subscriptions under each group (the cached ones while fresh; see ``members``)."""
        if not asked:
            return {}
        wanted = looking_for.lower()
        if not self._lock.acquire(timeout=self.wait_s):
            raise ArmError(
                None, "ManagementGroupsBeingRead", "another read of the management groups is under way"
            )
        try:
            now = self._clock()
            self._read_groups = tuple(sorted(set(self._read_groups) | set(asked)))
            known = all(group in self._by_group for group in asked)
            age = float("inf") if self._read_at is None else now - self._read_at
            missed = bool(wanted) and not any(wanted in self._by_group.get(group, ()) for group in asked)
            if known and age < self.ttl_s and not (missed and age >= self.miss_interval_s):
                return self._answer(asked)
            if self._failure is not None and now - self._failure[0] < self._failure_stands(self._failure[1]):
                # A read failed a moment ago: not again for every event (a 403 or an outage would
                # cost a read each); what was read before stands meanwhile, else the failure does.
                if known:
                    return self._answer(asked)
                failed_at, error = self._failure
                raise ArmError(
                    error.status,
                    error.code,
                    f"{error.message} (the management groups' read {now - failed_at:.0f} s ago; "
                    f"read again {self._failure_stands(error):.0f} s after it)",
                    error.request_id,
                )
            try:
                found = {
                    group: frozenset(subscription.lower() for subscription in read(group))
                    for group in self._read_groups
                }
            except ArmError as error:
                self._failure = (self._clock(), error)
                self.failed_reads += 1
                if known:  # the groups as last read stand until a read succeeds
                    return self._answer(asked)
                raise
            self._by_group, self._read_at, self._failure = found, self._clock(), None
            self.reads += 1
            return self._answer(asked)
        finally:
            self._lock.release()

    def _failure_stands(self, error: ArmError) -> float:
        return self.miss_interval_s if error.refused else self.retry_failed_s

    def _answer(self, asked: tuple[str, ...]) -> dict[str, frozenset[str]]:
        return {group: self._by_group[group] for group in asked}

    def monitors(self, policy: Policy, subscription: str, read: ReadGroup) -> bool:
        """``policy.monitors(subscription)``, with the groups read from ARM only when it needs them
        (the subscription is not listed and groups are monitored). Raises ``ArmError`` when they
        cannot be read."""
        if not policy.needs_ancestry(subscription):
            return policy.monitors(subscription)
        return policy.monitors(subscription, self.members(read, looking_for=subscription))
