"""Microsoft.Compute: virtual machines, and scale sets in both orchestration modes.

This is where the problem the product solves is reproduced. A Flexible scale
set created with a public IP per instance in its profile gives every instance it
creates itself a public IP: when `sku.capacity` exceeds its instances, after a
delay, it creates VMs, NICs and public IPs from `virtualMachineProfile`, named
and shaped like real Flex instances (VM `{set}_{8 hex}`, NIC not prefixed by the
VM name, `networkInterfaceConfigurations` on the VM). VMs can also be attached
to a Flexible set by hand (`properties.virtualMachineScaleSet.id`); whether those
count in the capacity is undocumented, so it is a switch. The simulator knows
which VMs the set created (`Meta.created_by_scale_set`); the remediator must
infer it from the same evidence a real estate offers.

A scale-out creates its instances one at a time, spread over `provision_delay_s` (each with its
NIC and public IP at once), so a reader watching the set sees it grow, and the set stays
Creating / Updating until the last one exists; a scale-in deletes when the operation completes.

Uniform sets (orchestrationMode Uniform, or absent) keep their instances as
child resources (`{set}/virtualMachines/{instanceId}`, ids "0", "1", ... never
reused), with NICs and public IPs that live under the instance and are only
visible through the scale-set endpoints of NRP. A change of the set's model
(its `virtualMachineProfile`) marks instances `latestModelApplied: false`; a
manual upgrade rebuilds their network from the current model, which is how a
public IP configuration is removed from existing Uniform instances.

Since November 2023 Azure refuses a Flexible set whose instances would have no
outbound path (`OutboundConnectivityNotEnabledOnVM`, "No outbound connectivity
configured for virtual machine.", as documented in Microsoft's troubleshooting
article for Flexible orchestration deployments); the rule is reproduced for the
subnets the simulator holds.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import uuid
from typing import Any

from sim import ids
from sim.errors import ArmError, invalid_parameter, invalid_reference
from sim.events import RequestContext, utc_now_iso
from sim.ids import IPCONFIG_TYPE, NIC_TYPE, PIP_TYPE, VM_TYPE, VMSS_TYPE, VMSS_VM_TYPE, ResourceRef
from sim.network import check_subnet_reference, find_subnet
from sim.references import check_links, nat_pool_rules
from sim.store import Behaviour, JsonDict, Meta, Store, new_etag, properties, reference_id, writable

FLEXIBLE = "Flexible"
MAX_FLEX_CAPACITY = 1000
MAX_UNIFORM_CAPACITY = 1000
_BASE36 = string.digits + string.ascii_uppercase
# VirtualMachineProperties that a VM created by a Flex set inherits from the set's profile.
_INHERITED = (
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
# Properties of a VMSS ipConfiguration that the VM API does not declare.
_VMSS_ONLY_IPCONFIG = ("loadBalancerInboundNatPools",)


def scale_set_id(vm: JsonDict) -> str | None:
    """The id of the Flexible set a VM belongs to, if any."""
    return reference_id(properties(vm).get("virtualMachineScaleSet"))


def is_flexible(vmss: JsonDict) -> bool:
    return str(properties(vmss).get("orchestrationMode", "")).lower() == FLEXIBLE.lower()


def _profile_key(vmss: JsonDict | None) -> str:
    """A canonical text of the set's model, to tell whether a write changed it."""
    profile = properties(vmss).get("virtualMachineProfile") if vmss is not None else None
    return json.dumps(profile, sort_keys=True)


def _outbound_check(store: Store, vmss_id: str, profile: JsonDict) -> None:
    """Refuse a Flexible set whose instances would have no outbound path (Azure since Nov 2023).

    An instance has a path when one of its IP configurations has a public IP configuration, a load
    balancer backend pool, or a subnet with a NAT gateway or a route table (a UDR to a firewall). A
    subnet the simulator does not hold cannot be judged and is taken to have a path (unless
    `require_known_subnets`, which refuses it as an unknown reference).
    """
    network = profile.get("networkProfile") or {}
    ipconfigs = [
        ipc
        for config in network.get("networkInterfaceConfigurations") or []
        for ipc in properties(config).get("ipConfigurations") or []
        if isinstance(ipc, dict)
    ]
    if not ipconfigs or not network.get("networkApiVersion"):
        return
    for ipc in ipconfigs:
        ipc_props = properties(ipc)
        if isinstance(ipc_props.get("publicIPAddressConfiguration"), dict):
            return
        if ipc_props.get("loadBalancerBackendAddressPools"):
            return
        subnet_id = reference_id(ipc_props.get("subnet"))
        if subnet_id is None:
            continue
        subnet = find_subnet(store, subnet_id)
        if subnet is None:
            return
        subnet_props = properties(subnet)
        if reference_id(subnet_props.get("natGateway")) or reference_id(subnet_props.get("routeTable")):
            return
    raise ArmError(
        400,
        "OutboundConnectivityNotEnabledOnVM",
        "No outbound connectivity configured for virtual machine. Virtual machine scale set "
        f"{vmss_id} in Flexible orchestration mode needs explicit outbound connectivity for its "
        "instances: a public IP configuration, a load balancer backend pool, or a subnet with a NAT "
        "gateway or a route table. See aka.ms/defaultoutboundaccessretirement.",
    )


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


def _counts(store: Store, meta: Meta) -> bool:
    return meta.created_by_scale_set or store.settings.manual_vms_count_in_capacity


def _capacity(vmss: JsonDict) -> int:
    sku = vmss.get("sku")
    value = sku.get("capacity", 0) if isinstance(sku, dict) else 0
    return int(value or 0)


def _set_capacity(store: Store, vmss: JsonDict, capacity: int) -> None:
    sku = vmss.get("sku")
    if not isinstance(sku, dict):
        sku = {}
        vmss["sku"] = sku
    sku["capacity"] = max(capacity, 0)
    store.touch(vmss)


class VirtualMachines(Behaviour):
    """VM rules: NIC back-references, hand attach to a Flexible set, deleteOption on delete."""

    resource_type = VM_TYPE
    _server_owned = ("vmId", "timeCreated", "instanceView")

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, self._server_owned, current)
        props = properties(doc)
        props.setdefault("vmId", str(uuid.uuid4()))
        props.setdefault("timeCreated", utc_now_iso())
        vm_id = current["id"] if current is not None else ref.id
        set_id = scale_set_id(doc)
        previous_set = scale_set_id(current) if current is not None else None
        if current is not None and ids.key(set_id or "") != ids.key(previous_set or ""):
            raise ArmError(
                400,
                "PropertyChangeNotAllowed",
                "Changing property 'virtualMachineScaleSet.id' is not allowed.",
                target="virtualMachineScaleSet.id",
            )
        if set_id is not None and current is None:
            vmss = store.doc(set_id)
            if vmss is None or properties(vmss).get("provisioningState") == "Deleting":
                raise invalid_parameter(
                    f"The virtual machine scale set {set_id} referenced by virtual machine {vm_id} "
                    "was not found.",
                    target="virtualMachineScaleSet.id",
                )
            if not is_flexible(vmss):
                raise invalid_parameter(
                    f"Virtual machine scale set {vmss['id']} is not in Flexible orchestration mode; only "
                    "Flexible scale sets accept virtual machines attached by reference.",
                    target="virtualMachineScaleSet.id",
                )
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            if nic_id is None:
                raise invalid_parameter(
                    "Every network interface reference needs an id.", target="networkInterfaces"
                )
            nic = store.doc(nic_id)
            if nic is None or properties(nic).get("provisioningState") == "Deleting":
                raise invalid_reference(nic_id, vm_id)
            holder = reference_id(properties(nic).get("virtualMachine"))
            if holder is not None and ids.key(holder) != ids.key(vm_id) and store.doc(holder) is not None:
                raise ArmError(
                    400,
                    "NicInUse",
                    f"Network interface {nic['id']} is already used by virtual machine {holder}.",
                )
        return doc

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        wanted = {ids.key(nic_id) for nic_ref in _nic_refs(doc) if (nic_id := reference_id(nic_ref))}
        for nic_key in wanted:
            nic = store.doc(nic_key)
            if nic is not None and reference_id(properties(nic).get("virtualMachine")) != doc["id"]:
                properties(nic)["virtualMachine"] = {"id": doc["id"]}
                store.touch(nic)
        for nic_ref in _nic_refs(previous) if previous is not None else []:
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is not None and ids.key(nic["id"]) not in wanted:
                _detach_nic(store, nic, doc["id"])
        set_id = scale_set_id(doc)
        vmss = store.doc(set_id) if set_id else None
        if previous is None and vmss is not None and store.settings.manual_vms_count_in_capacity:
            _set_capacity(store, vmss, _capacity(vmss) + 1)

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is None:
                continue
            _detach_nic(store, nic, doc["id"])
            # CRP's default for a NIC attached by reference is Detach; Flex instances say Delete.
            if str(properties(nic_ref).get("deleteOption", "Detach")).lower() != "delete":
                continue
            doomed_pips = _pips_deleted_with(doc, nic)
            store.remove_child(nic["id"], context)
            for pip_id in doomed_pips:
                store.remove_child(pip_id, context)
        set_id = scale_set_id(doc)
        vmss = store.doc(set_id) if set_id else None
        meta = store.meta(doc["id"])
        # Deleting a Flex member by API lowers the capacity it counted in (the set does not replace it).
        if (
            requested
            and vmss is not None
            and meta is not None
            and _counts(store, meta)
            and _capacity(vmss) > 0
        ):
            _set_capacity(store, vmss, _capacity(vmss) - 1)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("vmId", str(uuid.uuid4()))

    def link(self, store: Store, doc: JsonDict) -> None:
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is not None:
                properties(nic)["virtualMachine"] = {"id": doc["id"]}
        set_id = scale_set_id(doc)
        meta = store.meta(doc["id"])
        vmss = store.doc(set_id) if set_id else None
        if meta is not None and vmss is not None:
            # An export does not say who created a VM; the Flex naming and profile copy are the evidence.
            name = str(doc.get("name", ""))
            prefix = f"{vmss.get('name', '')}_".lower()
            suffix = name[len(prefix) :]
            meta.created_by_scale_set = (
                name.lower().startswith(prefix)
                and len(suffix) == 8
                and all(c in string.hexdigits for c in suffix)
                and bool(properties(doc).get("networkProfile", {}).get("networkInterfaceConfigurations"))
            )


class VirtualMachineScaleSets(Behaviour):
    """Scale set rules; for Flexible sets, instances follow `sku.capacity` after a delay."""

    resource_type = VMSS_TYPE
    _server_owned = ("uniqueId", "timeCreated")

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, self._server_owned, current)
        props = properties(doc)
        props.setdefault("uniqueId", str(uuid.uuid4()))
        props.setdefault("timeCreated", utc_now_iso())
        if current is not None:
            before = properties(current).get("orchestrationMode")
            after = props.get("orchestrationMode")
            if after is None and before is not None:
                props["orchestrationMode"] = before
            elif before is not None and str(after).lower() != str(before).lower():
                raise ArmError(
                    400,
                    "PropertyChangeNotAllowed",
                    "Changing property 'orchestrationMode' is not allowed.",
                    target="orchestrationMode",
                )
        sku = doc.get("sku")
        capacity = sku.get("capacity", 0) if isinstance(sku, dict) else 0
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise invalid_parameter(
                "The value of parameter 'sku.capacity' is invalid.", target="sku.capacity"
            )
        flexible = is_flexible(doc)
        maximum = MAX_FLEX_CAPACITY if flexible else MAX_UNIFORM_CAPACITY
        if capacity > maximum:
            raise invalid_parameter(
                f"The capacity {capacity} exceeds the maximum of {maximum} for a "
                f"{'Flexible' if flexible else 'Uniform'} scale set.",
                target="sku.capacity",
            )
        profile = props.get("virtualMachineProfile")
        if capacity > 0 and not isinstance(profile, dict):
            raise invalid_parameter(
                "Required parameter 'virtualMachineProfile' is missing (null).",
                target="virtualMachineProfile",
            )
        if isinstance(profile, dict):
            set_id = current["id"] if current is not None else ref.id
            network = profile.get("networkProfile") or {}
            for config in network.get("networkInterfaceConfigurations") or []:
                for ipc in properties(config).get("ipConfigurations") or []:
                    subnet_id = reference_id(properties(ipc).get("subnet"))
                    if subnet_id is not None:
                        check_subnet_reference(store, subnet_id, set_id)
                    check_links(store, properties(ipc), set_id)
            if flexible:
                if network.get("networkInterfaceConfigurations") and not network.get("networkApiVersion"):
                    raise invalid_parameter(
                        "'networkApiVersion' must be specified when 'networkInterfaceConfigurations' "
                        "is used.",
                        target="virtualMachineProfile.networkProfile.networkApiVersion",
                    )
                _outbound_check(store, set_id, profile)
        return doc

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        if is_flexible(doc) or previous is None or _profile_key(doc) == _profile_key(previous):
            return
        # A new model: existing Uniform instances keep the old one until they are upgraded.
        for instance in uniform_instances(store, doc["id"]):
            properties(instance)["latestModelApplied"] = False
            store.touch(instance)

    def put_delay(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> float:
        lro = store.settings.lro_duration_s
        missing = _missing(store, doc) if is_flexible(doc) else _uniform_missing(store, doc)
        if missing != 0:
            return max(store.settings.provision_delay_s, lro)
        return lro

    def provisioning_steps(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> int:
        # A scale-out's instances appear one at a time while the set stays Creating / Updating.
        return max(_missing(store, doc) if is_flexible(doc) else _uniform_missing(store, doc), 0)

    def provision_step(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        child = RequestContext.platform(context.correlation_id)
        if is_flexible(doc):
            if _missing(store, doc) > 0:
                create_instance(store, doc, child)
        elif _uniform_missing(store, doc) > 0:
            create_uniform_instance(store, doc, child)

    def complete_put(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        # Whatever the steps did not create yet (a held scheduler runs them all at once) comes now.
        if is_flexible(doc):
            reconcile_capacity(store, doc, context)
            return
        reconcile_uniform(store, doc, context)
        mode = str((properties(doc).get("upgradePolicy") or {}).get("mode", "Manual")).lower()
        if mode in ("automatic", "rolling"):
            stale = [
                str(instance["instanceId"])
                for instance in uniform_instances(store, doc["id"])
                if not properties(instance).get("latestModelApplied", True)
            ]
            upgrade_instances(store, doc, stale)

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        # The set takes the instances it created with it; hand-attached VMs are left as they are.
        child = RequestContext.platform(context.correlation_id)
        for vm, meta in members(store, doc["id"]):
            if meta.created_by_scale_set:
                store.remove_child(vm["id"], child)
        for instance in uniform_instances(store, doc["id"], include_deleting=True):
            store.remove_child(instance["id"], child)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("uniqueId", str(uuid.uuid4()))


def _missing(store: Store, vmss: JsonDict) -> int:
    """Instances to create (positive) or delete (negative) to reach the capacity."""
    counted = [meta for _, meta in members(store, vmss["id"]) if _counts(store, meta)]
    return _capacity(vmss) - len(counted)


def reconcile_capacity(store: Store, vmss: JsonDict, context: RequestContext) -> None:
    """Create or delete instances until the counted members match `sku.capacity`."""
    child = RequestContext.platform(context.correlation_id)
    delta = _missing(store, vmss)
    for _ in range(delta):
        create_instance(store, vmss, child)
    if delta < 0:
        counted = [(vm, meta) for vm, meta in members(store, vmss["id"]) if _counts(store, meta)]
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
    props: JsonDict = {name: copy.deepcopy(profile[name]) for name in _INHERITED if name in profile}
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
        nic_ipc = _ip_configuration_from_profile(store, ipc_props, alone=len(ipc_list) == 1)
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


def _ip_configuration_from_profile(
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


def _public_ip_from_profile(store: Store, public: JsonDict, ipc_id: str) -> tuple[dict[str, Any], JsonDict]:
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


def _instance_pip(
    store: Store, *, set_ref: ResourceRef, short: str, location: str, public: JsonDict, ipc_id: str
) -> JsonDict:
    pip_name = f"{short}{secrets.randbelow(10000):04d}PublicIP-{secrets.token_hex(4)}"
    sku, pip_props = _public_ip_from_profile(store, public, ipc_id)
    return {
        "id": set_ref.sibling(PIP_TYPE, pip_name).id,
        "name": pip_name,
        "type": PIP_TYPE,
        "location": location,
        "etag": new_etag(),
        "sku": sku,
        "properties": pip_props,
    }


def _nic_refs(vm: JsonDict) -> list[JsonDict]:
    refs = (properties(vm).get("networkProfile") or {}).get("networkInterfaces") or []
    return [ref for ref in refs if isinstance(ref, dict)]


def _detach_nic(store: Store, nic: JsonDict, vm_id: str) -> None:
    holder = reference_id(properties(nic).get("virtualMachine"))
    if holder is not None and ids.key(holder) == ids.key(vm_id):
        properties(nic).pop("virtualMachine", None)
        store.touch(nic)


def _pips_deleted_with(vm: JsonDict, nic: JsonDict) -> list[str]:
    """Public IPs on `nic` whose VM-side configuration says deleteOption Delete."""
    options: dict[str, str] = {}
    configs = (properties(vm).get("networkProfile") or {}).get("networkInterfaceConfigurations") or []
    for config in configs:
        for ipc in properties(config).get("ipConfigurations") or []:
            public = properties(ipc).get("publicIPAddressConfiguration")
            if isinstance(public, dict):
                options[str(ipc.get("name", "")).lower()] = str(
                    properties(public).get("deleteOption", "Detach")
                )
    doomed: list[str] = []
    for cfg in properties(nic).get("ipConfigurations") or []:
        pip_id = reference_id(properties(cfg).get("publicIPAddress"))
        if pip_id and options.get(str(cfg.get("name", "")).lower(), "").lower() == "delete":
            doomed.append(pip_id)
    return doomed


# ------------------------------------------------------------------------------ Uniform sets


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


def _uniform_missing(store: Store, vmss: JsonDict) -> int:
    return _capacity(vmss) - len(uniform_instances(store, vmss["id"]))


def reconcile_uniform(store: Store, vmss: JsonDict, context: RequestContext) -> None:
    """Create instances with the next ids, or delete the highest ids, until capacity is met."""
    child = RequestContext.platform(context.correlation_id)
    delta = _uniform_missing(store, vmss)
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
    for name in _INHERITED:
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
        nic_ipc = _ip_configuration_from_profile(
            store, ipc_props, alone=len(ipc_list) == 1, with_groups=False
        )
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
    sku, pip_props = _public_ip_from_profile(store, public, ipc_id)
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
        if requested and vmss is not None and _capacity(vmss) > 0:
            _set_capacity(store, vmss, _capacity(vmss) - 1)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        doc.setdefault("instanceId", str(doc["id"]).rstrip("/").rsplit("/", 1)[1])
        properties(doc).setdefault("latestModelApplied", True)

    def link(self, store: Store, doc: JsonDict) -> None:
        parsed = ids.parse_scale_set_child(doc["id"])
        meta = store.meta(parsed.set_id) if parsed is not None else None
        number = _instance_number(str(doc.get("instanceId", "")))
        if meta is not None and number >= meta.next_instance:
            meta.next_instance = number + 1
