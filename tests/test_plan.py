"""Specification of the pure planner: given an observed set and a mode, these are the writes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import arm_docs as docs

from remediation.model import ActionKind, Instance, Mode, ObservedSet, Origin
from remediation.plan import classify_origin, lone_model_strip, nic_without_public_ips, plan
from remediation.policy import Policy, restriction_for
from remediation.resources import NetworkInterface, ScaleSet, VirtualMachine

TODAY = date(2026, 11, 21)


def observed(*pairs: tuple[dict, list[dict]], tags: dict[str, str] | None = None) -> ObservedSet:  # type: ignore[type-arg]
    scale_set = ScaleSet.from_arm(docs.scale_set("web", tags=tags or {"remediation.mode": "strip"}))
    instances = tuple(
        Instance(VirtualMachine.from_arm(vm), tuple(NetworkInterface.from_arm(n) for n in nics))
        for vm, nics in pairs
    )
    return ObservedSet(scale_set, instances, datetime.now(UTC))


AUTOSCALED = (
    docs.flex_instance("web", "0a1b2c3d", "web1234Nic-0a1b2c3d"),
    [docs.nic("web1234Nic-0a1b2c3d", "web_0a1b2c3d", "pip1")],
)
HAND_ADDED = (
    docs.hand_added_vm("web", "app-vm-01", "app-vm-01-nic"),
    [docs.nic("app-vm-01-nic", "app-vm-01", "pip2")],
)
CLEAN = (
    docs.flex_instance("web", "99999999", "web5678Nic-99999999"),
    [docs.nic("web5678Nic-99999999", "web_99999999")],
)


def test_an_autoscaled_instance_with_a_public_ip_is_stripped_then_its_ip_deleted() -> None:
    result = plan(observed(AUTOSCALED, CLEAN), Mode.STRIP, Policy(), TODAY)
    assert [a.kind for a in result.actions] == [ActionKind.DETACH_PUBLIC_IP, ActionKind.DELETE_PUBLIC_IP]
    detach, delete = result.actions
    assert detach.target.name == "web1234Nic-0a1b2c3d"
    assert detach.if_match == 'W/"1"'
    assert delete.target.name == "pip1"
    assert len(result.findings) == 1 and result.findings[0].origin is Origin.SCALE_SET


def test_the_nic_body_keeps_everything_but_the_public_ip() -> None:
    nic = NetworkInterface.from_arm(docs.nic("n", "vm", "pip1"))
    body = nic_without_public_ips(nic)
    config = body["properties"]["ipConfigurations"][0]
    assert "publicIPAddress" not in config["properties"]
    assert config["properties"]["subnet"] == {"id": docs.SUBNET}
    assert body["etag"] == 'W/"1"' and body["location"] == docs.LOCATION
    assert "publicIPAddress" in nic.raw["properties"]["ipConfigurations"][0]["properties"], "input untouched"


def test_a_hand_added_vm_is_never_written_even_with_a_public_ip() -> None:
    result = plan(observed(HAND_ADDED), Mode.STRIP, Policy(), TODAY)
    assert result.actions == ()
    ((finding, reason),) = result.skipped
    assert finding.origin is Origin.HAND_ADDED and "only scale-set instances are remediated" in reason


def test_audit_mode_records_findings_and_writes_nothing() -> None:
    result = plan(observed(AUTOSCALED), Mode.AUDIT, Policy(), TODAY)
    assert result.actions == () and len(result.findings) == 1
    assert result.skipped[0][1] == "mode is audit: recorded only"


def test_origin_evidence_is_recorded_piece_by_piece() -> None:
    scale_set = ScaleSet.from_arm(docs.scale_set("web"))
    vm = VirtualMachine.from_arm(AUTOSCALED[0])
    origin, evidence = classify_origin(scale_set, vm, (NetworkInterface.from_arm(AUTOSCALED[1][0]),))
    assert origin is Origin.SCALE_SET
    assert evidence == (
        "vm name matches web_<8 hex>",
        "nic names are not prefixed by the vm name",
        "vm networkProfile has networkInterfaceConfigurations with networkApiVersion",
        "computerName 'weba1b2c3' starts with the set's prefix 'web'",
    )


def test_a_vm_named_like_an_instance_but_built_by_hand_is_unknown_and_left_alone() -> None:
    vm_doc = docs.hand_added_vm("web", "web_0badcafe", "web_0badcafe-nic")
    result = plan(
        observed((vm_doc, [docs.nic("web_0badcafe-nic", "web_0badcafe", "pip3")])),
        Mode.STRIP,
        Policy(),
        TODAY,
    )
    assert result.actions == ()
    assert result.findings[0].origin is Origin.UNKNOWN


def test_a_lookalike_vm_declaring_nic_configurations_of_its_own_is_unknown_and_left_alone() -> None:
    # Built by hand, named like an instance, its computerName from the set's prefix, and its NICs
    # made by Compute from networkInterfaceConfigurations it declares itself: not the set's names.
    vm_doc = docs.flex_instance("web", "0badcafe", "web9999Nic-0badcafe")
    own = docs.nic_configuration()
    own["name"] = "lookalike-nic"
    vm_doc["properties"]["networkProfile"]["networkInterfaceConfigurations"] = [own]
    result = plan(
        observed((vm_doc, [docs.nic("web9999Nic-0badcafe", "web_0badcafe", "pip4")])),
        Mode.STRIP,
        Policy(),
        TODAY,
    )
    assert result.actions == ()
    assert result.findings[0].origin is Origin.UNKNOWN
    assert (
        "vm networkProfile has networkInterfaceConfigurations with networkApiVersion, "
        "named unlike the set's profile" in result.findings[0].evidence
    )


def test_restriction_comes_from_the_mode_tag_and_a_typo_is_audit() -> None:
    def restriction(tags: dict[str, str]) -> tuple[Mode | None, str]:
        verdict = restriction_for(ScaleSet.from_arm(docs.scale_set("web", tags=tags)))
        return verdict.mode, verdict.reason

    assert restriction({}) == (None, "scale set has no 'remediation.mode' tag and is in no configured scope")
    assert restriction({"Remediation.Mode": "Strip"})[0] is Mode.STRIP
    mode, reason = restriction({"remediation.mode": "stirp"})
    assert mode is Mode.AUDIT and "'stirp' is not one of" in reason


def uniform(upgrade: str, *instances: tuple[str, bool], exempt: str = "") -> ObservedSet:
    scale_set = ScaleSet.from_arm(
        docs.uniform_set("web", len(instances), {"remediation.mode": "strip"}, upgrade)
    )
    built = []
    for instance_id, has_ip in instances:
        vm = docs.uniform_instance("web", instance_id)
        if instance_id == exempt:
            vm["tags"] = {"remediation.exempt-until": "2099-01-01"}
        built.append(
            Instance(
                VirtualMachine.from_arm(vm),
                (NetworkInterface.from_arm(docs.uniform_nic("web", instance_id, has_ip)),),
            )
        )
    return ObservedSet(scale_set, tuple(built), datetime.now(UTC))


def test_a_uniform_set_is_stripped_through_its_model_and_an_upgrade_of_the_violating_instances() -> None:
    result = plan(uniform("Manual", ("0", True), ("1", False), ("2", True)), Mode.STRIP, Policy(), TODAY)
    model, upgrade = result.actions
    assert model.kind is ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL and model.if_match == 'W/"set-1"'
    profile = model.body["properties"]["virtualMachineProfile"] if model.body else {}
    ip_config = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"][
        "ipConfigurations"
    ][0]
    assert "publicIPAddressConfiguration" not in ip_config["properties"]
    assert upgrade.kind is ActionKind.UPGRADE_INSTANCES and upgrade.body == {"instanceIds": ["0", "2"]}
    assert all(f.origin is Origin.SCALE_SET for f in result.findings)


def test_a_uniform_model_change_is_refused_when_it_would_reach_an_exempt_instance() -> None:
    observed = uniform("Automatic", ("0", True), ("1", True), exempt="1")
    result = plan(observed, Mode.STRIP, Policy(), TODAY)
    assert result.actions == ()
    assert any("upgrade policy is Automatic" in why for _, why in result.skipped)
    assert (
        len(
            plan(uniform("Manual", ("0", True), ("1", True), exempt="1"), Mode.STRIP, Policy(), TODAY).actions
        )
        == 2
    )


def test_a_uniform_model_with_a_public_ip_is_stripped_though_no_instance_carries_one() -> None:
    for observed in (uniform("Manual"), uniform("Manual", ("0", False), ("1", False)), uniform("Rolling")):
        the_plan = plan(observed, Mode.STRIP, Policy(), TODAY)
        assert the_plan.actions == ()  # nothing for the plan's findings to do
        body, reason = lone_model_strip(observed, the_plan, Policy(), TODAY)
        assert body is not None and "no instance needs remediating now" in reason
        ip_config = body["properties"]["virtualMachineProfile"]["networkProfile"][
            "networkInterfaceConfigurations"
        ][0]["properties"]["ipConfigurations"][0]
        assert "publicIPAddressConfiguration" not in ip_config["properties"]


def lone(observed: ObservedSet, mode: Mode = Mode.STRIP) -> tuple[object, str]:
    return lone_model_strip(observed, plan(observed, mode, Policy(), TODAY), Policy(), TODAY)


def test_a_lone_uniform_model_strip_is_left_to_the_plan_or_refused_where_it_would_reach_the_exempt() -> None:
    violating = uniform("Manual", ("0", True))
    assert lone(violating) == (None, "")
    exempt_only = uniform("Automatic", ("0", True), exempt="0")
    body, reason = lone(exempt_only)
    assert body is None and "upgrade policy is Automatic" in reason and reason.endswith("too (0)")
    manual_exempt = uniform("Manual", ("0", True), exempt="0")
    assert lone(manual_exempt)[0] is not None
    empty = uniform("Manual")
    for mode in (Mode.AUDIT, Mode.EVICT, Mode.SCALE_TO_ZERO):
        assert lone(empty, mode) == (None, "")


def test_an_automatic_model_change_waits_for_an_exempt_instance_without_a_public_ip_or_an_update() -> None:
    """Under an Automatic or Rolling policy the model change reaches every instance: an exempt one
    with no public IP (yet) is left alone too, and a set mid-update (the owner's rolling upgrade)
    is looked at again later."""
    body, reason = lone(uniform("Rolling", ("0", False), ("1", False), exempt="1"))
    assert body is None and reason.endswith("left alone too (1)")
    updating = uniform("Rolling", ("0", False))
    busy = dataclasses.replace(updating.scale_set, provisioning_state="Updating")
    body, reason = lone(dataclasses.replace(updating, scale_set=busy))
    assert body is None and "the set is Updating" in reason
    assert lone(uniform("Manual", ("0", False), exempt="0"))[0] is not None, "Manual: instances keep theirs"


def test_evicting_from_a_uniform_set_deletes_its_instances() -> None:
    result = plan(uniform("Manual", ("0", True), ("3", True)), Mode.EVICT, Policy(), TODAY)
    assert [(a.kind, a.target.names) for a in result.actions] == [
        (ActionKind.DELETE_VM, ("web", "0")),
        (ActionKind.DELETE_VM, ("web", "3")),
    ]
