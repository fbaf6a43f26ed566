"""The judgements about writes earlier handlings left unfinished, and what they left behind. Pure.

A handling can stop between an ARM write and its outcome (a storage outage, a host killed), and a
write's answers may not say whether it applied (a dropped connection, a 5xx, a lost poll: the
outcome is then recorded as ``unknown``). Either way the set's next reconcile reads the write's
target by id (reads by id are current) and decides here, per kind of write, what its outcome was,
citing what it saw. A write still in progress at ARM is not judged yet.

Remediation can also leave debris: a public IP detached from its NIC whose deletion never
happened (the detach's operation failed after taking effect, the handling stopped before the
delete, or the delete was accepted and then failed), and a NIC an update of ours left ``Failed``.
Both are found from the set's write history (detach intents as well as delete intents), and each
is re-checked against what ARM shows now and against the policy before anything is written.

No I/O and no clock: ``reconcile`` reads, this decides, ``act`` writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from remediation.exemptions import Exemption, exemption
from remediation.model import ActionKind, ObservedSet, RecordKind, Result
from remediation.plan import classify_origin
from remediation.policy import Policy
from remediation.records import AuditRecord, Unfinished
from remediation.resource_ids import NIC_TYPE, InvalidResourceId, ResourceId
from remediation.resources import AutoscaleSetting, NetworkInterface, PublicIp, ScaleSet, VirtualMachine

_IN_PROGRESS = frozenset({"creating", "updating", "deleting", "migrating"})


@dataclass(frozen=True)
class Resolution:
    """What ARM's state says a write's outcome was; ``result`` None: it does not say yet."""

    result: Result | None
    seen: str  # what ARM showed, cited in the outcome record


@dataclass(frozen=True)
class TargetState:
    """What ARM shows now about one write's target, read by id (None: it does not exist)."""

    scale_set: ScaleSet | None = None
    nic: NetworkInterface | None = None
    public_ip: PublicIp | None = None
    vm: VirtualMachine | None = None
    autoscale: AutoscaleSetting | None = None
    # A Uniform set's upgrade: the instances it named (those that still exist) and their NICs.
    instances: tuple[VirtualMachine, ...] = ()
    instance_nics: tuple[NetworkInterface, ...] = ()


def ids_of(field_value: str) -> tuple[ResourceId, ...]:
    """The resource ids of a record field that may hold several, comma-separated."""
    return tuple(ResourceId.parse(part) for part in field_value.split(",") if part)


def _busy(state: str) -> bool:
    return state.lower() in _IN_PROGRESS


def to_resolve(unfinished: Iterable[Unfinished], now: datetime, grace: timedelta) -> list[Unfinished]:
    """The unfinished writes to judge now: every unknown one, and those without any outcome that are
    older than the grace period (a younger one may belong to a handling still running elsewhere)."""
    return [write for write in unfinished if write.unknown or write.intent.time <= now - grace]


def judge(intent: AuditRecord, state: TargetState) -> Resolution:
    """Did the write ``intent`` announced take effect? Judged per kind of write from ``state``."""
    action = intent.action
    if action == ActionKind.DETACH_PUBLIC_IP.value:
        return _detach(ids_of(intent.public_ip), state.nic)
    if action == ActionKind.REPAIR_NIC.value:
        return _repair(state.nic)
    if action == ActionKind.DELETE_PUBLIC_IP.value:
        return _deleted("public IP", state.public_ip.provisioning_state if state.public_ip else None)
    if action == ActionKind.DELETE_VM.value:
        return _deleted("VM", state.vm.provisioning_state if state.vm else None)
    if action == ActionKind.SET_CAPACITY_ZERO.value:
        return _capacity_zero(state.scale_set)
    if action == ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL.value:
        return _model_change(state.scale_set)
    if action == ActionKind.UPGRADE_INSTANCES.value:
        return _upgrade(ids_of(intent.instance), state)
    if action == ActionKind.DISABLE_AUTOSCALE.value:
        if not intent.target:
            return Resolution(None, "the intent names no autoscale setting")
        return _autoscale_disabled(state.autoscale)
    return Resolution(None, f"no judgement for a write of kind {action!r}")


def _detach(public_ips: Sequence[ResourceId], nic: NetworkInterface | None) -> Resolution:
    if not public_ips:
        return Resolution(None, "the intent names no public IP, so what it detached cannot be told")
    if nic is None:
        return Resolution(Result.SKIPPED, "the NIC no longer exists, so nothing carries its public IP")
    if _busy(nic.provisioning_state):
        return Resolution(None, f"the NIC is {nic.provisioning_state}")
    still = [ip.name for ip in public_ips if ip in nic.public_ip_ids]
    if still:
        return Resolution(Result.FAILED, f"the NIC still carries public IP {', '.join(still)}")
    names = ", ".join(ip.name for ip in public_ips)
    return Resolution(Result.SUCCEEDED, f"the NIC no longer carries {names} ({nic.provisioning_state})")


def _repair(nic: NetworkInterface | None) -> Resolution:
    if nic is None:
        return Resolution(Result.SKIPPED, "the NIC no longer exists")
    if _busy(nic.provisioning_state):
        return Resolution(None, f"the NIC is {nic.provisioning_state}")
    if nic.provisioning_state.lower() == "failed":
        return Resolution(Result.FAILED, "the NIC is still Failed")
    return Resolution(Result.SUCCEEDED, f"the NIC is {nic.provisioning_state or 'Succeeded'}")


def _deleted(what: str, provisioning_state: str | None) -> Resolution:
    if provisioning_state is None:
        return Resolution(Result.SUCCEEDED, f"the {what} no longer exists")
    if _busy(provisioning_state):
        return Resolution(None, f"the {what} is {provisioning_state}")
    return Resolution(Result.FAILED, f"the {what} still exists ({provisioning_state or 'Succeeded'})")


def _capacity_zero(scale_set: ScaleSet | None) -> Resolution:
    if scale_set is None:
        return Resolution(Result.SKIPPED, "the scale set no longer exists")
    if _busy(scale_set.provisioning_state):
        return Resolution(None, f"the scale set is {scale_set.provisioning_state}")
    if scale_set.capacity == 0:
        return Resolution(Result.SUCCEEDED, "the set's capacity is 0")
    return Resolution(
        Result.FAILED,
        f"the set's capacity is {scale_set.capacity} (not 0; autoscale may have raised it since)",
    )


def _model_change(scale_set: ScaleSet | None) -> Resolution:
    if scale_set is None:
        return Resolution(Result.SKIPPED, "the scale set no longer exists")
    if _busy(scale_set.provisioning_state):
        return Resolution(None, f"the scale set is {scale_set.provisioning_state}")
    if scale_set.model_has_public_ip:
        return Resolution(Result.FAILED, "the set's model still gives each instance a public IP")
    return Resolution(Result.SUCCEEDED, "the set's model gives no public IP")


def _upgrade(named: Sequence[ResourceId], state: TargetState) -> Resolution:
    if state.scale_set is None:
        return Resolution(Result.SKIPPED, "the scale set no longer exists")
    wanted = {instance.key for instance in named}
    instances = [vm for vm in state.instances if vm.id.key in wanted]
    if not instances:
        return Resolution(Result.SKIPPED, "none of the instances it upgraded exists any more")
    busy = sorted(vm.name for vm in instances if _busy(vm.provisioning_state))
    if busy:
        return Resolution(None, f"instances {', '.join(busy)} are still being upgraded")
    carrying = sorted(
        {
            vm.name
            for vm in instances
            for nic in state.instance_nics
            if nic.id.key.startswith(vm.id.key + "/") and nic.public_ip_ids
        }
    )
    if carrying:
        return Resolution(Result.FAILED, f"instances {', '.join(carrying)} still carry public IPs")
    names = ", ".join(sorted(vm.name for vm in instances))
    return Resolution(Result.SUCCEEDED, f"instances {names} carry no public IP")


def _autoscale_disabled(setting: AutoscaleSetting | None) -> Resolution:
    if setting is None:
        return Resolution(Result.SKIPPED, "the autoscale setting no longer exists")
    if setting.enabled:
        return Resolution(Result.FAILED, "the autoscale setting is still enabled")
    return Resolution(Result.SUCCEEDED, "the autoscale setting is disabled")


# -- what remediation left behind ------------------------------------------------------------


@dataclass(frozen=True)
class Detached:
    """A public IP an earlier handling of this set detached (or meant to delete), from its intents."""

    public_ip: ResourceId
    nic: str
    instance: str
    intent_id: str


def detached_earlier(history: Iterable[AuditRecord], scale_set: ResourceId) -> list[Detached]:
    """Every public IP the set's detach and delete intents name, with the NIC and instance it was on."""
    found: dict[ResourceId, Detached] = {}
    for record in history:
        if record.kind is not RecordKind.INTENT or record.scale_set.lower() != scale_set.key:
            continue
        if record.action not in (ActionKind.DETACH_PUBLIC_IP.value, ActionKind.DELETE_PUBLIC_IP.value):
            continue
        for ip in ids_of(record.public_ip):
            found.setdefault(ip, Detached(ip, record.nic, record.instance, record.record_id))
    return list(found.values())


@dataclass(frozen=True)
class Leftover:
    """A detached public IP to delete, and why (what was re-checked)."""

    public_ip: ResourceId
    nic: str
    instance: str
    reason: str


def looks_detached(ip: PublicIp) -> bool:
    """On no NIC and no NAT gateway, and not being deleted: a leftover if remediation detached it."""
    return not ip.in_use and not _busy(ip.provisioning_state)


def leftovers_to_delete(
    detached: Iterable[Detached],
    live: Mapping[ResourceId, PublicIp | None],
    observed: ObservedSet,
    policy: Policy,
    today: date,
) -> tuple[list[Leftover], list[str]]:
    """Which of the public IPs remediation detached earlier to delete now, each re-checked against
    ARM (``live``: read by id) and the policy; and, for reviewers, why others are left.

    Deleted only if it still exists, is on no NIC and not being deleted, and the instance it was
    detached from is still this set's, of an origin the policy remediates, with neither that VM,
    its NIC nor the public IP itself exempt. Public IPs that are gone or attached again are not
    leftovers (an attached one is a finding of the plan) and are not mentioned.
    """
    if policy.keep_detached_public_ips:
        return [], []
    instances = {instance.vm.id: instance for instance in observed.instances}
    deletions: list[Leftover] = []
    left: list[str] = []
    for earlier in detached:
        ip = live.get(earlier.public_ip)
        if ip is None or not looks_detached(ip):
            continue
        instance = instances.get(ResourceId.parse(earlier.instance)) if earlier.instance else None
        if instance is None:
            left.append(
                f"detached public IP {ip.id.name} left: the instance it was on is no longer in the set, "
                "so whether it is the set's to delete cannot be re-checked"
            )
            continue
        origin, _ = classify_origin(observed.scale_set, instance.vm, instance.nics)
        nic = next((n for n in instance.nics if n.id.key == earlier.nic.lower()), None)
        tagged = [
            ("VM", instance.vm.tags),
            *([("NIC", nic.tags)] if nic is not None else []),
            ("public IP", ip.tags),
        ]
        exempt = exemption(policy, observed.scale_set.id, tagged, today, _created(instance.vm))
        if exempt is not None and exempt.applies:
            left.append(f"detached public IP {ip.id.name} left: {exempt.reason}")
        elif origin not in policy.remediate_origins:
            left.append(
                f"detached public IP {ip.id.name} left: instance {instance.vm.name} is {origin.value}"
            )
        else:
            deletions.append(
                Leftover(
                    ip.id,
                    earlier.nic,
                    earlier.instance,
                    f"detached from instance {instance.vm.name} by an earlier handling (intent "
                    f"{earlier.intent_id}) and still there: re-checked detached, not exempt",
                )
            )
    return deletions, left


def nics_in_doubt(history: Iterable[AuditRecord]) -> set[ResourceId]:
    """NICs whose last update of ours (a detach or a repair) did not end ``succeeded``: it may have
    left the NIC ``Failed``, which a lagging list need not show yet, so a reconcile that plans from
    lists reads these by id first (``nics_to_repair`` judges them as they are)."""
    succeeded = {
        record.intent_id
        for record in history
        if record.kind is RecordKind.OUTCOME and record.result == Result.SUCCEEDED.value
    }
    last: dict[str, AuditRecord] = {}
    for record in history:
        if (
            record.kind is RecordKind.INTENT
            and record.action in (ActionKind.DETACH_PUBLIC_IP.value, ActionKind.REPAIR_NIC.value)
            and record.nic
            and (record.nic.lower() not in last or last[record.nic.lower()].time <= record.time)
        ):
            last[record.nic.lower()] = record
    doubtful: set[ResourceId] = set()
    for intent in last.values():
        if intent.record_id not in succeeded:
            with contextlib.suppress(InvalidResourceId):  # not a NIC id: nothing to read
                doubtful.add(ResourceId.parse(intent.nic))
    return doubtful


def nics_to_repair(
    observed: ObservedSet, history: Iterable[AuditRecord], policy: Policy, today: date
) -> list[NetworkInterface]:
    """NICs of this set's remediable instances that an update of ours left ``Failed`` and that carry
    no public IP (one that does is put right by the plan's own detach). Network's remedy for a
    Failed resource is to PUT it again as it is."""
    written = {
        record.nic.lower()
        for record in history
        if record.kind is RecordKind.INTENT
        and record.action in (ActionKind.DETACH_PUBLIC_IP.value, ActionKind.REPAIR_NIC.value)
        and record.nic
    }
    repairs: list[NetworkInterface] = []
    for instance in observed.instances:
        origin, _ = classify_origin(observed.scale_set, instance.vm, instance.nics)
        if origin not in policy.remediate_origins:
            continue
        set_id, created = observed.scale_set.id, _created(instance.vm)
        repairs.extend(
            nic
            for nic in instance.nics
            if nic.id.is_type(NIC_TYPE)  # a Network NIC (a Uniform instance's is the set's model)
            and nic.provisioning_state.lower() == "failed"
            and not nic.public_ip_ids
            and nic.id.key in written
            and not _exempt(
                exemption(policy, set_id, [("VM", instance.vm.tags), ("NIC", nic.tags)], today, created)
            )
        )
    return repairs


def _created(vm: VirtualMachine) -> date | None:
    return vm.time_created.date() if vm.time_created else None


def _exempt(verdict: Exemption | None) -> bool:
    return verdict is not None and verdict.applies
