"""The judgement: observed state + restriction -> findings and the writes to make. Pure.

No I/O and no clock: everything this module decides is a function of its arguments, so every
decision can be tested without ARM and replayed from exported JSON (what-if). The side effects
happen in ``act``, which carries out a Plan.

Azure has no flag that says "the scale set created this VM". ``classify_origin`` weighs the
evidence DESIGN.md lists and records each piece, so a reviewer can see why an instance was, or
was not, touched. By default only instances classified as created by the scale set are
remediated: a VM attached by hand is the owners' business, and an unclear one is left alone and
reported (the policy can widen this). Exempt instances (a current ``remediation.exempt-until``
tag on the VM or NIC) are reported and left alone.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

from remediation.exemptions import Exemption, exemption
from remediation.model import Action, ActionKind, Finding, Mode, ObservedSet, Origin, Plan
from remediation.policy import Policy
from remediation.resources import NetworkInterface, ScaleSet, VirtualMachine

_INSTANCE_SUFFIX = re.compile(r"^_[0-9a-f]{8}$")


def classify_origin(
    scale_set: ScaleSet, vm: VirtualMachine, nics: tuple[NetworkInterface, ...]
) -> tuple[Origin, tuple[str, ...]]:
    """Who created ``vm``: the set (autoscale, capacity change) or a person. Returns the evidence."""
    if vm.is_uniform_instance:
        return Origin.SCALE_SET, ("a Uniform set's instance: made by the set from its model",)
    prefix = scale_set.name
    name_matches = vm.name.lower().startswith(prefix.lower()) and bool(
        _INSTANCE_SUFFIX.match(vm.name[len(prefix) :])
    )
    nic_names_independent = bool(nics) and all(
        not nic.name.lower().startswith(vm.name.lower()) for nic in nics
    )
    from_profile = vm.has_nic_configurations and bool(vm.network_api_version)
    # A VM built by hand may declare networkInterfaceConfigurations of its own: only ones named as
    # the set's profile names them (NIC and ipConfiguration names) count as the set's.
    profile_matches = from_profile and vm.nic_configuration_names == scale_set.nic_configuration_names
    computer_prefix = bool(scale_set.computer_name_prefix) and vm.computer_name.lower().startswith(
        scale_set.computer_name_prefix.lower()
    )
    evidence = (
        f"vm name {'matches' if name_matches else 'does not match'} {prefix}_<8 hex>",
        f"nic names {'are not' if nic_names_independent else 'are'} prefixed by the vm name",
        "vm networkProfile "
        + (
            "lists NICs only"
            if not from_profile
            else "has networkInterfaceConfigurations with networkApiVersion"
            + ("" if profile_matches else ", named unlike the set's profile")
        ),
        f"computerName {vm.computer_name!r} "
        + ("starts" if computer_prefix else "does not start")
        + f" with the set's prefix {scale_set.computer_name_prefix!r}",
    )
    # Conservative: the name and NICs made from the set's own profile are both required (a
    # hand-built VM can be named like an instance, and can declare networkInterfaceConfigurations
    # of its own, but not by chance the set's configuration names too), and one more piece must agree.
    if name_matches and profile_matches and (nic_names_independent or computer_prefix):
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


def instance_exemption(finding: Finding, policy: Policy, today: date) -> Exemption | None:
    """The exemption of a finding's instance (its VM's tags, then its NIC's), if either is tagged."""
    created = finding.instance.time_created.date() if finding.instance.time_created else None
    tagged = (("VM", finding.instance.tags), ("NIC", finding.nic.tags))
    return exemption(policy, finding.scale_set.id, tagged, today, created)


def _why_left_alone(finding: Finding, mode: Mode, policy: Policy, exempt: Exemption | None) -> str | None:
    if exempt is not None and exempt.applies:
        return exempt.reason
    if finding.origin not in policy.remediate_origins:
        allowed = ", ".join(sorted(o.value for o in policy.remediate_origins))
        return f"instance origin is {finding.origin.value}: only {allowed} instances are remediated"
    if mode is Mode.AUDIT:
        return "mode is audit: recorded only"
    return None


def strip_actions(finding: Finding, policy: Policy) -> list[Action]:
    """A strip's writes: the NIC PUT without its public IPs (If-Match its ETag), then each IP's deletion."""
    actions = [
        Action(
            ActionKind.DETACH_PUBLIC_IP,
            finding,
            target=finding.nic.id,
            body=nic_without_public_ips(finding.nic),
            if_match=finding.nic.etag,
        )
    ]
    if not policy.keep_detached_public_ips:
        actions.extend(
            Action(ActionKind.DELETE_PUBLIC_IP, finding, target=ip) for ip in finding.public_ip_ids
        )
    return actions


def model_without_public_ips(scale_set: ScaleSet) -> dict[str, Any]:
    """The PATCH that removes the public IP from every ipConfiguration of the set's model: only
    its NIC configurations (ARM replaces a list whole, so each is sent as read, minus the public IP;
    the links they carry, subnets and pools, are re-asserted and authorised as joins)."""
    configurations = copy.deepcopy(scale_set.nic_configurations)
    for nic in configurations:
        for ip_config in nic.get("properties", {}).get("ipConfigurations", []) or []:
            ip_config.get("properties", {}).pop("publicIPAddressConfiguration", None)
    network = {"networkInterfaceConfigurations": configurations}
    return {"properties": {"virtualMachineProfile": {"networkProfile": network}}}


def _strip_uniform(
    observed: ObservedSet, to_remediate: list[Finding], skipped: list[tuple[Finding, str]]
) -> tuple[list[Action], list[tuple[Finding, str]], list[str]]:
    """A Uniform set's NICs are made from its model: remove the public IP from the model, then
    upgrade the violating instances to it. With an Automatic or Rolling upgrade policy the model
    change reaches every instance, so it is refused while any instance must be left alone."""
    scale_set = observed.scale_set
    if skipped and scale_set.upgrade_mode.lower() != "manual":
        reason = (
            f"strip refused: the set's upgrade policy is {scale_set.upgrade_mode}, so removing the public "
            "IP from its model would reach the instances that must be left alone too"
        )
        return [], [(finding, reason) for finding in to_remediate], []
    first = to_remediate[0]
    actions = []
    if scale_set.model_has_public_ip:
        actions.append(
            Action(
                ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL,
                first,
                target=scale_set.id,
                body=model_without_public_ips(scale_set),
                if_match=scale_set.etag,
            )
        )
    instance_ids = sorted(
        {finding.instance.name.rsplit("_", 1)[-1] for finding in to_remediate}, key=_numeric
    )
    actions.append(
        Action(ActionKind.UPGRADE_INSTANCES, first, target=scale_set.id, body={"instanceIds": instance_ids})
    )
    note = f"Uniform set: model without public IP, then upgrade of instances {', '.join(instance_ids)}"
    return actions, [], [note]


def _numeric(instance_id: str) -> tuple[int, str]:
    return (int(instance_id), "") if instance_id.isdigit() else (0, instance_id)


def _scale_to_zero(
    observed: ObservedSet, to_remediate: list[Finding], policy: Policy
) -> tuple[list[Action], list[tuple[Finding, str]], list[str]]:
    """Capacity 0 for the whole set, unless that could take VMs a person attached.

    Whether lowering a Flexible set's capacity deletes hand-attached VMs is undocumented, so a set
    with any instance not known to be scale-set-created is refused unless configured otherwise.
    """
    scale_set = observed.scale_set
    origins = {
        instance.vm.name: classify_origin(scale_set, instance.vm, instance.nics)[0]
        for instance in observed.instances
    }
    would_delete = sorted(name for name, origin in origins.items() if origin is Origin.SCALE_SET)
    at_risk = sorted(name for name, origin in origins.items() if origin is not Origin.SCALE_SET)
    notes = [f"capacity {scale_set.capacity} -> 0 would delete: {', '.join(would_delete) or 'nothing'}"]
    if at_risk:
        notes.append(f"capacity 0 may also delete VMs not created by the set: {', '.join(at_risk)}")
    if at_risk and not policy.allow_deleting_hand_added:
        reason = (
            "scale-to-zero refused: the set has VMs it did not create ("
            + ", ".join(at_risk)
            + ") and whether capacity 0 deletes them is undocumented; "
            "set scale_to_zero.allow_deleting_hand_added to allow it"
        )
        return [], [(finding, reason) for finding in to_remediate], notes
    actions = _disable_autoscale(observed, to_remediate[0], notes) if policy.disable_autoscale else []
    actions.append(
        Action(
            ActionKind.SET_CAPACITY_ZERO,
            to_remediate[0],
            target=scale_set.id,
            body={"sku": {"capacity": 0}},  # a PATCH of the capacity alone: no link re-asserted
            if_match=scale_set.etag,
        )
    )
    return actions, [], notes


def _disable_autoscale(observed: ObservedSet, first: Finding, notes: list[str]) -> list[Action]:
    """A PATCH disabling each enabled autoscale setting that targets the set (run before the
    plan's other writes), so it does not scale the set back meanwhile."""
    actions = []
    for setting in observed.autoscale:
        if setting.enabled and setting.target == observed.scale_set.id:
            # A PATCH: the rest stays as it is. The REST spec marks `profiles` required in a PATCH
            # body too, so they go back as read (whether Insights enforces it is unknown).
            profiles = (setting.raw.get("properties") or {}).get("profiles") or []
            disabled = {"properties": {"enabled": False, "profiles": profiles}}
            actions.append(Action(ActionKind.DISABLE_AUTOSCALE, first, target=setting.id, body=disabled))
            notes.append(f"autoscale setting {setting.id.name} targets the set: disabled first")
    return actions


def _evict(
    observed: ObservedSet, to_remediate: list[Finding], policy: Policy
) -> tuple[list[Action], list[str]]:
    """One DELETE per violating VM. An autoscale setting whose minimum is above what the
    evictions leave creates instances again, from the same model (so with public IPs): said in
    the record, and with ``evict.disable_autoscale`` the setting is disabled first."""
    scale_set = observed.scale_set
    evicted = list({finding.instance.id: finding for finding in to_remediate}.values())
    left = max(scale_set.capacity - len(evicted), 0)
    notes: list[str] = []
    refilling = [
        setting
        for setting in observed.autoscale
        if setting.enabled and setting.target == scale_set.id and setting.minimum > left
    ]
    for setting in refilling:
        notes.append(
            f"autoscale setting {setting.id.name} keeps at least {setting.minimum} instances: evicting "
            f"{len(evicted)} of {scale_set.capacity} leaves {left}, so autoscale will create "
            f"{setting.minimum - left} again from the same model"
            + ("" if policy.evict_disable_autoscale else " (set evict.disable_autoscale to disable it first)")
        )
    actions = (
        _disable_autoscale(observed, evicted[0], notes)
        if refilling and policy.evict_disable_autoscale
        else []
    )
    actions.extend(Action(ActionKind.DELETE_VM, finding, target=finding.instance.id) for finding in evicted)
    return actions, notes


def confirm_strip(
    finding: Finding,
    vm: VirtualMachine | None,
    nics: tuple[NetworkInterface, ...],
    policy: Policy,
    today: date,
) -> tuple[Finding, list[Action]] | str:
    """A Flexible instance's strip planned from lists, judged again just before its write from its
    VM and NICs as read by id (``nics``: the instance's, the finding's read now): the finding as it
    is now with its writes, or why there is nothing to write now. Lists lag the writes, so what
    they show may be a version another look already stripped, or a VM since tagged exempt."""
    nic = next((each for each in nics if each.id == finding.nic.id), None)
    if vm is None:
        return f"nothing to do: the VM {finding.instance.name} no longer exists (a list still showed it)"
    if nic is None:
        return f"nothing to do: the NIC {finding.nic.name} no longer exists (a list still showed it)"
    if not nic.public_ip_ids:
        return (
            f"nothing to do: the NIC {nic.name} as it is now carries no public IP "
            "(a list showed it as it was)"
        )
    origin, evidence = classify_origin(finding.scale_set, vm, nics)
    current = Finding(finding.scale_set, vm, nic, nic.public_ip_ids, origin, evidence)
    reason = _why_left_alone(current, Mode.STRIP, policy, instance_exemption(current, policy, today))
    return reason if reason is not None else (current, strip_actions(current, policy))


def plan(observed: ObservedSet, mode: Mode, policy: Policy, today: date) -> Plan:
    """What to do about ``observed`` in ``mode``: the findings, the writes, and what is left alone.

    ``today`` decides which exemptions are current (passed in: this module reads no clock).
    """
    findings = find_violations(observed)
    skipped: list[tuple[Finding, str]] = []
    to_remediate: list[Finding] = []
    ignored: dict[str, str] = {}  # per VM: an exemption tag that was not honoured, and why
    for finding in findings:
        exempt = instance_exemption(finding, policy, today)
        if exempt is not None and not exempt.applies:
            ignored.setdefault(finding.instance.name, f"instance {finding.instance.name}: {exempt.reason}")
        reason = _why_left_alone(finding, mode, policy, exempt)
        if reason is None:
            to_remediate.append(finding)
        else:
            skipped.append((finding, reason))

    actions: list[Action] = []
    notes: list[str] = list(ignored.values())
    if mode is Mode.STRIP and to_remediate and not observed.scale_set.is_flexible:
        actions, refused, set_notes = _strip_uniform(observed, to_remediate, skipped)
        notes.extend(set_notes)
        skipped.extend(refused)
    elif mode is Mode.STRIP:
        for finding in to_remediate:
            actions.extend(strip_actions(finding, policy))
    elif mode is Mode.EVICT and to_remediate:
        actions, set_notes = _evict(observed, to_remediate, policy)
        notes.extend(set_notes)
    elif mode is Mode.SCALE_TO_ZERO and to_remediate:
        actions, refused, set_notes = _scale_to_zero(observed, to_remediate, policy)
        notes.extend(set_notes)
        skipped.extend(refused)
    return Plan(observed.scale_set, mode, findings, tuple(actions), tuple(skipped), tuple(notes))


def lone_model_strip(
    observed: ObservedSet, the_plan: Plan, policy: Policy, today: date
) -> tuple[dict[str, Any] | None, str]:
    """A Uniform set in strip mode whose model still gives each instance a public IP, when the
    plan does not remove it (no instance needs remediating: none yet, or none upgraded to that
    model): the PATCH that removes it, and why; (None, why not) if it must wait or stay; (None, "")
    if there is nothing to say. The next upgrade or scale-out would otherwise bring public IPs.

    With an Automatic or Rolling upgrade policy the change reaches every instance, so it waits
    while any instance is left alone (exempt ones too, public IP or not) or the set is updating
    (a rolling upgrade of the owner's under way)."""
    scale_set = observed.scale_set
    if the_plan.mode is not Mode.STRIP or scale_set.is_flexible or not scale_set.model_has_public_ip:
        return None, ""
    if any(action.kind is ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL for action in the_plan.actions):
        return None, ""
    if scale_set.upgrade_mode.lower() != "manual":
        left_alone = {finding.instance.name for finding, _ in the_plan.skipped}
        for instance in observed.instances:
            created = instance.vm.time_created.date() if instance.vm.time_created else None
            tagged = (("VM", instance.vm.tags), *(("NIC", nic.tags) for nic in instance.nics))
            exempt = exemption(policy, scale_set.id, tagged, today, created)
            if exempt is not None and exempt.applies:
                left_alone.add(instance.vm.name)
        if left_alone:
            return None, (
                f"model keeps its public IP: the set's upgrade policy is {scale_set.upgrade_mode}, so "
                f"removing it would reach instances left alone too ({', '.join(sorted(left_alone))})"
            )
        if scale_set.provisioning_state.lower() not in _SETTLED:
            return None, (
                f"model keeps its public IP for now: the set is {scale_set.provisioning_state} "
                f"(its upgrade policy is {scale_set.upgrade_mode}); the next look removes it"
            )
    return model_without_public_ips(scale_set), (
        "remove the public IP from the model: it gives each instance one, and no instance needs "
        "remediating now, so the next upgrade or scale-out would bring public IPs"
    )


_SETTLED = frozenset({"succeeded", "failed", ""})


def still_creating(observed: ObservedSet) -> str | None:
    """Why the set may yet grow instances we have not seen (so it needs a later look), or None.

    A set write's event can arrive before the instances it asks for exist, and whether the
    platform's own VM, NIC and IP writes raise events is undocumented (DESIGN.md decision 2).
    """
    scale_set = observed.scale_set
    if scale_set.provisioning_state.lower() not in _SETTLED:
        return f"the scale set is {scale_set.provisioning_state}"
    creating = sorted(
        i.vm.name for i in observed.instances if i.vm.provisioning_state.lower() not in _SETTLED
    )
    if creating:
        return f"instances still provisioning: {', '.join(creating)}"
    # Instances the set's capacity asks for and no list shows yet (lists lag the writes). Whether a
    # VM added by hand counts in a Flexible set's capacity is undocumented (DESIGN.md): every
    # instance is counted, so a set whose hand-added VMs do count settles, and one whose do not is
    # still watched while the set itself is updating (above).
    listed = len(observed.instances)
    if scale_set.capacity > listed:
        return f"capacity {scale_set.capacity} but {listed} instances exist"
    return None
