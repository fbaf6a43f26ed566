"""Microsoft.Network: network interfaces, public IP addresses, virtual networks and subnets.

The remediator strips a public IP by PUTting the NIC without it and then
deleting the public IP, so the rules it runs into are NRP's: a NIC may only
reference public IPs that exist and are free; a public IP records which NIC
ipConfiguration holds it (`properties.ipConfiguration`, read-only), and cannot
be deleted while it does (400 `PublicIPAddressCannotBeDeleted`); a NIC attached
to a VM cannot be deleted (400 `NicInUse`). A NIC create or update completes in the
request, as the recordings of Azure show (200/201 `Succeeded`, no operation); with
`nic_update_long_running` an update is a long-running operation instead, and then a
detach takes effect when it completes, so a client that deletes the public IP without
waiting for the NIC update gets the same refusal it would get from Azure.

Virtual networks carry their subnets inline (and serve them at `/subnets/{name}`)
because the explicit-outbound rule for Flexible scale sets looks at a subnet's
`natGateway` and `routeTable`; a subnet that NICs still use cannot be removed
(400 `InUseSubnetCannotBeDeleted`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, properties, reference_id, writable
from sim.errors import ArmError, invalid_parameter, invalid_reference
from sim.events import RequestContext
from sim.ids import IPCONFIG_TYPE, NIC_TYPE, PIP_TYPE, SUBNET_TYPE, VMSS_TYPE, ResourceRef
from sim.references import check_links
from sim.store import Store

# Read-only NIC properties NRP owns: a PUT body cannot set or clear them.
_NIC_SERVER_OWNED = (
    "virtualMachine",
    "macAddress",
    "resourceGuid",
    "primary",
    "hostedWorkloads",
    "tapConfigurations",
    "privateEndpoint",
    "privateLinkService",
    "dscpConfiguration",
    "vnetEncryptionSupported",
    "defaultOutboundConnectivityEnabled",
)
# Read-only public IP properties: the back-reference above all.
_PIP_SERVER_OWNED = (
    "ipConfiguration",
    "resourceGuid",
    "natGateway",
    "linkedPublicIPAddress",
    "serviceAssociation",
)


def pip_in_use_message(pip_id: str, ip_configuration_id: str) -> str:
    """NRP's wording, as quoted in public bug reports (e.g. hashicorp/terraform-provider-azurerm#2566)."""
    return (
        f"Public IP address {pip_id} can not be deleted since it is still allocated to resource "
        f"{ip_configuration_id}. In order to delete the public IP, disassociate/detach the Public IP "
        "address from the resource.  To learn how to do this, see aka.ms/deletepublicip."
    )


def find_subnet(store: Store, subnet_id: str) -> JsonDict | None:
    """The live subnet `{vnetId}/subnets/{name}` inside its virtual network, if both exist."""
    vnet_id, sep, name = subnet_id.rstrip("/").rpartition("/subnets/")
    if not sep:
        return None
    vnet = store.doc(vnet_id)
    if vnet is None:
        return None
    for subnet in properties(vnet).get("subnets") or []:
        if isinstance(subnet, dict) and str(subnet.get("name", "")).lower() == name.lower():
            return subnet
    return None


def check_subnet_reference(store: Store, subnet_id: str, referrer: str) -> None:
    """With `require_known_subnets`, a subnet the simulator does not hold is a 400, as in Azure."""
    if store.settings.require_known_subnets and find_subnet(store, subnet_id) is None:
        raise invalid_reference(subnet_id, referrer)


def subnet_users(store: Store, subnet_id: str) -> list[str]:
    """Ids of the NIC ipConfigurations and scale sets that reference the subnet."""
    wanted = ids.key(subnet_id)
    users: list[str] = []
    for nic in store.docs_of_type(NIC_TYPE):
        for cfg in properties(nic).get("ipConfigurations") or []:
            if ids.key(reference_id(properties(cfg).get("subnet")) or "") == wanted:
                users.append(str(cfg.get("id", nic["id"])))
    for vmss in store.docs_of_type(VMSS_TYPE):
        network = (properties(vmss).get("virtualMachineProfile") or {}).get("networkProfile") or {}
        for config in network.get("networkInterfaceConfigurations") or []:
            for ipc in properties(config).get("ipConfigurations") or []:
                if ids.key(reference_id(properties(ipc).get("subnet")) or "") == wanted:
                    users.append(vmss["id"])
    return users


def subnet_in_use(subnet_id: str, users: list[str]) -> ArmError:
    return ArmError(
        400,
        "InUseSubnetCannotBeDeleted",
        f"Subnet {subnet_id.rsplit('/', 1)[-1]} is in use by {users[0]} and cannot be deleted. In order to "
        "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
    )


class VirtualNetworks(Behaviour):
    """Virtual networks with inline subnets; subnet ids, types and etags are the server's."""

    resource_type = ids.VNET_TYPE

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, ("resourceGuid",), current)
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        vnet_id = current["id"] if current is not None else ref.id
        subnets = props.get("subnets") or []
        if not isinstance(subnets, list):
            raise invalid_parameter("'subnets' must be a list.", target="subnets")
        names: set[str] = set()
        for subnet in subnets:
            if not isinstance(subnet, dict) or not subnet.get("name"):
                raise invalid_parameter("Every subnet of a virtual network needs a name.", target="subnets")
            if str(subnet["name"]).lower() in names:
                raise ArmError(
                    400,
                    "InvalidRequestFormat",
                    f"Cannot parse the request: subnet '{subnet['name']}' is given twice.",
                )
            names.add(str(subnet["name"]).lower())
            subnet_props = properties(subnet)
            if not subnet_props.get("addressPrefix") and not subnet_props.get("addressPrefixes"):
                raise invalid_parameter(
                    f"Subnet '{subnet['name']}' needs an addressPrefix.", target="addressPrefix"
                )
            subnet["id"] = f"{vnet_id}/subnets/{subnet['name']}"
            subnet["type"] = SUBNET_TYPE
            subnet_props.pop("provisioningState", None)
            for name in ("natGateway", "routeTable", "networkSecurityGroup"):
                if name in subnet_props and reference_id(subnet_props[name]) is None:
                    raise invalid_parameter(
                        f"The {name} reference of subnet '{subnet['name']}' needs an id.", target=name
                    )
        props["subnets"] = subnets
        if current is not None:
            for old in properties(current).get("subnets") or []:
                if isinstance(old, dict) and str(old.get("name", "")).lower() not in names:
                    users = subnet_users(store, str(old.get("id", "")))
                    if users:
                        raise subnet_in_use(str(old.get("id", "")), users)
        return doc

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        for subnet in properties(doc).get("subnets") or []:
            users = subnet_users(store, str(subnet.get("id", "")))
            if users:
                raise subnet_in_use(str(subnet.get("id", "")), users)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        for subnet in props.get("subnets") or []:
            if isinstance(subnet, dict) and subnet.get("name"):
                subnet.setdefault("id", f"{doc['id']}/subnets/{subnet['name']}")
                subnet.setdefault("type", SUBNET_TYPE)
                subnet.setdefault("etag", doc["etag"])
                properties(subnet).setdefault("provisioningState", "Succeeded")


class NetworkInterfaces(Behaviour):
    """NIC rules: ipConfiguration ids, public IP references and their back-references."""

    resource_type = NIC_TYPE

    def synchronous_put(self, store: Store, previous: JsonDict | None) -> bool:
        # Recorded from Azure (shared/fixtures/recorded-arm/interfaceclient.yaml): a NIC create answers
        # 201 and an update 200, both `Succeeded` with no operation to poll. An update of a NIC in use
        # by a running VM may be long-running in Azure: `nic_update_long_running` answers so.
        return previous is None or not store.settings.nic_update_long_running

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, _NIC_SERVER_OWNED, current)
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        nic_id = current["id"] if current is not None else ref.id
        configs = props.get("ipConfigurations")
        if not isinstance(configs, list) or not configs:
            raise invalid_parameter(
                f"Network interface {nic_id} must have one or more IP configurations.",
                target="ipConfigurations",
            )
        previous = {
            str(cfg.get("name", "")).lower(): properties(cfg)
            for cfg in (properties(current).get("ipConfigurations") or [] if current else [])
            if isinstance(cfg, dict)
        }
        claimed: dict[str, str] = {}
        for cfg in configs:
            if not isinstance(cfg, dict) or not cfg.get("name"):
                raise invalid_parameter("Every IP configuration of a network interface needs a name.")
            cfg_id = f"{nic_id}/ipConfigurations/{cfg['name']}"
            cfg["id"] = cfg_id
            cfg["type"] = IPCONFIG_TYPE
            cfg_props = properties(cfg)
            cfg_props.pop("provisioningState", None)
            cfg_props.setdefault("privateIPAllocationMethod", "Dynamic")
            if not cfg_props.get("privateIPAddress"):
                earlier = previous.get(str(cfg["name"]).lower(), {})
                cfg_props["privateIPAddress"] = (
                    earlier.get("privateIPAddress") or store.next_private_address()
                )
            cfg_props.setdefault("privateIPAddressVersion", "IPv4")
            subnet_id = reference_id(cfg_props.get("subnet"))
            if subnet_id is not None:
                check_subnet_reference(store, subnet_id, nic_id)
            check_links(store, cfg_props, nic_id)
            if len(configs) == 1:
                cfg_props.setdefault("primary", True)
            pip_id = reference_id(cfg_props.get("publicIPAddress"))
            if pip_id is None:
                continue
            pip = store.doc(pip_id)
            if pip is None or properties(pip).get("provisioningState") == "Deleting":
                raise invalid_reference(pip_id, nic_id)
            holder = reference_id(properties(pip).get("ipConfiguration"))
            other_nic = holder is not None and ids.parent_nic_key(holder) != ids.key(nic_id)
            if other_nic or ids.key(pip_id) in claimed:
                raise ArmError(
                    400,
                    "PublicIPAddressInUse",
                    f"Resource {pip['id']} is already in use by resource "
                    f"{holder if other_nic else claimed[ids.key(pip_id)]}; "
                    f"it cannot be referenced by {cfg_id}.",
                )
            claimed[ids.key(pip_id)] = cfg_id
        return doc

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        # Attaching is immediate (so a second NIC cannot take the same IP); detaching waits for completion.
        for cfg in properties(doc).get("ipConfigurations") or []:
            pip_id = reference_id(properties(cfg).get("publicIPAddress"))
            pip = store.doc(pip_id) if pip_id else None
            if pip is not None and reference_id(properties(pip).get("ipConfiguration")) != cfg["id"]:
                properties(pip)["ipConfiguration"] = {"id": cfg["id"]}
                store.touch(pip)

    def complete_put(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        held = {ids.key(cfg["id"]) for cfg in properties(doc).get("ipConfigurations") or [] if "id" in cfg}
        referenced = {
            ids.key(pip_id)
            for cfg in properties(doc).get("ipConfigurations") or []
            if (pip_id := reference_id(properties(cfg).get("publicIPAddress")))
        }
        for pip in store.docs_of_type(PIP_TYPE):
            holder = reference_id(properties(pip).get("ipConfiguration"))
            if holder is None or ids.parent_nic_key(holder) != ids.key(doc["id"]):
                continue
            if ids.key(holder) not in held or ids.key(pip["id"]) not in referenced:
                properties(pip).pop("ipConfiguration", None)
                store.touch(pip)

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        vm_id = reference_id(properties(doc).get("virtualMachine"))
        if vm_id is not None and store.doc(vm_id) is not None:
            raise ArmError(
                400,
                "NicInUse",
                f"Network Interface {doc['id']} is used by existing resource {vm_id}. In order to delete "
                "the network interface, it must be dissociated from the resource. To learn more, see "
                "aka.ms/deletenic.",
            )

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        for pip in store.docs_of_type(PIP_TYPE):
            holder = reference_id(properties(pip).get("ipConfiguration"))
            if holder is not None and ids.parent_nic_key(holder) == ids.key(doc["id"]):
                properties(pip).pop("ipConfiguration", None)
                store.touch(pip)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        for cfg in props.get("ipConfigurations") or []:
            if isinstance(cfg, dict) and cfg.get("name"):
                cfg.setdefault("id", f"{doc['id']}/ipConfigurations/{cfg['name']}")
                cfg.setdefault("etag", doc["etag"])
                properties(cfg).setdefault("provisioningState", "Succeeded")

    def link(self, store: Store, doc: JsonDict) -> None:
        for cfg in properties(doc).get("ipConfigurations") or []:
            if not isinstance(cfg, dict) or "id" not in cfg:
                continue
            pip_id = reference_id(properties(cfg).get("publicIPAddress"))
            pip = store.doc(pip_id) if pip_id else None
            if pip is not None:
                properties(pip)["ipConfiguration"] = {"id": cfg["id"]}


class PublicIPAddresses(Behaviour):
    """Public IP rules: defaults of a Standard IP, an address, and no delete while attached."""

    resource_type = PIP_TYPE

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, _PIP_SERVER_OWNED, current)
        # Basic SKU public IPs were retired in 2025: new ones default to Standard.
        given = doc.get("sku")
        sku: dict[str, Any] = given if isinstance(given, dict) else {"name": "Standard"}
        sku.setdefault("tier", "Regional")
        doc["sku"] = sku
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        props.setdefault("publicIPAddressVersion", "IPv4")
        static = str(sku.get("name", "")).lower() == "standard"
        props.setdefault("publicIPAllocationMethod", "Static" if static else "Dynamic")
        props.setdefault("idleTimeoutInMinutes", 4)
        props.setdefault("ipTags", [])
        earlier = properties(current).get("ipAddress") if current is not None else None
        if earlier:
            props["ipAddress"] = earlier
        elif not props.get("ipAddress") and props["publicIPAllocationMethod"] == "Static":
            props["ipAddress"] = store.next_public_address()
        return doc

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        holder = reference_id(properties(doc).get("ipConfiguration"))
        if holder is not None:
            raise ArmError(400, "PublicIPAddressCannotBeDeleted", pip_in_use_message(doc["id"], holder))

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        # Only reachable attached through a cascade (its NIC is going too): drop the dangling reference.
        holder = reference_id(properties(doc).get("ipConfiguration"))
        nic = store.doc(ids.parent_nic_key(holder)) if holder else None
        if nic is None:
            return
        for cfg in properties(nic).get("ipConfigurations") or []:
            cfg_props = properties(cfg)
            pip_id = reference_id(cfg_props.get("publicIPAddress"))
            if pip_id is not None and ids.key(pip_id) == ids.key(doc["id"]):
                cfg_props.pop("publicIPAddress", None)
                store.touch(nic)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("resourceGuid", str(uuid.uuid4()))
