"""Scope safety: over randomly generated estates and policies, the plan never writes to anything
but the violating instances the policy covers: never an unrestricted set, a hand-added or unclear
instance (unless the policy widens the origins), or an exempt VM or NIC; and scale-to-zero never
when a VM the set did not create could go (unless allowed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import arm_docs as docs
from hypothesis import given
from hypothesis import strategies as st

from remediation.model import ActionKind, Instance, Mode, ObservedSet, Origin
from remediation.plan import classify_origin, instance_exemption, lone_model_strip, plan
from remediation.policy import Policy, Scope, restriction_for
from remediation.resources import NetworkInterface, ScaleSet, VirtualMachine

SEVERITY = {Mode.AUDIT: 0, Mode.STRIP: 1, Mode.EVICT: 2, Mode.SCALE_TO_ZERO: 3}

TODAY = date(2026, 11, 21)
KINDS = ("autoscaled", "hand-added", "lookalike", "lookalike with its own NIC configurations")
EXEMPTIONS = (None, "2026-12-31", "9999-12-31", "2020-01-01", "not a date")


SCOPES = (
    f"/subscriptions/{docs.SUB}",
    f"/subscriptions/{docs.SUB}/resourceGroups/{docs.GROUP}",
    docs.set_id("web"),
)
OTHER_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Configured scopes (or none) in any mode, tags relaxing them or not, exemptions allowed in
    some scopes or none, limited to some days, and this subscription monitored or another one."""
    scopes = tuple(
        Scope(path.lower(), draw(st.sampled_from(list(Mode))))
        for path in draw(st.lists(st.sampled_from(SCOPES), max_size=2, unique=True))
    )
    return Policy(
        scopes=scopes,
        tags_may_relax=draw(st.booleans()),
        remediate_origins=frozenset(draw(st.sets(st.sampled_from(list(Origin)), min_size=1))),
        keep_detached_public_ips=draw(st.booleans()),
        allow_deleting_hand_added=draw(st.booleans()),
        monitored_subscriptions=draw(
            st.sampled_from([frozenset(), frozenset({docs.SUB}), frozenset({OTHER_SUBSCRIPTION})])
        ),
        exemption_max_days=draw(st.sampled_from([0, 7, 30])),
        exemptions_allowed_in=tuple(p.lower() for p in draw(st.lists(st.sampled_from(SCOPES), max_size=1))),
    )


def lookalike_with_its_own_nic_configurations(suffix: str, nic_name: str) -> dict[str, Any]:
    """Built by hand, named and computer-named like an instance, its NIC made by Compute from a
    networkInterfaceConfigurations of its own (named unlike the set's profile)."""
    vm_doc = docs.flex_instance("web", suffix, nic_name)
    vm_doc["properties"]["networkProfile"]["networkInterfaceConfigurations"][0]["name"] = "own-nic"
    return vm_doc


@st.composite
def estates(draw: st.DrawFn) -> tuple[ObservedSet, Policy]:
    tag = draw(st.sampled_from([None, "audit", "strip", "evict", "scale-to-zero", "Strip", "bogus", "strp"]))
    tags = {"remediation.mode": tag} if tag else {}
    if draw(st.booleans()):
        return uniform_estate(draw, tags), draw(policies())
    scale_set = ScaleSet.from_arm(docs.scale_set("web", capacity=3, tags=tags))
    instances = []
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(KINDS))
        suffix = f"{index:08x}"
        nic_name = f"web{index}Nic-{suffix}" if kind == "autoscaled" else f"vm{index}-nic"
        if kind == "autoscaled":
            vm_doc: dict[str, Any] = docs.flex_instance("web", suffix, nic_name)
        elif kind == "hand-added":
            vm_doc = docs.hand_added_vm("web", f"vm{index}", nic_name)
        elif kind == "lookalike":  # named like an instance, built by hand
            vm_doc = docs.hand_added_vm("web", f"web_{suffix}", nic_name)
        else:
            vm_doc = lookalike_with_its_own_nic_configurations(suffix, nic_name)
        vm_name = vm_doc["name"]
        nic_doc = docs.nic(nic_name, vm_name, f"pip{index}" if draw(st.booleans()) else None)
        if (until := draw(st.sampled_from(EXEMPTIONS))) is not None:
            target = vm_doc if draw(st.booleans()) else nic_doc
            target["tags"] = {"remediation.exempt-until": until}
        instances.append(Instance(VirtualMachine.from_arm(vm_doc), (NetworkInterface.from_arm(nic_doc),)))
    return ObservedSet(scale_set, tuple(instances), datetime.now(UTC)), draw(policies())


def uniform_estate(draw: st.DrawFn, tags: dict[str, str]) -> ObservedSet:
    """A Uniform set (its model with or without a public IP per instance) and its instances."""
    model_has_public_ip = draw(st.booleans())
    set_doc = docs.uniform_set(
        "web", 3, tags, upgrade=draw(st.sampled_from(["Manual", "Automatic", "Rolling"]))
    )
    if not model_has_public_ip:
        set_doc["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"] = [
            docs.nic_configuration(public_ip=False)
        ]
    scale_set = ScaleSet.from_arm(set_doc)
    instances = []
    for index in range(draw(st.integers(0, 4))):
        vm_doc = docs.uniform_instance("web", str(index))
        if (until := draw(st.sampled_from(EXEMPTIONS))) is not None:
            vm_doc["tags"] = {"remediation.exempt-until": until}
        nic_doc = docs.uniform_nic("web", str(index), public_ip=model_has_public_ip and draw(st.booleans()))
        instances.append(Instance(VirtualMachine.from_arm(vm_doc), (NetworkInterface.from_arm(nic_doc),)))
    return ObservedSet(scale_set, tuple(instances), datetime.now(UTC))


def honoured_exemption(finding: Any, policy: Policy) -> bool:
    verdict = instance_exemption(finding, policy, TODAY)
    return verdict is not None and verdict.applies


@given(estates())
def test_the_plan_never_writes_outside_its_scope(estate: tuple[ObservedSet, Policy]) -> None:
    observed, policy = estate
    restriction = restriction_for(observed.scale_set, policy)
    if restriction.mode is None or not policy.monitors(observed.scale_set.id.subscription):
        return  # the engine does not plan an unrestricted or unmonitored set at all
    scope_modes = [scope.mode for scope in policy.scopes if scope.contains(observed.scale_set.id)]
    if scope_modes and not policy.tags_may_relax:
        # A tag may only make a configured scope stricter; a typo never relaxes it.
        deepest = max((s for s in policy.scopes if s.contains(observed.scale_set.id)), key=lambda s: s.depth)
        assert SEVERITY[restriction.mode] >= SEVERITY[deepest.mode]
    result = plan(observed, restriction.mode, policy, TODAY)
    if restriction.mode is Mode.AUDIT:
        assert result.actions == ()
    nics = {nic.id for instance in observed.instances for nic in instance.nics}
    vms = {instance.vm.id for instance in observed.instances}
    for action in result.actions:
        finding = action.finding
        assert finding.origin in policy.remediate_origins
        assert not honoured_exemption(finding, policy), "never an exempt instance"
        if not finding.instance.is_uniform_instance and finding.origin is Origin.SCALE_SET:
            assert finding.instance.nic_configuration_names == observed.scale_set.nic_configuration_names
        assert finding.public_ip_ids, "only instances that carry a public IP are touched"
        if action.kind is ActionKind.DETACH_PUBLIC_IP:
            assert (
                restriction.mode is Mode.STRIP and action.target == finding.nic.id and action.target in nics
            )
        elif action.kind is ActionKind.DELETE_PUBLIC_IP:
            assert restriction.mode is Mode.STRIP and not policy.keep_detached_public_ips
            assert action.target in finding.public_ip_ids
        elif action.kind is ActionKind.DELETE_VM:
            assert (
                restriction.mode is Mode.EVICT
                and action.target == finding.instance.id
                and action.target in vms
            )
        elif action.kind in (ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL, ActionKind.UPGRADE_INSTANCES):
            assert restriction.mode is Mode.STRIP and not observed.scale_set.is_flexible
            assert action.target == observed.scale_set.id
            left_alone = [f for f, _ in result.skipped]
            # A model change an Automatic or Rolling upgrade carries to every instance: never while
            # one must be left alone.
            assert observed.scale_set.upgrade_mode == "Manual" or not left_alone
            if action.kind is ActionKind.UPGRADE_INSTANCES:
                assert action.body is not None
                upgraded = set(action.body["instanceIds"])
                assert not upgraded & {f.instance.name.rsplit("_", 1)[-1] for f in left_alone}
        else:
            assert restriction.mode is Mode.SCALE_TO_ZERO and action.target == observed.scale_set.id
            origins = [classify_origin(observed.scale_set, i.vm, i.nics)[0] for i in observed.instances]
            assert policy.allow_deleting_hand_added or all(o is Origin.SCALE_SET for o in origins)
    model_only, _ = lone_model_strip(observed, result, policy, TODAY)  # upkeep's write beside the plan
    if model_only is not None:
        assert restriction.mode is Mode.STRIP and not observed.scale_set.is_flexible
        assert observed.scale_set.model_has_public_ip and not result.actions
        assert observed.scale_set.upgrade_mode == "Manual" or not result.skipped
