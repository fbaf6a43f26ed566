"""Specification of action events: ARM raises ``ResourceActionSuccess`` (not a write event) for a
POST such as a scale set's ``manualUpgrade`` or a VM's ``reimage``, and the actions that create or
re-create instances are taken in like the writes: the owning set is looked at and reconciled.
Any other action, or an operation in the wrong kind of event, is rejected with its reason.
"""

from __future__ import annotations

from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from remediation.events import ACTION_SUCCESS, HANDLED_ACTIONS, WRITE_SUCCESS, parse_event
from remediation.model import RecordKind, Rejection, Trigger

STRIP = {"remediation.mode": "strip"}
SET_ID = docs.set_id("web")
VM_ID = f"{docs.PREFIX}/Microsoft.Compute/virtualMachines/web_1a2b3c4d"
INSTANCE_ID = f"{SET_ID}/virtualMachines/0"
ID_OF_TYPE = {
    "microsoft.compute/virtualmachinescalesets": SET_ID,
    "microsoft.compute/virtualmachinescalesets/virtualmachines": INSTANCE_ID,
    "microsoft.compute/virtualmachines": VM_ID,
}


def action_event(resource_id: str, operation: str) -> dict[str, Any]:
    event = docs.write_event(resource_id)
    event["eventType"] = ACTION_SUCCESS
    event["data"]["operationName"] = operation
    return event


@pytest.mark.parametrize("operation", sorted(HANDLED_ACTIONS))
def test_each_handled_action_is_a_trigger_for_the_resource_it_acted_on(operation: str) -> None:
    resource_type = operation.rsplit("/", 2)[0]
    trigger = parse_event(action_event(ID_OF_TYPE[resource_type], operation))
    assert isinstance(trigger, Trigger), trigger
    assert trigger.resource_id.type.lower() == resource_type
    assert trigger.event_type == ACTION_SUCCESS


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            action_event(SET_ID, "Microsoft.Compute/virtualMachineScaleSets/powerOff/action"),
            "operation 'Microsoft.Compute/virtualMachineScaleSets/powerOff/action' is not handled",
        ),
        (
            action_event(SET_ID, "Microsoft.Compute/virtualMachineScaleSets/write"),
            f"comes in {WRITE_SUCCESS} events, not {ACTION_SUCCESS}",
        ),
        (
            {
                **action_event(SET_ID, "Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action"),
                "eventType": WRITE_SUCCESS,
            },
            f"comes in {ACTION_SUCCESS} events, not {WRITE_SUCCESS}",
        ),
        (
            action_event(VM_ID, "Microsoft.Compute/virtualMachineScaleSets/reimage/action"),
            "is a Microsoft.Compute/virtualMachines, but the operation",
        ),
    ],
    ids=["unhandled-action", "write-in-action-event", "action-in-write-event", "type-mismatch"],
)
def test_an_action_event_that_does_not_fit_is_rejected_with_its_reason(
    event: dict[str, Any], reason: str
) -> None:
    rejection = parse_event(event)
    assert isinstance(rejection, Rejection)
    assert reason in rejection.reason


def test_a_manual_upgrade_raises_an_action_event_that_reconciles_the_uniform_set(estate: Estate) -> None:
    """Given a restricted Uniform set whose instances carry public IPs and whose write events were
    lost, a manualUpgrade's action event alone brings the set to no public IP."""
    estate.create_uniform_set("web", capacity=2, tags=STRIP)
    estate.events()  # lost: never delivered
    assert all(estate.uniform_public_ips("web").values())

    poller = estate.compute.virtual_machine_scale_sets.begin_update_instances(
        docs.GROUP, "web", {"instanceIds": ["0", "1"]}
    )
    poller.result()
    estate.sim.wait_idle(30)
    events = estate.events()

    assert [(e["eventType"], e["data"]["operationName"]) for e in events] == [
        (ACTION_SUCCESS, "Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action")
    ]
    estate.deliver(events[0])
    estate.sim.wait_idle(30)
    assert estate.uniform_public_ips("web") == {"0": [], "1": []}
    records = estate.audit()
    assert events[0]["id"] in {r.event_id for r in records if r.kind is RecordKind.RECEIVED}
    assert not [r for r in records if r.kind is RecordKind.REJECTED]


def test_a_reimage_action_on_an_instance_reconciles_its_flexible_set(estate: Estate) -> None:
    """A VM's reimage re-creates its OS disk in place: the action event names the VM, and the set
    that owns it is reconciled as for a write to the VM."""
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    estate.events()  # lost: never delivered
    (vm, _) = estate.vms("web")
    assert estate.public_ips_of(vm)

    estate.deliver(action_event(vm["id"], "Microsoft.Compute/virtualMachines/reimage/action"))
    estate.sim.wait_idle(30)

    assert all(estate.public_ips_of(v) == [] for v in estate.vms("web"))
