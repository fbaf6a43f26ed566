"""Microsoft.Network: load balancers and application security groups.

Shapes follow real traffic (shared/fixtures/recorded-arm/loadbalancerclient.yaml and
backendaddresspoolclient.yaml): a load balancer is served with every child collection present
(empty lists included); each child carries its id `{lb}/{collection}/{name}`, its type
`Microsoft.Network/loadBalancers/{collection}` and the load balancer's etag; the sku gets tier
`Regional`, a frontend `privateIPAllocationMethod: Dynamic`, a backend pool
`loadBalancerBackendAddresses: []`.

What NRP derives from other resources is served as a view of them, so it cannot disagree with the
NICs: a backend pool's `backendIPConfigurations` (every NIC ipConfiguration in the pool, a Uniform
instance's included), an inbound NAT rule's `backendIPConfiguration`, and, for each NAT pool, one
rule per Uniform instance that uses it, `{pool}.{instanceId}`, frontend port
`frontendPortRangeStart + instanceId` (Azure keeps the ports inside the pool's range and refuses
a scale-out that does not fit, with a code no recording shows; the simulator does not refuse
it). The back-references inside the document (a frontend's rules, a probe's rules) are derived
from its own rules the same way. A frontend's public IP records
the frontend in `ipConfiguration`, so no NIC can take it and it cannot be deleted meanwhile.

A load balancer whose children a scale set's model or a NIC references cannot be deleted, and a PUT
cannot drop such a child: 400 `LoadBalancerInUseByVirtualMachineScaleSet`, "Cannot delete load
balancer {id} since its child resources {names} are in use by virtual machine scale set {id}" (as
kubernetes-sigs/cloud-provider-azure quotes NRP); for a child, NRP's "Cannot remove backend address
pool {name} from load balancer since it is in use by virtual machine scale set {id}"
(Azure/vm-scale-sets#53, Azure/azure-powershell#4698). NRP's code for a NIC user is not
documented; the same code is used.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, properties, reference_id, writable
from sim.errors import ArmError, invalid_parameter, invalid_reference
from sim.events import RequestContext
from sim.ids import ASG_TYPE, LB_COLLECTIONS, LB_TYPE, ResourceRef
from sim.network import check_subnet_reference
from sim.references import ip_configurations, scale_sets_referencing, split_lb_child
from sim.store import Store

# Child properties NRP owns (back-references): a client's body cannot set them.
_DERIVED: dict[str, tuple[str, ...]] = {
    "frontendIPConfigurations": ("loadBalancingRules", "inboundNatRules", "inboundNatPools", "outboundRules"),
    "backendAddressPools": ("backendIPConfigurations", "loadBalancingRules", "outboundRule", "outboundRules"),
    "probes": ("loadBalancingRules",),
    "inboundNatRules": ("backendIPConfiguration",),
}
# The children that name other children of their load balancer.
_RULES = ("loadBalancingRules", "inboundNatRules", "inboundNatPools", "outboundRules")
_POOL_RULE = re.compile(r"^(?P<pool>.+)\.(?P<instance>\d+)$")


def _children(doc: JsonDict, collection: str) -> list[JsonDict]:
    return [c for c in properties(doc).get(collection) or [] if isinstance(c, dict)]


def _names(doc: JsonDict, collection: str) -> dict[str, JsonDict]:
    return {str(c.get("name", "")).lower(): c for c in _children(doc, collection)}


class LoadBalancers(Behaviour):
    """Load balancers with their inline children; back-references served as views."""

    resource_type = LB_TYPE

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, ("resourceGuid",), current)
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        lb_id = current["id"] if current is not None else ref.id
        given_sku = doc.get("sku")
        sku: dict[str, Any] = given_sku if isinstance(given_sku, dict) else {"name": "Standard"}
        sku.setdefault("tier", "Regional")
        doc["sku"] = sku
        for collection in LB_COLLECTIONS:
            children = props.get(collection)
            if children is None:
                props[collection] = []
                continue
            if not isinstance(children, list):
                raise invalid_parameter(f"'{collection}' must be a list.", target=collection)
            seen: set[str] = set()
            for child in children:
                if not isinstance(child, dict) or not child.get("name"):
                    raise invalid_parameter(f"Every item of '{collection}' needs a name.", target=collection)
                if str(child["name"]).lower() in seen:
                    raise invalid_parameter(
                        f"'{collection}' names '{child['name']}' twice.", target=collection
                    )
                seen.add(str(child["name"]).lower())
                child["id"] = f"{lb_id}/{collection}/{child['name']}"
                child["type"] = f"{LB_TYPE}/{collection}"
                child_props = properties(child)
                child_props.pop("provisioningState", None)
                for derived in _DERIVED.get(collection, ()):
                    child_props.pop(derived, None)
                if collection == "backendAddressPools":
                    child_props.setdefault("loadBalancerBackendAddresses", [])
        self._check_internal(doc, lb_id)
        self._check_frontends(store, doc, lb_id)
        self._check_nat_pools(doc)
        if current is not None:
            self._check_removals(store, current, doc)
        return doc

    @staticmethod
    def _check_internal(doc: JsonDict, lb_id: str) -> None:
        """Rules, NAT rules and pools may only name children of this load balancer that exist."""
        for collection in _RULES:
            for child in _children(doc, collection):
                for target_id in _internal_refs(child):
                    parts = split_lb_child(target_id)
                    if (
                        parts is None
                        or ids.key(parts[0]) != ids.key(lb_id)
                        or parts[2].lower() not in _names(doc, _canonical_collection(parts[1]))
                    ):
                        raise invalid_reference(target_id, str(child["id"]))

    @staticmethod
    def _check_frontends(store: Store, doc: JsonDict, lb_id: str) -> None:
        for frontend in _children(doc, "frontendIPConfigurations"):
            front = properties(frontend)
            front.setdefault("privateIPAllocationMethod", "Dynamic")
            subnet_id = reference_id(front.get("subnet"))
            if subnet_id is not None:
                check_subnet_reference(store, subnet_id, lb_id)
            pip_id = reference_id(front.get("publicIPAddress"))
            if pip_id is None:
                continue
            front["publicIPAddress"] = {"id": pip_id}  # NRP keeps only the reference (recordings)
            pip = store.doc(pip_id)
            if pip is None or properties(pip).get("provisioningState") == "Deleting":
                raise invalid_reference(pip_id, str(frontend["id"]))
            holder = reference_id(properties(pip).get("ipConfiguration"))
            if holder is not None and ids.key(holder) != ids.key(str(frontend["id"])):
                raise ArmError(
                    400,
                    "PublicIPAddressInUse",
                    f"Resource {pip['id']} is already in use by resource {holder}; "
                    f"it cannot be referenced by {frontend['id']}.",
                )

    @staticmethod
    def _check_nat_pools(doc: JsonDict) -> None:
        for pool in _children(doc, "inboundNatPools"):
            pool_props = properties(pool)
            start, end = pool_props.get("frontendPortRangeStart"), pool_props.get("frontendPortRangeEnd")
            valid = isinstance(start, int) and isinstance(end, int) and 1 <= start <= end <= 65535
            if not valid or not isinstance(pool_props.get("backendPort"), int):
                raise invalid_parameter(
                    f"Inbound NAT pool {pool['id']} needs backendPort and a frontend port range "
                    "1 <= frontendPortRangeStart <= frontendPortRangeEnd <= 65535.",
                    target="inboundNatPools",
                )
            if reference_id(pool_props.get("frontendIPConfiguration")) is None:
                raise invalid_parameter(
                    f"Inbound NAT pool {pool['id']} needs a frontendIPConfiguration.",
                    target="inboundNatPools",
                )

    @staticmethod
    def _check_removals(store: Store, current: JsonDict, doc: JsonDict) -> None:
        """A PUT cannot drop a pool, NAT pool or NAT rule that a scale set or a NIC still uses."""
        for collection in ("backendAddressPools", "inboundNatPools", "inboundNatRules"):
            kept = _names(doc, collection)
            for old in _children(current, collection):
                if str(old.get("name", "")).lower() in kept:
                    continue
                users = child_users(store, {ids.key(str(old.get("id", "")))})
                if users:
                    kind = {"backendAddressPools": "backend address pool"}.get(collection, "inbound nat pool")
                    raise ArmError(
                        400,
                        "LoadBalancerInUseByVirtualMachineScaleSet",
                        f"Cannot remove {kind} {old.get('name')} from load balancer since it is in use "
                        f"by virtual machine scale set {users[0]}.",
                    )

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        held = _frontend_ips(doc)
        for pip_key, frontend_id in held.items():
            pip = store.doc(pip_key)
            if pip is not None and reference_id(properties(pip).get("ipConfiguration")) != frontend_id:
                properties(pip)["ipConfiguration"] = {"id": frontend_id}
                store.touch(pip)
        if previous is not None:
            _release(store, {k: v for k, v in _frontend_ips(previous).items() if k not in held})

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        child_keys = {
            ids.key(str(c["id"])) for col in LB_COLLECTIONS for c in _children(doc, col) if "id" in c
        }
        users = child_users(store, child_keys)
        if users:
            raise ArmError(
                400,
                "LoadBalancerInUseByVirtualMachineScaleSet",
                f"Cannot delete load balancer {doc['id']} since its child resources {doc.get('name')} are "
                f"in use by virtual machine scale set {users[0]}.",
            )

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        _release(store, _frontend_ips(doc))

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        props = properties(doc)
        props.setdefault("resourceGuid", str(uuid.uuid4()))
        for collection in LB_COLLECTIONS:
            props.setdefault(collection, [])
            for child in _children(doc, collection):
                if child.get("name"):
                    child.setdefault("id", f"{doc['id']}/{collection}/{child['name']}")
                    child.setdefault("type", f"{LB_TYPE}/{collection}")
                    child.setdefault("etag", doc["etag"])
                    properties(child).setdefault("provisioningState", "Succeeded")

    def link(self, store: Store, doc: JsonDict) -> None:
        for pip_key, frontend_id in _frontend_ips(doc).items():
            pip = store.doc(pip_key)
            if pip is not None:
                properties(pip)["ipConfiguration"] = {"id": frontend_id}

    def view(self, store: Store, doc: JsonDict) -> None:
        state = properties(doc).get("provisioningState", "Succeeded")
        for collection in LB_COLLECTIONS:
            for child in _children(doc, collection):
                properties(child)["provisioningState"] = state
        _derive_internal(doc)
        _derive_memberships(store, doc)


def _frontend_ips(doc: JsonDict) -> dict[str, str]:
    """Public IP key -> the id of the frontend that holds it."""
    return {
        ids.key(pip_id): str(frontend["id"])
        for frontend in _children(doc, "frontendIPConfigurations")
        if (pip_id := reference_id(properties(frontend).get("publicIPAddress"))) and "id" in frontend
    }


def _release(store: Store, frontends: dict[str, str]) -> None:
    for pip_key, frontend_id in frontends.items():
        pip = store.doc(pip_key)
        holder = reference_id(properties(pip).get("ipConfiguration")) if pip is not None else None
        if pip is not None and holder is not None and ids.key(holder) == ids.key(frontend_id):
            properties(pip).pop("ipConfiguration", None)
            store.touch(pip)


def child_users(store: Store, child_keys: set[str]) -> list[str]:
    """Scale sets (by model) and NIC ipConfigurations that reference one of the children."""
    users = scale_sets_referencing(store, child_keys)
    for ipc_id, ipc_props in ip_configurations(store):
        for prop in ("loadBalancerBackendAddressPools", "loadBalancerInboundNatRules"):
            if any(ids.key(reference_id(r) or "") in child_keys for r in ipc_props.get(prop) or []):
                users.append(ipc_id)
    return users


def _derive_internal(doc: JsonDict) -> None:
    """Frontends, pools and probes list the rules of this load balancer that use them."""
    by_key = {ids.key(str(c["id"])): c for col in LB_COLLECTIONS for c in _children(doc, col) if "id" in c}
    for collection, derived in _DERIVED.items():
        for child in _children(doc, collection):
            for name in derived:
                properties(child).pop(name, None)
    for collection in _RULES:
        for rule in _children(doc, collection):
            for target_id in _internal_refs(rule):
                target = by_key.get(ids.key(target_id))
                if target is not None:
                    listed = properties(target).setdefault(collection, [])
                    if {"id": rule["id"]} not in listed:
                        listed.append({"id": rule["id"]})


def _internal_refs(rule: JsonDict) -> list[str]:
    """Ids of the frontends, pools and probes a rule, NAT rule, NAT pool or outbound rule names."""
    rule_props = properties(rule)
    values = [rule_props.get(p) for p in ("frontendIPConfiguration", "backendAddressPool", "probe")]
    values += list(rule_props.get("frontendIPConfigurations") or [])
    values += list(rule_props.get("backendAddressPools") or [])
    return [target for value in values if (target := reference_id(value))]


def _canonical_collection(segment: str) -> str:
    return next((c for c in LB_COLLECTIONS if c.lower() == segment.lower()), segment)


def _derive_memberships(store: Store, doc: JsonDict) -> None:
    """Pools list their NIC ipConfigurations; NAT pools give each Uniform instance its own rule."""
    pools = {ids.key(str(p["id"])): p for p in _children(doc, "backendAddressPools") if "id" in p}
    static_rules = {ids.key(str(r["id"])): r for r in _children(doc, "inboundNatRules") if "id" in r}
    nat_pools = _names(doc, "inboundNatPools")
    generated: list[JsonDict] = []
    prefix = ids.key(doc["id"]) + "/inboundnatrules/"
    for ipc_id, ipc_props in ip_configurations(store):
        for ref in ipc_props.get("loadBalancerBackendAddressPools") or []:
            pool = pools.get(ids.key(reference_id(ref) or ""))
            if pool is not None:
                properties(pool).setdefault("backendIPConfigurations", []).append({"id": ipc_id})
        for ref in ipc_props.get("loadBalancerInboundNatRules") or []:
            rule_key = ids.key(reference_id(ref) or "")
            if rule_key in static_rules:
                properties(static_rules[rule_key])["backendIPConfiguration"] = {"id": ipc_id}
                continue
            match = _POOL_RULE.match(rule_key[len(prefix) :]) if rule_key.startswith(prefix) else None
            pool = nat_pools.get(match["pool"]) if match else None
            if match is None or pool is None:
                continue
            generated.append(_pool_rule(doc, pool, int(match["instance"]), ipc_id))
    properties(doc)["inboundNatRules"] = _children(doc, "inboundNatRules") + generated


def _pool_rule(doc: JsonDict, pool: JsonDict, instance: int, ipc_id: str) -> JsonDict:
    pool_props = properties(pool)
    name = f"{pool['name']}.{instance}"
    return {
        "name": name,
        "id": f"{doc['id']}/inboundNatRules/{name}",
        "etag": doc.get("etag"),
        "type": f"{LB_TYPE}/inboundNatRules",
        "properties": {
            "provisioningState": "Succeeded",
            "frontendIPConfiguration": copy.deepcopy(pool_props.get("frontendIPConfiguration")),
            "frontendPort": int(pool_props["frontendPortRangeStart"]) + instance,
            "backendPort": pool_props.get("backendPort"),
            "protocol": pool_props.get("protocol", "Tcp"),
            "idleTimeoutInMinutes": pool_props.get("idleTimeoutInMinutes", 4),
            "enableFloatingIP": bool(pool_props.get("enableFloatingIP", False)),
            "enableTcpReset": bool(pool_props.get("enableTcpReset", False)),
            "backendIPConfiguration": {"id": ipc_id},
        },
    }


class ApplicationSecurityGroups(Behaviour):
    """Application security groups: a resourceGuid, and no delete while an ipConfiguration uses one."""

    resource_type = ASG_TYPE

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, ("resourceGuid",), current)
        properties(doc).setdefault("resourceGuid", str(uuid.uuid4()))
        return doc

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        wanted = {ids.key(doc["id"])}
        users = scale_sets_referencing(store, wanted) + [
            ipc_id
            for ipc_id, ipc_props in ip_configurations(store)
            if any(
                ids.key(reference_id(r) or "") in wanted
                for r in ipc_props.get("applicationSecurityGroups") or []
            )
        ]
        if users:
            # NRP's code for this refusal is not documented; the wording follows its other in-use errors.
            raise ArmError(
                400,
                "InUseApplicationSecurityGroupCannotBeDeleted",
                f"Application security group {doc['id']} is in use by {users[0]} and cannot be deleted.",
            )

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("resourceGuid", str(uuid.uuid4()))
