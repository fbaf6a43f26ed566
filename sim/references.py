"""What an IP configuration (a NIC's, or one in a scale set's model) may reference besides its
subnet: load balancer backend pools, inbound NAT rules and NAT pools, and application security
groups. NRP refuses a body naming one that does not exist: 400 `InvalidResourceReference`.

A Uniform set's instance gets one inbound NAT rule per NAT pool of its model, named
`{pool}.{instanceId}` (the rules `az vmss list-instance-connection-info` reads); its NIC's
ipConfiguration names them in `loadBalancerInboundNatRules`.
"""

from __future__ import annotations

import re

from sim import ids
from sim.documents import JsonDict, properties, reference_id
from sim.errors import invalid_parameter, invalid_reference
from sim.store import Store

# ipConfiguration property -> the load balancer collection it points into ("" for an ASG).
LINKS: dict[str, str] = {
    "loadBalancerBackendAddressPools": "backendAddressPools",
    "loadBalancerInboundNatRules": "inboundNatRules",
    "loadBalancerInboundNatPools": "inboundNatPools",
    "applicationSecurityGroups": "",
}
_LB_CHILD = re.compile(
    r"^(?P<lb>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/loadBalancers/[^/]+)"
    r"/(?P<collection>[^/]+)/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)


def split_lb_child(child_id: str) -> tuple[str, str, str] | None:
    """(load balancer id, collection, name) of `{lb}/{collection}/{name}`, else None."""
    match = _LB_CHILD.match(child_id)
    return (match["lb"], match["collection"], match["name"]) if match else None


def lb_child(store: Store, child_id: str, collection: str) -> JsonDict | None:
    """The live child `collection/name` of a load balancer the simulator holds, if both exist."""
    parts = split_lb_child(child_id)
    if parts is None or parts[1].lower() != collection.lower():
        return None
    lb = store.doc(parts[0])
    if lb is None or properties(lb).get("provisioningState") == "Deleting":
        return None
    for child in properties(lb).get(collection) or []:
        if isinstance(child, dict) and str(child.get("name", "")).lower() == parts[2].lower():
            return child
    return None


def check_links(store: Store, ipc_props: JsonDict, referrer: str) -> None:
    """Refuse references to load balancer children or ASGs that do not exist (NRP's 400)."""
    for prop, collection in LINKS.items():
        value = ipc_props.get(prop)
        if value is None:
            continue
        if not isinstance(value, list):
            raise invalid_parameter(f"'{prop}' must be a list of references.", target=prop)
        for ref in value:
            target = reference_id(ref)
            if target is None:
                raise invalid_parameter(f"Every reference in '{prop}' needs an id.", target=prop)
            if collection:
                found = lb_child(store, target, collection) is not None
            else:
                asg = store.doc(target)
                found = asg is not None and str(asg.get("type", "")).lower() == ids.ASG_TYPE.lower()
            if not found:
                raise invalid_reference(target, referrer)


def nat_pool_rules(ipc_props: JsonDict, instance_id: str) -> list[JsonDict]:
    """The NAT rule references a Uniform instance's ipConfiguration gets from its model's NAT pools."""
    rules: list[JsonDict] = []
    for ref in ipc_props.get("loadBalancerInboundNatPools") or []:
        parts = split_lb_child(reference_id(ref) or "")
        if parts is not None:
            rules.append({"id": f"{parts[0]}/inboundNatRules/{parts[2]}.{instance_id}"})
    return rules


def ip_configurations(store: Store) -> list[tuple[str, JsonDict]]:
    """(id, properties) of every NIC ipConfiguration the simulator holds, Uniform instances' included."""
    found: list[tuple[str, JsonDict]] = []
    for nic in store.docs_of_type(ids.NIC_TYPE):
        for cfg in properties(nic).get("ipConfigurations") or []:
            if isinstance(cfg, dict) and "id" in cfg:
                found.append((str(cfg["id"]), properties(cfg)))
    return found


def scale_sets_referencing(store: Store, child_ids: set[str]) -> list[str]:
    """Ids of the scale sets whose model references one of `child_ids` (lower-cased keys)."""
    users: list[str] = []
    for vmss in store.docs_of_type(ids.VMSS_TYPE):
        network = (properties(vmss).get("virtualMachineProfile") or {}).get("networkProfile") or {}
        for config in network.get("networkInterfaceConfigurations") or []:
            for ipc in properties(config).get("ipConfigurations") or []:
                refs = [
                    ids.key(reference_id(ref) or "")
                    for prop in LINKS
                    for ref in properties(ipc).get(prop) or []
                ]
                if child_ids.intersection(refs) and vmss["id"] not in users:
                    users.append(vmss["id"])
    return users
