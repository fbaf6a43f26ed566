"""Microsoft.Compute's scale sets: what the VM, scale set and instance rules share.

Microsoft.Compute is simulated in five modules: this one (a set's orchestration mode, its
members, its capacity, and the NIC ipConfigurations and public IPs made from its model),
virtual_machines.py (VMs, and their membership of a Flexible set), scale_sets.py (the scale
set's own rules, and its scale-out created one instance at a time), flexible_instances.py (the
VMs a Flexible set creates itself) and uniform_instances.py (a Uniform set's instances, their
NICs and public IPs, and manual upgrade).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sim import ids
from sim.documents import JsonDict, properties, reference_id
from sim.ids import VM_TYPE
from sim.store import Meta, Store

FLEXIBLE = "Flexible"
# VirtualMachineProperties that a VM created by a Flex set inherits from the set's profile.
INHERITED = (
    "storageProfile",
    "securityProfile",
    "diagnosticsProfile",
    "priority",
    "evictionPolicy",
    "billingProfile",
    "scheduledEventsProfile",
    "capacityReservation",
    "applicationProfile",
)


def scale_set_id(vm: JsonDict) -> str | None:
    """The id of the Flexible set a VM belongs to, if any."""
    return reference_id(properties(vm).get("virtualMachineScaleSet"))


def is_flexible(vmss: JsonDict) -> bool:
    return str(properties(vmss).get("orchestrationMode", "")).lower() == FLEXIBLE.lower()


def members(store: Store, vmss_id: str) -> list[tuple[JsonDict, Meta]]:
    """The VMs of a set that are not on their way out, oldest member first."""
    wanted = ids.key(vmss_id)
    found: list[tuple[JsonDict, Meta]] = []
    for vm in store.docs_of_type(VM_TYPE):
        set_id = scale_set_id(vm)
        meta = store.meta(vm["id"])
        if set_id is None or ids.key(set_id) != wanted or meta is None:
            continue
        if properties(vm).get("provisioningState") == "Deleting":
            continue
        found.append((vm, meta))
    return sorted(found, key=lambda pair: pair[1].joined_seq)


def counts_in_capacity(store: Store, meta: Meta) -> bool:
    return meta.created_by_scale_set or store.settings.manual_vms_count_in_capacity


def capacity_of(vmss: JsonDict) -> int:
    sku = vmss.get("sku")
    value = sku.get("capacity", 0) if isinstance(sku, dict) else 0
    return int(value or 0)


def set_capacity(store: Store, vmss: JsonDict, capacity: int) -> None:
    sku = vmss.get("sku")
    if not isinstance(sku, dict):
        sku = {}
        vmss["sku"] = sku
    sku["capacity"] = max(capacity, 0)
    store.touch(vmss)


def ip_configuration_from_profile(
    store: Store, ipc_props: JsonDict, *, alone: bool, with_groups: bool = True
) -> JsonDict:
    """The properties of a NIC ipConfiguration made from a profile's ipConfiguration (its public
    IP is made apart). ``with_groups``: carry applicationSecurityGroups too (Flexible NICs do)."""
    nic_ipc: JsonDict = {
        "provisioningState": "Succeeded",
        "privateIPAddress": store.next_private_address(),
        "privateIPAllocationMethod": "Dynamic",
        "primary": bool(ipc_props.get("primary", alone)),
        "privateIPAddressVersion": ipc_props.get("privateIPAddressVersion", "IPv4"),
    }
    subnet = reference_id(ipc_props.get("subnet"))
    if subnet:
        nic_ipc["subnet"] = {"id": subnet}
    carried = ["loadBalancerBackendAddressPools", "applicationGatewayBackendAddressPools"]
    if with_groups:
        carried.append("applicationSecurityGroups")
    for pools in carried:
        if ipc_props.get(pools):
            nic_ipc[pools] = copy.deepcopy(ipc_props[pools])
    return nic_ipc


def public_ip_from_profile(store: Store, public: JsonDict, ipc_id: str) -> tuple[dict[str, Any], JsonDict]:
    """The SKU and properties of a public IP made from a profile's publicIPAddressConfiguration."""
    public_props = properties(public)
    given_sku = public.get("sku")
    sku: dict[str, Any] = copy.deepcopy(given_sku) if isinstance(given_sku, dict) else {}
    sku.setdefault("name", "Standard")
    sku.setdefault("tier", "Regional")
    pip_props: JsonDict = {
        "provisioningState": "Succeeded",
        "resourceGuid": str(uuid.uuid4()),
        "ipAddress": store.next_public_address(),
        "publicIPAddressVersion": public_props.get("publicIPAddressVersion", "IPv4"),
        "publicIPAllocationMethod": "Static",
        "idleTimeoutInMinutes": public_props.get("idleTimeoutInMinutes", 4),
        "ipTags": copy.deepcopy(public_props.get("ipTags") or []),
        "ipConfiguration": {"id": ipc_id},
    }
    label = (public_props.get("dnsSettings") or {}).get("domainNameLabel")
    if label:
        pip_props["dnsSettings"] = {"domainNameLabel": label}
    return sku, pip_props
