"""The judgement: observed state + restriction -> findings and the writes to make. Pure.

No I/O and no clock: everything this module decides is a function of its arguments, so every
decision can be tested without ARM and replayed from exported JSON (what-if). The side effects
happen in ``act``, which carries out a Plan.

Azure has no flag that says "the scale set created this VM". ``classify_origin`` weighs the
evidence DESIGN.md lists and records each piece, so a reviewer can see why an instance was, or
was not, touched. Only instances classified as created by the scale set are remediated: a VM
attached by hand is the owners' business, and an unclear one is left alone and reported.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from remediation.model import (
    Action,
    ActionKind,
    Finding,
    Mode,
    NetworkInterface,
    ObservedSet,
    Origin,
    Plan,
    ScaleSet,
    VirtualMachine,
)

_INSTANCE_SUFFIX = re.compile(r"^_[0-9a-f]{8}$")

# Modes whose remediation this version carries out; the others are planned as audit.
_ACTING_MODES = frozenset({Mode.STRIP})


def classify_origin(
    scale_set: ScaleSet, vm: VirtualMachine, nics: tuple[NetworkInterface, ...]
) -> tuple[Origin, tuple[str, ...]]:
    """Who created ``vm``: the set (autoscale, capacity change) or a person. Returns the evidence."""
    prefix = scale_set.name
    name_matches = vm.name.lower().startswith(prefix.lower()) and bool(
        _INSTANCE_SUFFIX.match(vm.name[len(prefix) :])
    )
    nic_names_independent = bool(nics) and all(
        not nic.name.lower().startswith(vm.name.lower()) for nic in nics
    )
    from_profile = vm.has_nic_configurations and bool(vm.network_api_version)
    computer_prefix = bool(scale_set.computer_name_prefix) and vm.computer_name.lower().startswith(
        scale_set.computer_name_prefix.lower()
    )
    evidence = (
        f"vm name {'matches' if name_matches else 'does not match'} {prefix}_<8 hex>",
        f"nic names {'are not' if nic_names_independent else 'are'} prefixed by the vm name",
        "vm networkProfile "
        + (
            "has networkInterfaceConfigurations with networkApiVersion" if from_profile else "lists NICs only"
        ),
        f"computerName {vm.computer_name!r} "
        + ("starts" if computer_prefix else "does not start")
        + f" with the set's prefix {scale_set.computer_name_prefix!r}",
    )
    supporting = sum((nic_names_independent, from_profile, computer_prefix))
    if name_matches and supporting >= 2:
        return Origin.SCALE_SET, evidence
    if not name_matches and not from_profile and not computer_prefix:
        return Origin.HAND_ADDED, evidence
    return Origin.UNKNOWN, evidence


def nic_without_public_ips(nic: NetworkInterface) -> dict[str, Any]:
    """The NIC document to PUT: the same NIC with no public IP on any ipConfiguration."""
    body = copy.deepcopy(dict(nic.raw))
    for config in body.get("properties", {}).get("ipConfigurations", []) or []:
        properties = config.get("properties")
        if isinstance(properties, dict):
            properties.pop("publicIPAddress", None)
    return body


def find_violations(observed: ObservedSet) -> tuple[Finding, ...]:
    """Every NIC of every instance that carries a public IP, with the instance's origin."""
    findings: list[Finding] = []
    for instance in observed.instances:
        origin, evidence = classify_origin(observed.scale_set, instance.vm, instance.nics)
        findings.extend(
            Finding(observed.scale_set, instance.vm, nic, nic.public_ip_ids, origin, evidence)
            for nic in instance.nics
            if nic.public_ip_ids
        )
    return tuple(findings)


def plan(observed: ObservedSet, mode: Mode) -> Plan:
    """What to do about ``observed`` in ``mode``: the findings, the writes, and what is left alone."""
    findings = find_violations(observed)
    actions: list[Action] = []
    skipped: list[tuple[Finding, str]] = []
    for finding in findings:
        if finding.origin is not Origin.SCALE_SET:
            skipped.append(
                (
                    finding,
                    f"instance origin is {finding.origin.value}: "
                    "only scale-set-created instances are remediated",
                )
            )
        elif mode is Mode.AUDIT:
            skipped.append((finding, "mode is audit: recorded only"))
        elif mode not in _ACTING_MODES:
            skipped.append((finding, f"mode {mode.value} is not carried out by this version: recorded only"))
        else:
            actions.append(
                Action(
                    ActionKind.DETACH_PUBLIC_IP,
                    finding,
                    target=finding.nic.id,
                    body=nic_without_public_ips(finding.nic),
                    if_match=finding.nic.etag,
                )
            )
            actions.extend(
                Action(ActionKind.DELETE_PUBLIC_IP, finding, target=ip) for ip in finding.public_ip_ids
            )
    return Plan(mode, findings, tuple(actions), tuple(skipped))
