"""Specification of the pure recovery judgements: given an unfinished write and what ARM shows now
about its target, this is the outcome recorded; given the set's write history, these leftovers
are deleted and these NICs put right."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import arm_docs as docs
import pytest

from remediation.model import ActionKind, Instance, ObservedSet, RecordKind, Result
from remediation.policy import Policy
from remediation.records import AuditRecord, Unfinished, unfinished_writes
from remediation.recovery import (
    TargetState,
    detached_earlier,
    judge,
    leftovers_to_delete,
    nics_to_repair,
    to_resolve,
)
from remediation.resource_ids import ResourceId
from remediation.resources import AutoscaleSetting, NetworkInterface, PublicIp, ScaleSet, VirtualMachine

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SET = docs.set_id("web")
NIC = docs.nic_id("web1234Nic-0a1b2c3d")
PIP = docs.public_ip_id("pip1")
VM = docs.vm_id("web_0a1b2c3d")


def intent(action: ActionKind, **fields: Any) -> AuditRecord:
    return AuditRecord(RecordKind.INTENT, event_id="e1", action=action.value, scale_set=SET, **fields)


def nic(public_ip: str | None = None, state: str = "Succeeded") -> NetworkInterface:
    doc = docs.nic("web1234Nic-0a1b2c3d", "web_0a1b2c3d", public_ip)
    doc["properties"]["provisioningState"] = state
    return NetworkInterface.from_arm(doc)


def scale_set(capacity: int = 2, state: str = "Succeeded", model_public_ip: bool = True) -> ScaleSet:
    doc = docs.uniform_set("web", capacity)
    doc["properties"]["provisioningState"] = state
    if not model_public_ip:
        for config in doc["properties"]["virtualMachineProfile"]["networkProfile"][
            "networkInterfaceConfigurations"
        ]:
            for ip in config["properties"]["ipConfigurations"]:
                ip["properties"].pop("publicIPAddressConfiguration", None)
    return ScaleSet.from_arm(doc)


def public_ip(
    attached: bool = False, state: str = "Succeeded", tags: dict[str, str] | None = None, nat: bool = False
) -> PublicIp:
    properties: dict[str, Any] = {"provisioningState": state, "ipAddress": "20.0.0.1"}
    if attached:
        properties["ipConfiguration"] = {"id": f"{docs.nic_id('other')}/ipConfigurations/ipconfig1"}
    if nat:
        properties["natGateway"] = {"id": f"{docs.PREFIX}/Microsoft.Network/natGateways/egress"}
    return PublicIp.from_arm({"id": PIP, "properties": properties, "tags": tags or {}})


def vm(state: str = "Succeeded", tags: dict[str, str] | None = None) -> VirtualMachine:
    doc = docs.flex_instance("web", "0a1b2c3d", "web1234Nic-0a1b2c3d")
    doc["properties"]["provisioningState"] = state
    doc["tags"] = tags or {}
    return VirtualMachine.from_arm(doc)


def uniform(instance: str, state: str = "Succeeded") -> VirtualMachine:
    doc = docs.uniform_instance("web", instance)
    doc["properties"]["provisioningState"] = state
    return VirtualMachine.from_arm(doc)


def uniform_nic(instance: str, public_ip: bool) -> NetworkInterface:
    return NetworkInterface.from_arm(docs.uniform_nic("web", instance, public_ip))


def autoscale(enabled: bool) -> AutoscaleSetting:
    setting = f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/a"
    return AutoscaleSetting.from_arm(
        {"id": setting, "properties": {"enabled": enabled, "targetResourceUri": SET}}
    )


DETACH = intent(ActionKind.DETACH_PUBLIC_IP, target=NIC, nic=NIC, public_ip=PIP)
UPGRADE = intent(
    ActionKind.UPGRADE_INSTANCES, target=SET, instance=f"{SET}/virtualMachines/0,{SET}/virtualMachines/1"
)


@pytest.mark.parametrize(
    ("written", "state", "result", "seen"),
    [
        (DETACH, TargetState(nic=nic()), Result.SUCCEEDED, "the NIC no longer carries pip1"),
        (DETACH, TargetState(nic=nic("pip1")), Result.FAILED, "the NIC still carries public IP pip1"),
        (DETACH, TargetState(nic=nic(state="Updating")), None, "the NIC is Updating"),
        (DETACH, TargetState(), Result.SKIPPED, "the NIC no longer exists"),
        (
            intent(ActionKind.DETACH_PUBLIC_IP, target=NIC, nic=NIC),
            TargetState(nic=nic()),
            None,
            "names no public IP",
        ),
        (
            intent(ActionKind.REPAIR_NIC, target=NIC),
            TargetState(nic=nic(state="Failed")),
            Result.FAILED,
            "Failed",
        ),
        (intent(ActionKind.REPAIR_NIC, target=NIC), TargetState(nic=nic()), Result.SUCCEEDED, "Succeeded"),
        (
            intent(ActionKind.DELETE_PUBLIC_IP, target=PIP),
            TargetState(),
            Result.SUCCEEDED,
            "no longer exists",
        ),
        (
            intent(ActionKind.DELETE_PUBLIC_IP, target=PIP),
            TargetState(public_ip=public_ip(state="Deleting")),
            None,
            "the public IP is Deleting",
        ),
        (
            intent(ActionKind.DELETE_PUBLIC_IP, target=PIP),
            TargetState(public_ip=public_ip()),
            Result.FAILED,
            "the public IP still exists",
        ),
        (intent(ActionKind.DELETE_VM, target=VM), TargetState(), Result.SUCCEEDED, "the VM no longer exists"),
        (intent(ActionKind.DELETE_VM, target=VM), TargetState(vm=vm()), Result.FAILED, "the VM still exists"),
        (intent(ActionKind.DELETE_VM, target=VM), TargetState(vm=vm("Deleting")), None, "the VM is Deleting"),
        (
            intent(ActionKind.SET_CAPACITY_ZERO, target=SET),
            TargetState(scale_set=scale_set(capacity=0)),
            Result.SUCCEEDED,
            "capacity is 0",
        ),
        (
            intent(ActionKind.SET_CAPACITY_ZERO, target=SET),
            TargetState(scale_set=scale_set(capacity=3)),
            Result.FAILED,
            "capacity is 3",
        ),
        # The model change is judged by the model, whatever the capacity (today's code said "applied"
        # for any set at capacity 0).
        (
            intent(ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL, target=SET),
            TargetState(scale_set=scale_set(capacity=0)),
            Result.FAILED,
            "model still gives each instance a public IP",
        ),
        (
            intent(ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL, target=SET),
            TargetState(scale_set=scale_set(capacity=2, model_public_ip=False)),
            Result.SUCCEEDED,
            "model gives no public IP",
        ),
        (
            intent(ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL, target=SET),
            TargetState(scale_set=scale_set(state="Updating")),
            None,
            "Updating",
        ),
        (
            UPGRADE,
            TargetState(
                scale_set=scale_set(capacity=0),
                instances=(uniform("0"), uniform("1"), uniform("2")),
                instance_nics=(uniform_nic("0", False), uniform_nic("1", False), uniform_nic("2", True)),
            ),
            Result.SUCCEEDED,
            "instances 0, 1 carry no public IP",  # instance 2 (exempt, say) was not upgraded
        ),
        (
            UPGRADE,
            TargetState(
                scale_set=scale_set(),
                instances=(uniform("0"), uniform("1")),
                instance_nics=(uniform_nic("0", False), uniform_nic("1", True)),
            ),
            Result.FAILED,
            "instances 1 still carry public IPs",
        ),
        (
            UPGRADE,
            TargetState(scale_set=scale_set(), instances=(uniform("0", "Updating"), uniform("1"))),
            None,
            "still being upgraded",
        ),
        (UPGRADE, TargetState(scale_set=scale_set(), instances=()), Result.SKIPPED, "none of the instances"),
        (
            intent(ActionKind.DISABLE_AUTOSCALE, target="x"),
            TargetState(autoscale=autoscale(False)),
            Result.SUCCEEDED,
            "disabled",
        ),
        (
            intent(ActionKind.DISABLE_AUTOSCALE, target="x"),
            TargetState(autoscale=autoscale(True)),
            Result.FAILED,
            "still enabled",
        ),
    ],
)
def test_each_kind_of_write_is_judged_from_what_arm_shows(
    written: AuditRecord, state: TargetState, result: Result | None, seen: str
) -> None:
    resolution = judge(written, state)
    assert resolution.result is result
    assert seen in resolution.seen


def test_an_unknown_outcome_is_resolved_at_once_and_a_missing_one_only_after_the_grace_period() -> None:
    young = AuditRecord(RecordKind.INTENT, time=NOW - timedelta(minutes=5), action="delete-vm")
    old = AuditRecord(RecordKind.INTENT, time=NOW - timedelta(minutes=20), action="delete-vm")
    answered_unknown = AuditRecord(RecordKind.INTENT, time=NOW - timedelta(seconds=5), action="delete-vm")
    closed = AuditRecord(RecordKind.INTENT, time=NOW - timedelta(hours=1), action="delete-vm")
    records = [
        young,
        old,
        answered_unknown,
        AuditRecord(RecordKind.OUTCOME, intent_id=answered_unknown.record_id, result="unknown"),
        closed,
        AuditRecord(RecordKind.OUTCOME, intent_id=closed.record_id, result="unknown"),
        AuditRecord(RecordKind.OUTCOME, intent_id=closed.record_id, result="succeeded"),
    ]

    unfinished = unfinished_writes(records, NOW)
    chosen = to_resolve(unfinished, NOW, timedelta(minutes=15))

    assert {u.intent.record_id for u in unfinished} == {
        young.record_id,
        old.record_id,
        answered_unknown.record_id,
    }
    assert [(u.intent.record_id, u.unknown) for u in chosen] == [
        (old.record_id, False),
        (answered_unknown.record_id, True),
    ]


# -- leftovers ---------------------------------------------------------------------------


def observed(
    instance_tags: dict[str, str] | None = None,
    nic_state: str = "Succeeded",
    nic_tags: dict[str, str] | None = None,
    hand_added: bool = False,
) -> ObservedSet:
    the_set = ScaleSet.from_arm(docs.scale_set("web", tags={"remediation.mode": "strip"}))
    the_nic = nic(state=nic_state)
    if nic_tags:
        the_nic = NetworkInterface.from_arm({**the_nic.raw, "tags": nic_tags})
    the_vm = vm(tags=instance_tags)
    if hand_added:
        doc = docs.hand_added_vm("web", "web_0a1b2c3d", "web1234Nic-0a1b2c3d")
        the_vm = VirtualMachine.from_arm(doc)
    return ObservedSet(the_set, (Instance(the_vm, (the_nic,)),), NOW)


HISTORY = [
    intent(ActionKind.DETACH_PUBLIC_IP, target=NIC, nic=NIC, instance=VM, public_ip=PIP),
]


def leftovers(
    live: PublicIp | None, observed_set: ObservedSet | None = None, policy: Policy | None = None
) -> tuple[list[str], list[str]]:
    deletions, left = leftovers_to_delete(
        detached_earlier(HISTORY, ResourceId.parse(SET)),
        {ResourceId.parse(PIP): live},
        observed_set or observed(),
        policy or Policy(),
        TODAY,
    )
    return [d.public_ip.name for d in deletions], left


def test_a_public_ip_a_detach_left_behind_is_deleted_after_a_live_recheck() -> None:
    assert leftovers(public_ip()) == (["pip1"], [])


def test_a_leftover_is_left_when_exempt_attached_again_gone_or_kept_by_policy() -> None:
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    names, left = leftovers(public_ip(), observed({"remediation.exempt-until": tomorrow}))
    assert names == [] and "left: exempt until" in left[0]
    names, left = leftovers(public_ip(tags={"remediation.exempt-until": tomorrow}))
    assert names == [] and "left: exempt until" in left[0]
    assert leftovers(public_ip(attached=True)) == ([], [])  # someone attached it: not ours to delete
    assert leftovers(public_ip(nat=True)) == ([], [])  # a NAT gateway holds it now
    assert leftovers(None) == ([], [])
    assert leftovers(public_ip(state="Deleting")) == ([], [])
    assert leftovers(public_ip(), policy=Policy(keep_detached_public_ips=True)) == ([], [])


def test_a_leftover_is_left_when_its_nic_is_exempt_or_its_instance_is_not_the_sets() -> None:
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    names, left = leftovers(public_ip(), observed(nic_tags={"remediation.exempt-until": tomorrow}))
    assert names == [] and "left: exempt until" in left[0]
    names, left = leftovers(public_ip(), observed(hand_added=True))  # no longer looks made by the set
    assert names == [] and "left: instance web_0a1b2c3d is unknown" in left[0]


def test_a_leftover_whose_instance_left_the_set_is_not_deleted() -> None:
    the_set = ScaleSet.from_arm(docs.scale_set("web", tags={"remediation.mode": "strip"}))
    names, left = leftovers(public_ip(), ObservedSet(the_set, (), NOW))
    assert names == [] and "no longer in the set" in left[0]


def test_a_nic_our_update_left_failed_is_repaired_and_others_are_not() -> None:
    failed = observed(nic_state="Failed")
    assert [n.name for n in nics_to_repair(failed, HISTORY, Policy(), TODAY)] == ["web1234Nic-0a1b2c3d"]
    assert nics_to_repair(failed, [], Policy(), TODAY) == [], "a NIC we never wrote is not ours to touch"
    assert nics_to_repair(observed(), HISTORY, Policy(), TODAY) == []


def test_unfinished_writes_report_unknown_separately() -> None:
    written = AuditRecord(RecordKind.INTENT, time=NOW, action="detach-public-ip")
    unknown = AuditRecord(RecordKind.OUTCOME, intent_id=written.record_id, result="unknown")
    assert unfinished_writes([written, unknown], NOW) == [Unfinished(written, True)]
