"""Monitoring by management group, end to end through the local stand-in: a subscription that is
placed under a monitored group after the app is configured is swept and its events handled without
a settings change; one under no monitored group is refused as a subscription not listed always was;
the sweep over many subscriptions under a group asks Resource Graph at the group's scope, pages
through it and queues exactly the restricted sets; and when ARM cannot say which subscriptions are
under the groups, an event is handed on, never dropped.

The remediator holds its role at the group, as the management-group mode of infra/ assigns it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from localazure.stack import ROLE_ACTIONS_FILE
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind
from sim.faults import Faults

GROUP = "platform"
GRAPH = "Microsoft.ResourceGraph/resources"


def monitor_group(estate: Estate, monkeypatch: pytest.MonkeyPatch, group: str = GROUP, **policy: Any) -> str:
    """Create the group, give the remediator its role there, and configure the app to monitor it;
    a subscription not found under it reads the groups again at once (not after a minute), so a
    test needs no clock of the app's. Returns the remediator's role assignment at the group."""
    scope = estate.sim.create_management_group(group)
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    role = estate.sim.define_role(f"remediator at {group}", actions, assignable_scopes=[scope])
    assignment = estate.sim.grant(LoopbackCredential.APP_ID, role, scope)
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_management_groups": [group], **policy}))
    monkeypatch.setenv("MANAGEMENT_GROUP_REFRESH_SECONDS", "0")
    return assignment


def public_ips(estate: Estate, name: str) -> list[list[str]]:
    return [estate.public_ips_of(vm) for vm in estate.vms(name)]


def test_a_subscription_placed_under_a_monitored_group_later_is_swept_and_its_events_handled(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor_group(estate, monkeypatch)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    for event in estate.events():  # its subscription is in the tenant root group: not monitored
        estate.deliver(event)
    assert [len(ips) for ips in public_ips(estate, "web")] == [1]

    estate.sim.place_subscription(docs.SUB, GROUP)  # no settings change after this
    estate.sweep()
    estate.pump_rechecks()
    assert public_ips(estate, "web") == [[]], "swept"

    estate.scale("web", 3)
    for event in estate.events():
        estate.deliver(event)
    assert public_ips(estate, "web") == [[], [], []], "its events handled"
    rejected = [r.reason for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert rejected and all(reason == f"subscription {docs.SUB} is not monitored" for reason in rejected)


def test_a_subscription_under_no_monitored_group_is_refused_and_not_swept(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor_group(estate, monkeypatch)
    estate.sim.create_management_group("sandbox")
    estate.sim.place_subscription(docs.SUB, "sandbox")
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    writes = estate.arm_writes()
    for event in estate.events():
        estate.deliver(event)
    estate.sweep()

    assert estate.pump_rechecks() == 0, "the sweep found nothing to look at"
    assert estate.arm_writes() == writes
    rejected = [r.reason for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert rejected and all(reason == f"subscription {docs.SUB} is not monitored" for reason in rejected)


def subscription(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def seeded_set(sub: str, name: str, restricted: bool) -> dict[str, Any]:
    doc = json.loads(json.dumps(docs.scale_set(name)).replace(docs.SUB, sub))
    doc["tags"] = {"remediation.mode": "strip"} if restricted else {"team": "web"}
    return dict(doc)


def test_the_sweep_of_a_group_of_many_subscriptions_pages_resource_graph_and_queues_exactly_the_restricted(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediation import arm_rest
    from remediation.engine import remediator_for
    from remediation.settings import Settings

    monitor_group(estate, monkeypatch, monitored_subscriptions=[docs.SUB])
    estate.sim.create_management_group("platform-eu", GROUP)  # beneath: its subscriptions count
    estate.sim.create_management_group("elsewhere")
    seeded: list[dict[str, Any]] = []
    expected: set[str] = set()
    for index in range(21):  # 20 under the group (10 of them in its child), one elsewhere
        sub = subscription(index)
        estate.sim.place_subscription(
            sub, "elsewhere" if index == 20 else ("platform-eu" if index % 2 else GROUP)
        )
        for number in range(15):
            doc = seeded_set(sub, f"set-{number}", restricted=number % 7 == 0)
            seeded.append(doc)
            if number % 7 == 0 and index != 20:
                expected.add(doc["id"].lower())
    listed = seeded_set(docs.SUB, "listed", restricted=True)  # the listed subscription, outside the group
    expected.add(listed["id"].lower())
    estate.sim.seed({"value": [*seeded, listed]})
    estate.sim.grant(
        LoopbackCredential.APP_ID, "Reader", "/providers/Microsoft.Management/managementGroups/elsewhere"
    )
    estate.sim.advance_clock(estate.sim.settings.graph_lag_s)
    monkeypatch.setattr(arm_rest, "GRAPH_PAGE_SIZE", 50)  # 300 rows under the group: six pages
    requests = len(estate.sim.requests())

    result = remediator_for(Settings.from_env()).sweep()

    graph = [r for r in estate.sim.requests()[requests:] if r.resource_type == GRAPH]
    assert len(graph) == 7, "six pages at the group's scope, one for the listed subscription"
    assert (result.scale_sets, result.source) == (301, "resource graph")
    assert {set_id.value.lower() for set_id in result.restricted} == expected
    assert len(result.restricted) == len(expected) == 20 * 3 + 1
    assert result.queued == len(expected)


def test_when_the_groups_cannot_be_read_an_event_is_handed_to_the_queue_not_dropped(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor_group(estate, monkeypatch)
    estate.sim.place_subscription(docs.SUB, GROUP)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    events = estate.events()
    estate.sim.set_faults(
        Faults(rate_500=1.0, only_types=frozenset({"Microsoft.Management/managementGroups"}))
    )
    for event in events:
        estate.take_in(event)
    assert estate.sim.faults_injected > 0, "ARM did not answer the read of the group"
    estate.sim.set_faults(None)
    estate.pump_rechecks()

    audit = estate.audit()
    assert not [r for r in audit if r.kind is RecordKind.REJECTED]
    assert any("handed to the work queue" in r.reason for r in audit if r.kind is RecordKind.DECISION)
    assert public_ips(estate, "web") == [[]]


def test_a_sweep_by_hand_of_a_subscription_under_the_group_is_taken_and_one_elsewhere_refused(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from remediation.cli import main

    other = "11111111-2222-3333-4444-555555555555"
    monitor_group(estate, monkeypatch)
    estate.sim.place_subscription(docs.SUB, GROUP)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.events()  # lost: never delivered
    estate.sim.advance_clock(estate.sim.settings.graph_lag_s)

    assert main(["sweep", "--subscription", docs.SUB, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["restricted"] == [docs.set_id("web")]
    assert main(["sweep", "--subscription", other]) == 1
    assert f"refused: subscription {other} is not monitored" in capsys.readouterr().out


@pytest.mark.refusals
def test_when_arm_refuses_to_show_the_group_an_event_is_recorded_as_refused_not_dropped(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    assignment = monitor_group(estate, monkeypatch)
    estate.sim.place_subscription(docs.SUB, GROUP)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    estate.sim.revoke(assignment)  # its role at the subscription stays: only the group is unreadable
    for event in estate.events():
        estate.deliver(event)

    audit = estate.audit()
    assert not [r for r in audit if r.kind is RecordKind.REJECTED]
    refused = [r for r in audit if r.kind is RecordKind.ERROR]
    assert refused and all(
        "AuthorizationFailed" in r.error and "ARM refused a read" in r.reason for r in refused
    )
    assert [len(ips) for ips in public_ips(estate, "web")] == [1], "nothing written on a guess"


@pytest.fixture
def wired_only(local_azure: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    """An estate whose simulator delivers a subscription's events only once Event Grid is wired
    there (``events_need_wiring``), as in Azure: nothing else delivers them."""
    from estate import estate_on

    options = {"provision_delay_s": 0.2, "lro_duration_s": 0.05, "page_size": 5, "events_need_wiring": True}
    settings = {"RECHECK_DELAYS_SECONDS": "0,0,0", "WATCH_INTERVAL_SECONDS": "0"}
    with estate_on(local_azure, settings, **options) as (built, environment):
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        yield built


def test_a_subscription_emits_events_once_the_policy_wires_it_and_the_sweep_covers_it_before(
    wired_only: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Azure a subscription's events exist only once Event Grid is wired there: under the group,
    the deployIfNotExists policy's remediation task (or, for one that joins later, the policy
    itself) does it. Before, the sweep (the backstop) finds its restricted sets."""
    estate = wired_only
    monitor_group(estate, monkeypatch)
    estate.sim.place_subscription(docs.SUB, GROUP)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    assert estate.events() == [], "not wired yet: Event Grid delivers nothing from it"

    estate.sweep()
    estate.pump_rechecks()
    assert public_ips(estate, "web") == [[]], "swept before its wiring"

    def deploy(subscription: str) -> None:  # what the policy's template deploys, as infra does
        estate.local.deploy_events(subscription)

    estate.sim.register_event_wiring(GROUP, deploy)  # the policy assigned
    assert estate.sim.remediate_event_wiring(GROUP) == [docs.SUB]  # its remediation task
    estate.sim.wait_event_wiring()
    assert estate.sim.is_wired(docs.SUB)
    estate.scale("web", 3)
    events = estate.events()
    assert events, "wired: its events are delivered"
    for event in events:
        estate.deliver(event)
    assert public_ips(estate, "web") == [[], [], []], "its events handled, no settings change"
