"""A Uniform scale set's instances, with their NICs and public IPs, and manual upgrade.

Uniform sets (orchestrationMode Uniform, or absent) keep their instances as
child resources (`{set}/virtualMachines/{instanceId}`, ids "0", "1", ... never
reused), with NICs and public IPs that live under the instance and are only
visible through the scale-set endpoints of NRP. A change of the set's model
(its `virtualMachineProfile`) marks instances `latestModelApplied: false`; a
manual upgrade rebuilds their network from the current model, which is how a
public IP configuration is removed from existing Uniform instances.
"""

from __future__ import annotations

import copy
import secrets
import string
import uuid

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, new_etag, properties, reference_id
from sim.errors import ArmError
from sim.events import RequestContext, utc_now_iso
from sim.ids import IPCONFIG_TYPE, NIC_TYPE, PIP_TYPE, VMSS_VM_TYPE, ResourceRef
from sim.references import nat_pool_rules
from sim.scale_set_model import (
    INHERITED,
    capacity_of,
    ip_configuration_from_profile,
    public_ip_from_profile,
    set_capacity,
)
from sim.store import Store

_BASE36 = string.digits + string.ascii_uppercase


def uniform_instances(store: Store, vmss_id: str, *, include_deleting: bool = False) -> list[JsonDict]:
    """The live instance documents of a Uniform set, by ascending instance id."""
    prefix = ids.key(vmss_id) + "/virtualmachines/"
    found = [
        doc
        for doc in store.docs_of_type(VMSS_VM_TYPE)
        if ids.key(doc["id"]).startswith(prefix)
        and (include_deleting or properties(doc).get("provisioningState") != "Deleting")
    ]
    return sorted(found, key=lambda doc: _instance_number(str(doc.get("instanceId", ""))))


def _instance_number(instance_id: str) -> int:
    return int(instance_id) if instance_id.isdigit() else -1


def uniform_missing(store: Store, vmss: JsonDict) -> int:
    return capacity_of(vmss) - len(uniform_instances(store, vmss["id"]))


def reconcile_uniform(store: Store, vmss: JsonDict, context: RequestContext) -> None:
    """Create instances with the next ids, or delete the highest ids, until capacity is met."""
    child = RequestContext.platform(context.correlation_id)
    delta = uniform_missing(store, vmss)
    for _ in range(delta):
        create_uniform_instance(store, vmss, child)
    if delta < 0:
        for instance in list(reversed(uniform_instances(store, vmss["id"])))[:-delta]:
            store.remove_child(instance["id"], child)


def _base36(number: int, width: int = 6) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
        if number == 0:
            return digits.rjust(width, "0")


def create_uniform_instance(store: Store, vmss: JsonDict, context: RequestContext) -> JsonDict:
    """One Uniform instance `{set}_{n}`, with its NICs and public IPs under it, from the set's model."""
    meta = store.meta(vmss["id"])
    if meta is None:
        raise ArmError(500, "InternalServerError", f"scale set {vmss['id']} has no metadata")
    number = meta.next_instance
    meta.next_instance += 1
    instance_id = str(number)
    set_name = str(vmss.get("name", ""))
    doc: JsonDict = {
        "id": f"{vmss['id']}/virtualMachines/{instance_id}",
        "name": f"{set_name}_{instance_id}",
        "type": VMSS_VM_TYPE,
        "location": vmss["location"],
        "instanceId": instance_id,
        "etag": new_etag(),
        "properties": {
            "vmId": str(uuid.uuid4()),
            "timeCreated": utc_now_iso(),
            "provisioningState": "Succeeded",
            "modelDefinitionApplied": "VirtualMachineScaleSet",
        },
    }
    sku = vmss.get("sku")
    if isinstance(sku, dict) and sku.get("name"):
        doc["sku"] = {"name": sku["name"], "tier": sku.get("tier", "Standard")}
    zones = vmss.get("zones")
    if isinstance(zones, list) and zones:
        doc["zones"] = [zones[number % len(zones)]]
    _apply_model(store, vmss, doc)
    store.create_child(doc, context, created_by_scale_set=True)
    return doc


def _apply_model(store: Store, vmss: JsonDict, instance: JsonDict) -> None:
    """Give an instance the set's current model: profiles, computer name, and a new network."""
    profile: JsonDict = copy.deepcopy(properties(vmss).get("virtualMachineProfile") or {})
    props = properties(instance)
    number = _instance_number(str(instance.get("instanceId", "")))
    for name in INHERITED:
        props.pop(name, None)
        if name in profile:
            props[name] = copy.deepcopy(profile[name])
    storage = props.get("storageProfile")
    if isinstance(storage, dict) and isinstance(storage.get("osDisk"), dict):
        storage["osDisk"].pop("vhdContainers", None)
        storage["osDisk"]["name"] = f"{instance['name']}_OsDisk_1_{uuid.uuid4().hex}"
    os_profile: JsonDict = copy.deepcopy(profile.get("osProfile") or {})
    prefix = str(os_profile.pop("computerNamePrefix", str(vmss.get("name", ""))[:9]))
    for secret in ("adminPassword", "customData"):
        os_profile.pop(secret, None)
    os_profile["computerName"] = prefix + _base36(max(number, 0))
    props["osProfile"] = os_profile
    sku = vmss.get("sku")
    props["hardwareProfile"] = {"vmSize": sku.get("name", "Standard_DS1_v2") if isinstance(sku, dict) else ""}
    network: JsonDict = profile.get("networkProfile") or {}
    configs: list[JsonDict] = copy.deepcopy(network.get("networkInterfaceConfigurations") or [])
    for config in configs:
        for ipc in properties(config).get("ipConfigurations") or []:
            if isinstance(ipc, dict):
                ipc.pop("id", None)
    for old in store.children_under(instance["id"], NIC_TYPE) + store.children_under(
        instance["id"], PIP_TYPE
    ):
        store.remove_child(old["id"], RequestContext.platform(""), emit=False)
    refs = [
        {"id": _uniform_nic(store, vmss, instance, config, len(configs))["id"]}
        for config in configs
        if isinstance(config, dict) and config.get("name")
    ]
    props["networkProfile"] = {"networkInterfaces": refs}
    props["networkProfileConfiguration"] = {"networkInterfaceConfigurations": configs}
    props["latestModelApplied"] = True


def _uniform_nic(
    store: Store, vmss: JsonDict, instance: JsonDict, config: JsonDict, siblings: int
) -> JsonDict:
    nic_id = f"{instance['id']}/networkInterfaces/{config['name']}"
    etag = new_etag()
    config_props = properties(config)
    ipc_list = [ipc for ipc in config_props.get("ipConfigurations") or [] if isinstance(ipc, dict)]
    ip_configs: list[JsonDict] = []
    for ipc in ipc_list:
        ipc_props = properties(ipc)
        ipc_id = f"{nic_id}/ipConfigurations/{ipc['name']}"
        nic_ipc = ip_configuration_from_profile(store, ipc_props, alone=len(ipc_list) == 1, with_groups=False)
        nat_rules = nat_pool_rules(ipc_props, str(instance.get("instanceId", "")))
        if nat_rules:
            nic_ipc["loadBalancerInboundNatRules"] = nat_rules
        public = ipc_props.get("publicIPAddressConfiguration")
        if isinstance(public, dict) and public.get("name"):
            pip = _uniform_pip(store, vmss, ipc_id, public)
            nic_ipc["publicIPAddress"] = {"id": pip["id"]}
        ip_configs.append(
            {"name": ipc["name"], "id": ipc_id, "type": IPCONFIG_TYPE, "etag": etag, "properties": nic_ipc}
        )
    nic: JsonDict = {
        "id": nic_id,
        "name": config["name"],
        "type": NIC_TYPE,
        "location": vmss["location"],
        "etag": etag,
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": str(uuid.uuid4()),
            "ipConfigurations": ip_configs,
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "macAddress": "-".join(f"{b:02X}" for b in [0x00, 0x0D, 0x3A, *secrets.token_bytes(3)]),
            "enableAcceleratedNetworking": bool(config_props.get("enableAcceleratedNetworking", False)),
            "enableIPForwarding": bool(config_props.get("enableIPForwarding", False)),
            "primary": bool(config_props.get("primary", siblings == 1)),
            "virtualMachine": {"id": instance["id"]},
            "nicType": "Standard",
        },
    }
    nsg = reference_id(config_props.get("networkSecurityGroup"))
    if nsg:
        properties(nic)["networkSecurityGroup"] = {"id": nsg}
    # Uniform NICs and public IPs are NRP views of the set's model: no events of their own.
    store.insert(nic, created_by_scale_set=True)
    return nic


def _uniform_pip(store: Store, vmss: JsonDict, ipc_id: str, public: JsonDict) -> JsonDict:
    sku, pip_props = public_ip_from_profile(store, public, ipc_id)
    pip: JsonDict = {
        "id": f"{ipc_id}/publicIPAddresses/{public['name']}",
        "name": public["name"],
        "type": PIP_TYPE,
        "location": vmss["location"],
        "etag": new_etag(),
        "sku": sku,
        "properties": pip_props,
    }
    store.insert(pip, created_by_scale_set=True)
    return pip


def upgrade_instances(store: Store, vmss: JsonDict, instance_ids: list[str]) -> None:
    """Bring instances to the set's current model (what manualupgrade does)."""
    for instance_id in instance_ids:
        instance = store.doc(f"{vmss['id']}/virtualMachines/{instance_id}")
        if instance is None:
            continue
        _apply_model(store, vmss, instance)
        store.touch(instance)


class ScaleSetVirtualMachines(Behaviour):
    """Uniform instances: created by their set, deleted by API (which lowers the capacity)."""

    resource_type = VMSS_VM_TYPE

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        raise ArmError(405, "MethodNotAllowed", "Uniform instances are written through their scale set.")

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        for child in store.children_under(doc["id"], PIP_TYPE) + store.children_under(doc["id"], NIC_TYPE):
            store.remove_child(child["id"], context, emit=False)
        parsed = ids.parse_scale_set_child(doc["id"])
        vmss = store.doc(parsed.set_id) if parsed is not None else None
        if requested and vmss is not None and capacity_of(vmss) > 0:
            set_capacity(store, vmss, capacity_of(vmss) - 1)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        doc.setdefault("instanceId", str(doc["id"]).rstrip("/").rsplit("/", 1)[1])
        properties(doc).setdefault("latestModelApplied", True)

    def link(self, store: Store, doc: JsonDict) -> None:
        parsed = ids.parse_scale_set_child(doc["id"])
        meta = store.meta(parsed.set_id) if parsed is not None else None
        number = _instance_number(str(doc.get("instanceId", "")))
        if meta is not None and number >= meta.next_instance:
            meta.next_instance = number + 1
