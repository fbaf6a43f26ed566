"""The VMs a Flexible scale set creates itself, each with its NICs and public IPs.

This is where the problem the product solves is reproduced. A Flexible scale
set created with a public IP per instance in its profile gives every instance it
creates itself a public IP: when `sku.capacity` exceeds its instances, after a
delay, it creates VMs, NICs and public IPs from `virtualMachineProfile`, named
and shaped like real Flex instances (VM `{set}_{8 hex}`, NIC not prefixed by the
VM name, `networkInterfaceConfigurations` on the VM). VMs can also be attached
to a Flexible set by hand (sim/virtual_machines.py).
"""

from __future__ import annotations

import copy
import secrets
import string
import uuid

from sim import ids
from sim.documents import JsonDict, new_etag, properties, reference_id
from sim.errors import ArmError
from sim.events import RequestContext, utc_now_iso
from sim.ids import IPCONFIG_TYPE, NIC_TYPE, PIP_TYPE, VM_TYPE, ResourceRef
from sim.scale_set_model import (
    INHERITED,
    capacity_of,
    counts_in_capacity,
    ip_configuration_from_profile,
    members,
    public_ip_from_profile,
)
from sim.store import Store

# Properties of a VMSS ipConfiguration that the VM API does not declare.
_VMSS_ONLY_IPCONFIG = ("loadBalancerInboundNatPools",)


def flexible_missing(store: Store, vmss: JsonDict) -> int:
    """Instances to create (positive) or delete (negative) to reach the capacity."""
    counted = [meta for _, meta in members(store, vmss["id"]) if counts_in_capacity(store, meta)]
    return capacity_of(vmss) - len(counted)


def reconcile_capacity(store: Store, vmss: JsonDict, context: RequestContext) -> None:
    """Create or delete instances until the counted members match `sku.capacity`."""
    child = RequestContext.platform(context.correlation_id)
    delta = flexible_missing(store, vmss)
    for _ in range(delta):
        create_instance(store, vmss, child)
    if delta < 0:
        counted = [(vm, meta) for vm, meta in members(store, vmss["id"]) if counts_in_capacity(store, meta)]
        newest_first = sorted(counted, key=lambda pair: pair[1].joined_seq, reverse=True)
        for vm, _ in newest_first[:-delta]:
            store.remove_child(vm["id"], child)


def create_instance(store: Store, vmss: JsonDict, context: RequestContext) -> JsonDict:
    """One VM with its NICs and public IPs, built from the set's profile like a real Flex instance."""
    set_ref = ids.parse(vmss["id"])
    if set_ref is None:
        raise ArmError(500, "InternalServerError", f"bad scale set id {vmss['id']}")
    set_name = str(vmss.get("name", set_ref.name))
    profile: JsonDict = copy.deepcopy(properties(vmss).get("virtualMachineProfile") or {})
    vm_name = f"{set_name}_{secrets.token_hex(4)}"
    vm_id = set_ref.sibling(VM_TYPE, vm_name).id
    location = vmss["location"]
    network: JsonDict = profile.get("networkProfile") or {}
    configs: list[JsonDict] = copy.deepcopy(network.get("networkInterfaceConfigurations") or [])
    nic_refs: list[JsonDict] = []
    for config in configs:
        config_props = properties(config)
        config_props.setdefault("deleteOption", "Delete")
        for ipc in config_props.get("ipConfigurations") or []:
            for name in _VMSS_ONLY_IPCONFIG:
                properties(ipc).pop(name, None)
            public = properties(ipc).get("publicIPAddressConfiguration")
            if isinstance(public, dict):
                properties(public).setdefault("deleteOption", "Delete")
        nic = _instance_nic(
            store,
            set_ref=set_ref,
            set_name=set_name,
            location=location,
            config=config,
            vm_id=vm_id,
            context=context,
        )
        nic_refs.append(
            {
                "id": nic["id"],
                "properties": {
                    "primary": bool(config_props.get("primary", len(configs) == 1)),
                    "deleteOption": config_props["deleteOption"],
                },
            }
        )
    os_profile: JsonDict = copy.deepcopy(profile.get("osProfile") or {})
    prefix = str(os_profile.pop("computerNamePrefix", set_name[:9]))
    for secret in ("adminPassword", "customData"):
        os_profile.pop(secret, None)  # ARM never returns them
    alphabet = string.ascii_lowercase + string.digits
    os_profile["computerName"] = prefix + "".join(secrets.choice(alphabet) for _ in range(6))
    props: JsonDict = {name: copy.deepcopy(profile[name]) for name in INHERITED if name in profile}
    storage = props.get("storageProfile")
    if isinstance(storage, dict) and isinstance(storage.get("osDisk"), dict):
        storage["osDisk"].pop("vhdContainers", None)
        storage["osDisk"]["name"] = f"{vm_name}_OsDisk_1_{uuid.uuid4().hex}"
    given_sku = vmss.get("sku")
    sku: JsonDict = given_sku if isinstance(given_sku, dict) else {}
    network_profile: JsonDict = {"networkInterfaces": nic_refs}
    if network.get("networkApiVersion"):
        network_profile["networkApiVersion"] = network["networkApiVersion"]
    if configs:
        network_profile["networkInterfaceConfigurations"] = configs
    props.update(
        {
            "virtualMachineScaleSet": {"id": vmss["id"]},
            "hardwareProfile": {"vmSize": sku.get("name", "Standard_DS1_v2")},
            "osProfile": os_profile,
            "networkProfile": network_profile,
            "provisioningState": "Succeeded",
            "vmId": str(uuid.uuid4()),
            "timeCreated": utc_now_iso(),
        }
    )
    vm: JsonDict = {
        "id": vm_id,
        "name": vm_name,
        "type": VM_TYPE,
        "location": location,
        "etag": new_etag(),
        "properties": props,
    }
    zones = vmss.get("zones")
    if isinstance(zones, list) and zones:
        vm["zones"] = [zones[len(members(store, vmss["id"])) % len(zones)]]
    store.create_child(vm, context, created_by_scale_set=True)
    return vm


def _instance_nic(
    store: Store,
    *,
    set_ref: ResourceRef,
    set_name: str,
    location: str,
    config: JsonDict,
    vm_id: str,
    context: RequestContext,
) -> JsonDict:
    """The NIC (and its public IPs) for one networkInterfaceConfiguration of a Flex instance."""
    short = set_name[:5].lower()
    nic_name = f"{short}{secrets.randbelow(10000):04d}Nic-{secrets.token_hex(4)}"
    nic_id = set_ref.sibling(NIC_TYPE, nic_name).id
    etag = new_etag()
    config_props = properties(config)
    ip_configs: list[JsonDict] = []
    ipc_list = config_props.get("ipConfigurations") or []
    for ipc in ipc_list:
        ipc_props = properties(ipc)
        ipc_id = f"{nic_id}/ipConfigurations/{ipc['name']}"
        nic_ipc = ip_configuration_from_profile(store, ipc_props, alone=len(ipc_list) == 1)
        public = ipc_props.get("publicIPAddressConfiguration")
        if isinstance(public, dict):
            pip = _instance_pip(
                store, set_ref=set_ref, short=short, location=location, public=public, ipc_id=ipc_id
            )
            store.create_child(pip, context)
            nic_ipc["publicIPAddress"] = {"id": pip["id"]}
        ip_configs.append(
            {"name": ipc["name"], "id": ipc_id, "type": IPCONFIG_TYPE, "etag": etag, "properties": nic_ipc}
        )
    nic_props: JsonDict = {
        "provisioningState": "Succeeded",
        "resourceGuid": str(uuid.uuid4()),
        "ipConfigurations": ip_configs,
        "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
        "macAddress": "-".join(f"{b:02X}" for b in [0x00, 0x0D, 0x3A, *secrets.token_bytes(3)]),
        "enableAcceleratedNetworking": bool(config_props.get("enableAcceleratedNetworking", False)),
        "enableIPForwarding": bool(config_props.get("enableIPForwarding", False)),
        "primary": bool(config_props.get("primary", True)),
        "virtualMachine": {"id": vm_id},
        "nicType": "Standard",
        "vnetEncryptionSupported": False,
    }
    nsg = reference_id(config_props.get("networkSecurityGroup"))
    if nsg:
        nic_props["networkSecurityGroup"] = {"id": nsg}
    nic: JsonDict = {
        "id": nic_id,
        "name": nic_name,
        "type": NIC_TYPE,
        "location": location,
        "etag": etag,
        "properties": nic_props,
    }
    store.create_child(nic, context)
    return nic


def _instance_pip(
    store: Store, *, set_ref: ResourceRef, short: str, location: str, public: JsonDict, ipc_id: str
) -> JsonDict:
    pip_name = f"{short}{secrets.randbelow(10000):04d}PublicIP-{secrets.token_hex(4)}"
    sku, pip_props = public_ip_from_profile(store, public, ipc_id)
    return {
        "id": set_ref.sibling(PIP_TYPE, pip_name).id,
        "name": pip_name,
        "type": PIP_TYPE,
        "location": location,
        "etag": new_etag(),
        "sku": sku,
        "properties": pip_props,
    }
