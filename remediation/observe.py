"""Read the live state of a scale set through the ARM gateway (named so, since ``inspect`` is stdlib).

Level-triggered (DESIGN.md decision 1): whatever the event said, the state acted on is read here,
fresh. Reads are amortised: one list of the set's VMs and one list of the NICs in its resource
group (a Uniform set: of the set) per reconcile, with a GET only for a Flexible NIC that the list
does not show (it lives in another resource group, or the list lags behind its creation: lists are
eventually consistent, reads by id are current) or shows with a public IP (the one read a write
needs: its current version and ETag, which a lagging list may not have), and the VM of any NIC
that carries one (its tags, an exemption among them, as they are now). A strip's reconcile leaves
those last two to the write (``confirmed_later``: ``act`` reads them just before it). A re-plan passes
``current``: the NICs this reconcile already wrote or met changed, as ARM answered or a read by
id shows them, which a lagging list may still show as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from remediation.arm import ArmGateway
from remediation.model import Instance, ObservedSet
from remediation.resource_ids import (
    NIC_TYPE,
    PUBLIC_IP_TYPE,
    SCALE_SET_TYPE,
    UNIFORM_VM_TYPE,
    VIRTUAL_MACHINE_TYPE,
    ResourceId,
)
from remediation.resources import NetworkInterface, PublicIp, ScaleSet, VirtualMachine


class Unresolvable(Exception):
    """The resource named by an event does not lead to a scale set; the message says where it stopped."""


class OwnerReads(Protocol):
    """The reads that lead from a resource to its scale set (the gateway, or intake's reuse of them)."""

    def get_public_ip(self, ip_id: ResourceId) -> PublicIp | None: ...
    def get_nic(self, nic_id: ResourceId) -> NetworkInterface | None: ...
    def get_vm(self, vm_id: ResourceId) -> VirtualMachine | None: ...


def owning_scale_set(arm: OwnerReads, resource_id: ResourceId) -> ResourceId:
    """Follow a VM, NIC or public IP to the scale set it belongs to (NIC -> VM -> set)."""
    if resource_id.is_type(SCALE_SET_TYPE):
        return resource_id
    if resource_id.is_type(UNIFORM_VM_TYPE):
        parent = resource_id.parent
        assert parent is not None
        return parent
    if resource_id.is_type(PUBLIC_IP_TYPE):
        public_ip = arm.get_public_ip(resource_id)
        if public_ip is None:
            raise Unresolvable(f"public IP {resource_id} no longer exists")
        if public_ip.ip_configuration_id is None:
            raise Unresolvable(f"public IP {resource_id} is not attached to a NIC")
        nic_id = public_ip.ip_configuration_id.parent
        if nic_id is None or not nic_id.is_type(NIC_TYPE):
            raise Unresolvable(
                f"public IP {resource_id} is attached to {public_ip.ip_configuration_id}, not a NIC"
            )
        return owning_scale_set(arm, nic_id)
    if resource_id.is_type(NIC_TYPE):
        nic = arm.get_nic(resource_id)
        if nic is None:
            raise Unresolvable(f"NIC {resource_id} no longer exists")
        if nic.vm_id is None:
            raise Unresolvable(f"NIC {resource_id} is not attached to a VM")
        return owning_scale_set(arm, nic.vm_id)
    if resource_id.is_type(VIRTUAL_MACHINE_TYPE):
        vm = arm.get_vm(resource_id)
        if vm is None:
            raise Unresolvable(f"VM {resource_id} no longer exists")
        if vm.scale_set_id is None:
            raise Unresolvable(f"VM {resource_id} does not belong to a scale set")
        return vm.scale_set_id
    raise Unresolvable(f"resource type {resource_id.type} does not belong to a scale set")


def observe_set(
    arm: ArmGateway,
    scale_set: ScaleSet,
    with_autoscale: bool = False,
    current: Mapping[ResourceId, NetworkInterface | None] | None = None,
    *,
    confirmed_later: bool = False,
) -> ObservedSet:
    """The set's VMs and their NICs as ARM has them now (the set itself was just read), and, when
    asked (scale-to-zero, evict) and an instance carries a public IP, the autoscale settings beside
    it. ``current`` overrides the list. ``confirmed_later``: a Flexible instance listed with a
    public IP is left as listed, since each of its writes reads its VM and NIC by id just before
    it is sent (``act``: so those reads overlap the other instances' writes instead of all coming
    first); a NIC the list does not show is still read by id here."""
    current = current or {}
    set_id = scale_set.id
    nics: dict[ResourceId, NetworkInterface] = {}
    if not scale_set.is_flexible:  # Uniform: instances and their NICs live under the set
        vms = arm.list_uniform_instances(set_id)
        if vms:
            nics = {nic.id: nic for nic in arm.list_uniform_nics(set_id)}
    else:
        vms = arm.list_scale_set_vms(set_id)
        if vms:
            nics = {nic.id: nic for nic in arm.list_nics(set_id.subscription, set_id.resource_group)}
    seen = (_instance(arm, scale_set, vm, nics, current, confirmed_later=confirmed_later) for vm in vms)
    instances = [instance for instance in seen if instance is not None]
    # Only a plan that writes (an instance carries a public IP) needs them: a set looked at again
    # and again while it grows costs no Insights read per look.
    carrying = any(nic.public_ip_ids for instance in instances for nic in instance.nics)
    autoscale = (
        tuple(arm.list_autoscale_settings(set_id.subscription, set_id.resource_group))
        if with_autoscale and carrying
        else ()
    )
    return ObservedSet(scale_set, tuple(instances), datetime.now(UTC), autoscale)


def _instance(
    arm: ArmGateway,
    scale_set: ScaleSet,
    listed: VirtualMachine,
    nics: Mapping[ResourceId, NetworkInterface],
    current: Mapping[ResourceId, NetworkInterface | None],
    *,
    confirmed_later: bool,
) -> Instance | None:
    """One listed VM with its NICs, each as current as a write needs (None: the VM is gone), or
    as listed where the write confirms it (``confirmed_later``)."""
    vm_nics = []
    for nic_id in listed.nic_ids:
        if nic_id in current:
            nic = current[nic_id]
        else:
            nic = nics.get(nic_id)
            # Lists lag: a NIC the list does not show is read by id, never dropped. A Flexible
            # one it shows with a public IP is read by id too: a write planned from a version
            # the list still shows (one this or another look already stripped, say) would only
            # meet a 412 and a re-plan. (A Uniform one's views are not written: the set's model is.)
            if scale_set.is_flexible and (nic is None or (nic.public_ip_ids and not confirmed_later)):
                nic = arm.get_nic(nic_id)
            elif nic is None and not scale_set.is_flexible:
                nic = arm.get_uniform_nic(nic_id)
        if nic is not None:
            vm_nics.append(nic)
    vm: VirtualMachine | None = listed
    if scale_set.is_flexible and not confirmed_later and any(nic.public_ip_ids for nic in vm_nics):
        # About to be judged for a write: the VM as it is now, not as a lagging list shows it (an
        # exemption tag added since, a VM deleted since). A Uniform instance's NICs are views.
        vm = arm.get_vm(listed.id)
    return Instance(vm, tuple(vm_nics)) if vm is not None else None
