"""Which subscriptions are under the monitored management groups, and under those the policy's
scopes name: read from ARM (the groups' descendants), never from an event, and cached per process.

A tenant-wide deployment watches every subscription under its management groups, including ones
that join after it was configured, and may restrict a whole group. The policy decides
(``Policy.monitors``, ``restriction_for``: pure) from the subscriptions found under the groups;
this module keeps them, each group on its own (one that cannot be read spoils no other's):

- fresh for ``ttl_s`` (10 minutes): a subscription moved out of a group is no longer under it
  after that at the latest (the sweep reads the groups afresh, at most once a minute);
- a subscription under none of the groups asked about (one that may just have joined one) reads
  them again, at most once every ``miss_interval_s`` (a minute) whatever the number of such
  subscriptions and events, so a subscription that joins is taken within a minute and a storm of
  events from unmonitored subscriptions costs one read a minute;
- shared by the threads of one process: one read at a time. A caller with a fresh answer never
  waits; one whose groups were read before is answered with that while another thread reads; one
  with nothing read yet waits for the read under way, but no longer than ``wait_s`` (an Event
  Grid delivery has 30 s): past it it is told the groups are being read (an ``ArmError`` with no
  status, which intake treats as a slow read: the event goes to the work queue). The sweep waits
  too: it reads afresh.

A group's read that fails (``ArmError``) is not tried again for ``miss_interval_s`` if ARM refused
it (403, 404), for ``retry_failed_s`` (5 s) otherwise, so a refusal or an outage costs a read a
minute or every few seconds, not one per event. Meanwhile the group as last read stands (a
subscription moved out stays under it until a read succeeds); a group never read raises its
failure only to the callers whose answer depends on it (``Known.unread``; ``restriction_for``
judges a set without it where it could not change the verdict), who handle it as any ARM read
that failed (intake: a refusal recorded, a slow read handed to the work queue, anything else
raised so Event Grid delivers again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from remediation.arm_errors import ArmError
from remediation.policy import Policy
from remediation.resource_ids import ResourceId

TTL_S = 600.0
MISS_INTERVAL_S = 60.0
WAIT_S = 5.0
# How long a failed read stands before the next: a refusal (403, 404) a minute (``miss_interval_s``),
# anything else (throttled, unavailable, timed out) this long.
RETRY_FAILED_S = 5.0

# The subscriptions (ids) under one management group, at any depth: ArmGateway's read.
ReadGroup = Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class _Group:
    """One group as last read: its subscriptions (None: never read), when, and its last failure."""

    members: frozenset[str] | None = None
    read_at: float | None = None
    failed_at: float | None = None
    failure: ArmError | None = None


@dataclass(frozen=True)
class Known:
    """What is known of some groups: the subscriptions under each one read, and why each other
    one could not be (never read: its failure, or a read under way)."""

    members: Mapping[str, frozenset[str]]
    unread: Mapping[str, ArmError]

    def union(self) -> frozenset[str]:
        return frozenset().union(*self.members.values())

    def raise_unread(self) -> None:
        """Raise the first unread group's failure (a copy: the same one raised again and again
        would grow its traceback)."""
        for group, error in sorted(self.unread.items()):
            raise ArmError(
                error.status, error.code, f"management group {group}: {error.message}", error.request_id
            )


class GroupMembers:
    """The subscriptions under the monitored and scoped management groups, cached (the module)."""

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
        self.scoped = tuple(sorted({group.lower() for group in scoped}))
        self.ttl_s = ttl_s
        self.miss_interval_s = miss_interval_s
        self.wait_s = wait_s
        self.retry_failed_s = min(retry_failed_s, miss_interval_s)  # never slower than a miss
        self._clock = clock
        self._lock = threading.Lock()
        # Replaced whole under the lock, read without it: a caller sees one state or the next.
        self._state: dict[str, _Group] = {}
        self.reads = 0  # how many times a group was read
        self.failed_reads = 0

    @classmethod
    def for_policy(cls, policy: Policy, *, miss_interval_s: float = MISS_INTERVAL_S) -> GroupMembers:
        """The groups ``policy`` monitors and those its scopes name."""
        return cls(
            policy.monitored_management_groups, scoped=policy.scope_groups, miss_interval_s=miss_interval_s
        )

    def members(self, read: ReadGroup, *, looking_for: str = "", fresh: bool = False) -> frozenset[str]:
        """Every subscription (lower case) under the monitored groups (see ``known``). Raises the
        failure of a group never read, unless ``looking_for`` is found under another."""
        known = self.known(read, self.groups, looking_for=looking_for, fresh=fresh)
        found = known.union()
        if known.unread and not (looking_for and looking_for.lower() in found):
            known.raise_unread()
        return found

    def monitors(self, policy: Policy, subscription: str, read: ReadGroup) -> bool:
        """``policy.monitors(subscription)``, with the groups read from ARM only when it needs them
        (the subscription is not listed and groups are monitored). Raises ``ArmError`` when they
        are needed and cannot be read."""
        if not policy.needs_ancestry(subscription):
            return policy.monitors(subscription)
        return policy.monitors(subscription, self.members(read, looking_for=subscription))

    def placed(self, policy: Policy, read: ReadGroup, *, set_id: ResourceId | None = None) -> Policy:
        """``policy`` told which subscriptions are under the groups its scopes name
        (``Policy.placed``): itself when it names none, and without a read when ``set_id``'s
        verdict does not depend on them (a subscription's, group's or set's scope covers it).
        Groups that could not be read are left to the policy (``unread``: ``restriction_for``
        judges a tagged set without them, and raises for another); without a set (the sweep), the
        groups are read afresh."""
        if not policy.scope_groups:
            return policy
        if set_id is not None and not policy.needs_groups(set_id):
            return policy.placed({})
        asked = tuple(sorted(policy.scope_groups))
        looking_for = set_id.subscription if set_id is not None else ""
        known = self.known(read, asked, looking_for=looking_for, fresh=set_id is None)
        refused = frozenset(group for group, error in known.unread.items() if error.refused)
        return policy.placed(known.members, unread=frozenset(known.unread), refused=refused)

    def unread_error(self, groups: Iterable[str]) -> ArmError:
        """Why ``groups`` could not be read (the first one's failure), to raise as an ARM read's."""
        known = self._known(tuple(sorted(group.lower() for group in groups)))
        try:
            known.raise_unread()
        except ArmError as error:
            return error
        return ArmError(None, "ManagementGroupsBeingRead", "the management groups are being read")

    def known(
        self, read: ReadGroup, asked: Iterable[str], *, looking_for: str = "", fresh: bool = False
    ) -> Known:
        """What is known of the ``asked`` groups, read again where it is stale (``ttl_s``), where
        ``looking_for`` is under no group read (``miss_interval_s``), or with ``fresh`` (read at
        most ``miss_interval_s`` ago); a failed read stands its time before the next."""
        wanted = tuple(sorted({group.lower() for group in asked}))
        if not wanted:
            return Known({}, {})
        due = self._due(wanted, looking_for.lower(), fresh)
        if due:
            state = self._state
            answered = all(state.get(group, _Group()).members is not None for group in wanted)
            # A caller with an earlier answer does not wait for another's read; the sweep does.
            if self._lock.acquire(timeout=0 if answered and not fresh else self.wait_s):
                try:
                    self._read_due(read, self._due(wanted, looking_for.lower(), fresh))
                finally:
                    self._lock.release()
            elif not answered or fresh:
                raise ArmError(
                    None, "ManagementGroupsBeingRead", "another read of the management groups is under way"
                )
        return self._known(wanted)

    def _due(self, wanted: tuple[str, ...], looking_for: str, fresh: bool) -> list[str]:
        """The groups to read now (the module's rules)."""
        now, state = self._clock(), self._state
        # Under none of the groups asked about: it may just have joined one of them.
        missed = bool(looking_for) and not any(
            looking_for in (state.get(name, _Group()).members or ()) for name in wanted
        )
        due = []
        for name in wanted:
            group = state.get(name, _Group())
            if group.failed_at is not None and group.failure is not None:
                stands = self.miss_interval_s if group.failure.refused else self.retry_failed_s
                if now - group.failed_at < stands:
                    continue
            age = float("inf") if group.read_at is None else now - group.read_at
            if age >= self.ttl_s or ((missed or fresh) and age >= self.miss_interval_s):
                due.append(name)
        return due

    def _read_due(self, read: ReadGroup, due: list[str]) -> None:
        """Read each group due, each on its own (lock held)."""
        for name in due:
            before = self._state.get(name, _Group())
            try:
                members = frozenset(subscription.lower() for subscription in read(name))
            except ArmError as error:
                after = _Group(before.members, before.read_at, self._clock(), error)
                self.failed_reads += 1
            else:
                after = _Group(members, self._clock())
                self.reads += 1
            self._state = {**self._state, name: after}

    def _known(self, wanted: tuple[str, ...]) -> Known:
        state = self._state
        members: dict[str, frozenset[str]] = {}
        unread: dict[str, ArmError] = {}
        for name in wanted:
            group = state.get(name, _Group())
            if group.members is not None:
                members[name] = group.members
            else:
                unread[name] = group.failure or ArmError(
                    None, "ManagementGroupsBeingRead", "another read of the management groups is under way"
                )
        return Known(members, unread)
