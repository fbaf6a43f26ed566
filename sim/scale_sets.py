"""Microsoft.Compute's scale sets, in both orchestration modes: the set's own rules.

A scale-out creates its instances one at a time, spread over `provision_delay_s` (each with its
NIC and public IP at once), so a reader watching the set sees it grow, and the set stays
Creating / Updating until the last one exists; a scale-in deletes when the operation completes.
Which instances are made, and how, is flexible_instances.py's and uniform_instances.py's.

Since November 2023 Azure refuses a Flexible set whose instances would have no
outbound path (`OutboundConnectivityNotEnabledOnVM`, "No outbound connectivity
configured for virtual machine.", as documented in Microsoft's troubleshooting
article for Flexible orchestration deployments); the rule is reproduced for the
subnets the simulator holds.
"""

from __future__ import annotations

import json
import uuid

from sim.behaviour import Behaviour
from sim.documents import JsonDict, properties, reference_id, writable
from sim.errors import ArmError, invalid_parameter
from sim.events import RequestContext, utc_now_iso
from sim.flexible_instances import create_instance, flexible_missing, reconcile_capacity
from sim.ids import VMSS_TYPE, ResourceRef
from sim.network import check_subnet_reference, find_subnet
from sim.references import check_links
from sim.scale_set_model import is_flexible, members
from sim.store import Store
from sim.uniform_instances import (
    create_uniform_instance,
    reconcile_uniform,
    uniform_instances,
    uniform_missing,
    upgrade_instances,
)

MAX_FLEX_CAPACITY = 1000
MAX_UNIFORM_CAPACITY = 1000


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
        missing = flexible_missing(store, doc) if is_flexible(doc) else uniform_missing(store, doc)
        if missing != 0:
            return max(store.settings.provision_delay_s, lro)
        return lro

    def provisioning_steps(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> int:
        # A scale-out's instances appear one at a time while the set stays Creating / Updating.
        return max(flexible_missing(store, doc) if is_flexible(doc) else uniform_missing(store, doc), 0)

    def provision_step(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        child = RequestContext.platform(context.correlation_id)
        if is_flexible(doc):
            if flexible_missing(store, doc) > 0:
                create_instance(store, doc, child)
        elif uniform_missing(store, doc) > 0:
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
