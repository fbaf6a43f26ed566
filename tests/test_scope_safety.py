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

from remediation.model import (
    ActionKind,
    Instance,
    Mode,
    NetworkInterface,
    ObservedSet,
    Origin,
    ScaleSet,
    VirtualMachine,
)
from remediation.plan import classify_origin, plan
from remediation.policy import Policy, exemption, restriction_for

TODAY = date(2026, 11, 21)
KINDS = ("autoscaled", "hand-added", "lookalike")
EXEMPTIONS = (None, "2026-12-31", "2020-01-01", "not a date")


@st.composite
def estates(draw: st.DrawFn) -> tuple[ObservedSet, Policy]:
    tag = draw(st.sampled_from([None, "audit", "strip", "evict", "scale-to-zero", "Strip", "bogus"]))
    scale_set = ScaleSet.from_arm(
        docs.scale_set("web", capacity=3, tags={"remediation.mode": tag} if tag else {})
    )
    instances = []
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(KINDS))
        suffix = f"{index:08x}"
        nic_name = f"web{index}Nic-{suffix}" if kind == "autoscaled" else f"vm{index}-nic"
        if kind == "autoscaled":
            vm_doc: dict[str, Any] = docs.flex_instance("web", suffix, nic_name)
        elif kind == "hand-added":
            vm_doc = docs.hand_added_vm("web", f"vm{index}", nic_name)
        else:  # named like an instance, built by hand
            vm_doc = docs.hand_added_vm("web", f"web_{suffix}", nic_name)
        vm_name = vm_doc["name"]
        nic_doc = docs.nic(nic_name, vm_name, f"pip{index}" if draw(st.booleans()) else None)
        if (until := draw(st.sampled_from(EXEMPTIONS))) is not None:
            target = vm_doc if draw(st.booleans()) else nic_doc
            target["tags"] = {"remediation.exempt-until": until}
        instances.append(Instance(VirtualMachine.from_arm(vm_doc), (NetworkInterface.from_arm(nic_doc),)))
    origins = draw(st.sets(st.sampled_from(list(Origin)), min_size=1))
    policy = Policy(
        remediate_origins=frozenset(origins),
        keep_detached_public_ips=draw(st.booleans()),
        allow_deleting_hand_added=draw(st.booleans()),
    )
    return ObservedSet(scale_set, tuple(instances), datetime.now(UTC)), policy


@given(estates())
def test_the_plan_never_writes_outside_its_scope(estate: tuple[ObservedSet, Policy]) -> None:
    observed, policy = estate
    restriction = restriction_for(observed.scale_set, policy)
    if restriction.mode is None:
        return  # the engine does not plan an unrestricted set at all
    result = plan(observed, restriction.mode, policy, TODAY)
    if restriction.mode is Mode.AUDIT:
        assert result.actions == ()
    nics = {nic.id for instance in observed.instances for nic in instance.nics}
    vms = {instance.vm.id for instance in observed.instances}
    for action in result.actions:
        finding = action.finding
        assert finding.origin in policy.remediate_origins
        assert exemption(finding.instance.tags, TODAY) is None and exemption(finding.nic.tags, TODAY) is None
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
        else:
            assert restriction.mode is Mode.SCALE_TO_ZERO and action.target == observed.scale_set.id
            origins = [classify_origin(observed.scale_set, i.vm, i.nics)[0] for i in observed.instances]
            assert policy.allow_deleting_hand_added or all(o is Origin.SCALE_SET for o in origins)
