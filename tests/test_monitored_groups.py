"""Monitoring by management group, the pure part: the policy's ``monitored_management_groups``
(validated, each error naming the entry), the decision ``Policy.monitors`` takes from the
subscriptions found under the groups, and the cache of those subscriptions (``ancestry``): fresh
for ten minutes, read again for a subscription it does not hold at most once a minute, shared by
threads. Its clock is injected: nothing here waits."""

from __future__ import annotations

import json
import re
import threading

import pytest

from remediation.ancestry import GroupMembers
from remediation.arm_errors import ArmError
from remediation.policy import Policy, PolicyError, load_policy
from remediation.resource_ids import ResourceId

LISTED = "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10"
JOINED = "11111111-2222-3333-4444-555555555555"
OTHER = "99999999-8888-7777-6666-555555555555"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Groups:
    """ARM's answer for each group's descendants, counting the reads."""

    def __init__(self, **members: list[str]) -> None:
        self.members = members
        self.asked: list[str] = []
        self.failing: ArmError | None = None

    def __call__(self, group: str) -> list[str]:
        self.asked.append(group)
        if self.failing is not None:
            raise self.failing
        return self.members.get(group, [])


def test_groups_are_named_or_given_by_id_and_kept_lower_case() -> None:
    policy = load_policy(
        json.dumps(
            {
                "monitored_management_groups": [
                    "Platform",
                    "/providers/Microsoft.Management/managementGroups/Landing-Zones(EU)",
                ]
            }
        )
    )
    assert policy.monitored_management_groups == frozenset({"platform", "landing-zones(eu)"})


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ("platform", "monitored_management_groups: expected a list of management group names or ids"),
        (["ok", ""], "monitored_management_groups[1]: management group '': a name is 1-90 letters"),
        (["ok", "has space"], "monitored_management_groups[1]: management group 'has space'"),
        (["x" * 91], "monitored_management_groups[0]: management group 'xxx"),
        (["ends."], "monitored_management_groups[0]: management group 'ends.': a name is"),
        (
            ["/subscriptions/" + LISTED],
            "neither a name nor /providers/Microsoft.Management/managementGroups/",
        ),
        ([7], "monitored_management_groups[0]: management group 7 is not text"),
    ],
)
def test_a_bad_group_is_refused_naming_the_entry(groups: object, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(json.dumps({"monitored_management_groups": groups}), source="REMEDIATION_POLICY")


def test_a_subscription_is_monitored_if_listed_or_found_under_a_monitored_group() -> None:
    policy = Policy(
        monitored_subscriptions=frozenset({LISTED}), monitored_management_groups=frozenset({"platform"})
    )

    assert policy.monitors(LISTED)
    assert policy.monitors(JOINED.upper(), under_groups=frozenset({JOINED}))
    assert not policy.monitors(OTHER, under_groups=frozenset({JOINED}))
    assert not policy.needs_ancestry(LISTED), "a listed subscription needs no read of the groups"
    assert policy.needs_ancestry(OTHER)


def test_groups_alone_monitor_only_what_is_under_them_and_nothing_configured_monitors_all() -> None:
    groups_only = Policy(monitored_management_groups=frozenset({"platform"}))
    assert not groups_only.monitors(OTHER)
    assert groups_only.monitors(JOINED, under_groups=frozenset({JOINED}))
    assert Policy().monitors(OTHER) and not Policy().needs_ancestry(OTHER)


def test_the_groups_are_read_once_and_then_served_from_the_cache_for_ten_minutes() -> None:
    clock, arm = Clock(), Groups(platform=[JOINED.upper()], apps=[LISTED])
    members = GroupMembers(["Platform", "apps"], clock=clock)

    assert members.members(arm) == {JOINED, LISTED}
    clock.now += 599
    assert members.members(arm, looking_for=JOINED) == {JOINED, LISTED}
    assert arm.asked == ["apps", "platform"], "one read of each group"
    clock.now += 1
    members.members(arm)
    assert members.reads == 4, "each group read again once ten minutes old"


def test_a_subscription_not_found_reads_the_groups_again_at_most_once_a_minute() -> None:
    clock, arm = Clock(), Groups(platform=[])
    members = GroupMembers(["platform"], clock=clock)
    policy = Policy(monitored_management_groups=frozenset({"platform"}))

    assert not members.monitors(policy, JOINED, arm)
    arm.members["platform"] = [JOINED]  # placed under the group just after
    clock.now += 30
    for _ in range(50):  # a storm of its events within the minute
        assert not members.monitors(policy, JOINED, arm)
    assert members.reads == 1
    clock.now += 30
    assert members.monitors(policy, JOINED, arm), "accepted within a minute of joining"
    assert members.reads == 2
    clock.now += 120
    assert members.monitors(policy, JOINED, arm) and members.reads == 2, "a hit reads nothing"


def test_a_listed_subscription_never_reads_the_groups() -> None:
    arm = Groups(platform=[JOINED])
    members = GroupMembers(["platform"], clock=Clock())
    policy = Policy(
        monitored_subscriptions=frozenset({LISTED}), monitored_management_groups=frozenset({"platform"})
    )
    assert members.monitors(policy, LISTED, arm) and arm.asked == []


@pytest.mark.parametrize(
    ("failure", "stands_s"),
    [(ArmError(503, "ServiceUnavailable", "try later"), 5), (ArmError(403, "AuthorizationFailed", "no"), 60)],
)
def test_a_read_that_fails_raises_and_is_not_tried_again_for_every_event(
    failure: ArmError, stands_s: float
) -> None:
    """A refusal stands a minute, anything else a few seconds: a storm of events from the group's
    subscriptions costs a read per interval, not one each."""
    clock, arm = Clock(), Groups(platform=[JOINED])
    arm.failing = failure
    members = GroupMembers(["platform"], clock=clock)
    policy = Policy(monitored_management_groups=frozenset({"platform"}))

    for _ in range(20):
        with pytest.raises(ArmError) as raised:
            members.monitors(policy, JOINED, arm)
        assert (raised.value.status, raised.value.code) == (failure.status, failure.code)
    assert arm.asked == ["platform"], "one read, its failure remembered"
    arm.failing = None
    clock.now += stands_s - 1
    with pytest.raises(ArmError):
        members.monitors(policy, JOINED, arm)
    clock.now += 1
    assert members.monitors(policy, JOINED, arm), "read again once the failure has stood its time"
    assert len(arm.asked) == 2 and members.failed_reads == 1


def test_when_a_fresh_read_fails_the_groups_as_last_read_stand() -> None:
    clock, arm = Clock(), Groups(platform=[JOINED])
    members = GroupMembers(["platform"], clock=clock)
    policy = Policy(monitored_management_groups=frozenset({"platform"}))
    assert members.monitors(policy, JOINED, arm)

    clock.now += 600  # stale: read again, and the read fails
    arm.failing = ArmError(503, "ServiceUnavailable", "try later")
    assert members.monitors(policy, JOINED, arm), "a subscription read under the group stays monitored"
    assert not members.monitors(policy, OTHER, arm)
    assert arm.asked == ["platform", "platform"] and members.failed_reads == 1


def test_threads_asking_at_once_share_one_read() -> None:
    release = threading.Event()
    arm = Groups(platform=[JOINED])

    def slow(group: str) -> list[str]:
        release.wait(5)
        return arm(group)

    members = GroupMembers(["platform"], clock=Clock())
    answers: list[frozenset[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(members.members(slow))) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert answers == [frozenset({JOINED})] * 8 and members.reads == 1


@pytest.mark.parametrize(
    "descendant_type", ["Microsoft.Management/managementGroups/subscriptions", "/subscriptions"]
)
def test_a_groups_subscriptions_are_read_whichever_type_the_descendants_carry(
    descendant_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec's example types a subscription descendant one way, its schema the other."""
    from remediation.arm import ArmGateway

    sub = "00000000-0000-0000-0000-00000000a001"
    answer = [
        {
            "id": "/providers/Microsoft.Management/managementGroups/child",
            "type": "Microsoft.Management/managementGroups",
            "name": "child",
        },
        {"id": f"/subscriptions/{sub}", "type": descendant_type, "name": sub},
        {"id": "/subscriptions/not-a-guid", "type": descendant_type, "name": "not-a-guid"},
    ]
    monkeypatch.setattr(ArmGateway, "_pages", lambda self, *args, **kwargs: answer)
    gateway = ArmGateway.__new__(ArmGateway)
    assert gateway.management_group_subscriptions("platform") == [sub]


def test_a_caller_waits_for_a_read_under_way_only_so_long_then_is_told_it_is_slow() -> None:
    """A worker's read may retry for minutes under throttling; an Event Grid delivery must hand
    its event to the queue instead of waiting past its 30 s."""
    started, release = threading.Event(), threading.Event()
    arm = Groups(platform=[JOINED])

    def throttled(group: str) -> list[str]:
        started.set()
        release.wait(5)
        return arm(group)

    members = GroupMembers(["platform"], clock=Clock(), wait_s=0.05)
    first: list[frozenset[str]] = []
    reader = threading.Thread(target=lambda: first.append(members.members(throttled)))
    reader.start()
    assert started.wait(5)
    with pytest.raises(ArmError) as raised:
        members.members(arm)
    assert raised.value.status is None and raised.value.code == "ManagementGroupsBeingRead"
    release.set()
    reader.join(5)
    assert first == [frozenset({JOINED})] and members.reads == 1


def test_a_group_that_cannot_be_read_spoils_no_other_groups_answer() -> None:
    """Each group is read on its own: a scope naming a group the app may not read (or a typo)
    leaves the monitored group's subscriptions known."""
    clock = Clock()
    arm = Groups(platform=[JOINED])

    def read(group: str) -> list[str]:
        if group == "mg-prdo":
            raise ArmError(403, "AuthorizationFailed", "no access to mg-prdo")
        return arm(group)

    members = GroupMembers(["platform"], scoped=["mg-prdo"], clock=clock)
    policy = Policy(monitored_management_groups=frozenset({"platform"}))
    assert members.monitors(policy, JOINED, read)
    known = members.known(read, ["platform", "mg-prdo"])
    assert dict(known.members) == {"platform": frozenset({JOINED})}
    assert known.unread["mg-prdo"].code == "AuthorizationFailed"


def test_the_sweep_reads_the_groups_afresh_once_they_are_a_minute_old() -> None:
    """An event's answer may be ten minutes old; the sweep, the backstop, reads again (at most
    once a minute), so a subscription moved under a restricted group is judged by its new place."""
    clock, arm = Clock(), Groups(prod=[])
    members = GroupMembers([], scoped=["prod"], clock=clock)
    policy = load_policy(
        json.dumps(
            {"scopes": [{"scope": "/providers/Microsoft.Management/managementGroups/prod", "mode": "strip"}]}
        )
    )
    assert members.placed(policy, arm).group_members == {"prod": frozenset()}
    arm.members["prod"] = [JOINED]  # moved under it
    clock.now += 30
    assert members.placed(policy, arm).group_members == {"prod": frozenset()}, "read 30 s ago"
    clock.now += 30
    assert members.placed(policy, arm).group_members == {"prod": frozenset({JOINED})}
    assert arm.asked == ["prod", "prod"]


def test_while_one_thread_reads_a_caller_with_an_earlier_answer_is_answered_at_once() -> None:
    """Only a caller with nothing read yet waits for the read under way (and then only so long)."""
    clock = Clock()
    started, release = threading.Event(), threading.Event()
    arm = Groups(platform=[JOINED])
    members = GroupMembers(["platform"], clock=clock, wait_s=0.05)
    assert members.members(arm) == {JOINED}
    clock.now += 600  # stale: the next caller reads again

    def slow(group: str) -> list[str]:
        started.set()
        release.wait(5)
        return arm(group)

    reader = threading.Thread(target=lambda: members.members(slow))
    reader.start()
    assert started.wait(5)
    try:
        assert members.members(arm) == {JOINED}, "the answer read before, not a wait"
        assert arm.asked == ["platform"], "and no second read"
    finally:
        release.set()
        reader.join(5)
    assert members.reads == 2


def test_a_subscription_moved_into_a_restricted_group_inside_a_monitored_one_is_placed_in_a_minute() -> None:
    """Already under the monitored group, it is not under the restricted one it just joined: that
    one is read again as for any subscription not found (at most once a minute)."""
    clock, arm = Clock(), Groups(corp=[JOINED], prod=[])
    members = GroupMembers(["corp"], scoped=["prod"], clock=clock)
    prod = "/providers/Microsoft.Management/managementGroups/prod"
    policy = load_policy(json.dumps({"scopes": [{"scope": prod, "mode": "strip"}]}))
    set_id = ResourceId.parse(
        f"/subscriptions/{JOINED}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
    )
    assert members.placed(policy, arm, set_id=set_id).group_members == {"prod": frozenset()}
    arm.members["prod"] = [JOINED]  # moved into the restricted group
    clock.now += 60
    assert members.placed(policy, arm, set_id=set_id).group_members == {"prod": frozenset({JOINED})}
