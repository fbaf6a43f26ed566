"""The product's one promise, end to end: given a restricted Flexible scale set that autoscale
grows, the events ARM emits reach the function, and every public IP the set gave its own
instances is detached and deleted, hand-added VMs untouched, each write audited before and after.

Everything here is real but Azure itself: the azure-mgmt clients, the azure.functions event
objects, the indexed function app and Azurite; ARM is the local simulator.
"""

from __future__ import annotations

from typing import Any

import pytest
from estate import Estate

from localazure.host import event_grid_event, user_function
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}


def deliver_all(estate: Estate) -> list[dict[str, Any]]:
    events = estate.events()
    for event in events:
        estate.deliver(event)
    return events


def test_autoscaled_instances_are_stripped_and_hand_added_vms_untouched(estate: Estate) -> None:
    estate.create_set("web", tags=STRIP)
    estate.attach_by_hand("web", "app-vm-01")
    estate.attach_by_hand("web", "app-vm-02")
    deliver_all(estate)
    hand_nics = {
        n: estate.network.network_interfaces.get("rg-app", f"{n}-nic").etag
        for n in ("app-vm-01", "app-vm-02")
    }

    estate.scale("web", 4)
    writes_before = estate.arm_writes()
    events = deliver_all(estate)

    assert [e["data"]["operationName"] for e in events] == ["Microsoft.Compute/virtualMachineScaleSets/write"]
    vms = estate.vms("web")
    assert len(vms) == 6
    assert all(estate.public_ips_of(vm) == [] for vm in vms)
    estate.sim.wait_idle(30)  # ARM accepted the deletions (202); they complete on their own
    assert estate.public_ip_count() == 0, "detached public IPs are deleted"
    assert estate.arm_writes() - writes_before == 8, "one NIC PUT and one public IP DELETE per instance"
    for name, etag in hand_nics.items():
        assert estate.network.network_interfaces.get("rg-app", f"{name}-nic").etag == etag

    records = estate.audit()
    intents = [r for r in records if r.kind is RecordKind.INTENT]
    outcomes = {r.intent_id: r for r in records if r.kind is RecordKind.OUTCOME}
    assert sorted(r.action for r in intents) == ["delete-public-ip"] * 4 + ["detach-public-ip"] * 4
    for intent in intents:
        outcome = outcomes[intent.record_id]
        assert outcome.result == "succeeded" and outcome.arm_request_id
        assert intent.time <= outcome.time
        assert intent.origin == "scale-set" and len(intent.evidence) == 4
    assert len([r for r in records if r.kind is RecordKind.VERIFIED]) == 4


def test_the_same_event_twice_writes_once_and_records_a_duplicate(estate: Estate) -> None:
    estate.create_set("web", tags=STRIP)
    deliver_all(estate)
    estate.scale("web", 2)
    (event,) = estate.events()

    estate.deliver(event)
    writes = estate.arm_writes()
    estate.deliver(event)

    assert estate.arm_writes() == writes
    duplicates = [r for r in estate.audit() if r.kind is RecordKind.DUPLICATE]
    assert [r.event_id for r in duplicates] == [event["id"]]


def test_a_set_without_the_restriction_is_never_written(estate: Estate) -> None:
    estate.create_set("open")
    estate.scale("open", 3)
    writes = estate.arm_writes()
    deliver_all(estate)

    assert estate.arm_writes() == writes
    assert all(len(estate.public_ips_of(vm)) == 1 for vm in estate.vms("open"))
    decisions = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert decisions and all(
        d == "not restricted: scale set has no 'remediation.mode' tag and is in no configured scope"
        for d in decisions
    )


def test_audit_mode_records_the_findings_and_writes_nothing(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "audit"})
    estate.scale("web", 2)
    writes = estate.arm_writes()
    deliver_all(estate)

    assert estate.arm_writes() == writes
    findings = [r for r in estate.audit() if r.kind is RecordKind.DECISION and r.public_ip]
    # Both events (create, scale-out) find the same two instances: each reconcile reads live state.
    assert len({r.instance for r in findings}) == 2
    assert all(r.reason == "mode is audit: recorded only" and r.action == "none" for r in findings)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(data="a string, not an object"), "event 'data' is not a JSON object"),
        (lambda e: e["data"].pop("resourceUri"), "event has no 'data.resourceUri'"),
        (
            lambda e: e["data"].update(operationName="Microsoft.Storage/storageAccounts/write"),
            "is not handled",
        ),
        (lambda e: e["data"].update(resourceUri="/subscriptions/x/resourceGroups"), "is not of the form"),
    ],
    ids=["data-not-object", "no-resourceUri", "unhandled-operation", "unparseable-id"],
)
def test_a_malformed_event_is_recorded_as_rejected_and_nothing_is_written(
    estate: Estate, change: Any, reason: str
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (event,) = [
        e for e in estate.events() if e["data"]["operationName"].endswith("virtualMachineScaleSets/write")
    ][-1:]
    change(event)
    writes = estate.arm_writes()

    user_function("on_resource_event")(event_grid_event(event))  # returns normally

    assert estate.arm_writes() == writes
    (rejected,) = [r for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert reason in rejected.reason and rejected.event_id == event["id"]
