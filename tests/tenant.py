"""A tenant's estate, seeded straight into the simulator's store (no requests, no events), for the
tenant-scale test (tests/test_tenant_scale.py) and benchmark (bench/bench_tenant.py).

One management group, ``platform``, holds two landing-zone groups (``corp``, ``online``) and the
subscriptions are spread over all three: 200 of them, 10 scale sets each (2,000), of which 50,
picked at random (seeded) across the whole estate, are restricted by the tag
``remediation.mode=strip``; the others carry ordinary tags. With ``instances``, each set also has
that many instances: a VM the set created, its NIC, and for an unrestricted set the public IP its
profile gave it (a restricted set's NICs carry none: it is already compliant).

The remediator is given its custom role at the group (``grant_remediator``), as the
management-group mode of infra/ assigns it.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import arm_docs as docs

from localazure.stack import ROLE_ACTIONS_FILE
from remediation.credentials import LoopbackCredential
from sim import ArmSimulator

GROUP = "platform"
LANDING_ZONES = ("corp", "online")
SET_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
STRIP = {"remediation.mode": "strip"}


def subscription(index: int) -> str:
    return f"7e4a0000-0000-4000-8000-{index:012d}"


@dataclass(frozen=True)
class Instance:
    vm: str
    nic: str
    public_ip: str | None


@dataclass
class Tenant:
    """What was seeded: every set's id, the restricted ones (lower case), their instances."""

    group: str
    subscriptions: list[str]
    sets: list[str]
    restricted: set[str]
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    documents: int = 0

    def subscription_of(self, resource_id: str) -> str:
        return resource_id.split("/")[2]


def _in(sub: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A document of arm_docs' estate moved to another subscription (every id in it)."""
    moved: dict[str, Any] = json.loads(json.dumps(doc).replace(docs.SUB, sub))
    return moved


def _public_ip(resource_id: str, index: int) -> dict[str, Any]:
    return {
        "id": resource_id,
        "location": docs.LOCATION,
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {
            "publicIPAllocationMethod": "Static",
            "publicIPAddressVersion": "IPv4",
            "ipAddress": f"20.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        },
    }


def seed_tenant(
    sim: ArmSimulator,
    *,
    subscriptions: int = 200,
    sets_per_subscription: int = 10,
    restricted: int = 50,
    instances: int = 0,
    seed: int = 16,
) -> Tenant:
    """Create the groups, place the subscriptions and seed their sets (the module docstring)."""
    sim.create_management_group(GROUP)
    zones = [GROUP, *LANDING_ZONES]
    for zone in LANDING_ZONES:
        sim.create_management_group(zone, GROUP)
    total = subscriptions * sets_per_subscription
    picked = set(random.Random(seed).sample(range(total), restricted))
    tenant = Tenant(GROUP, [], [], set())
    documents: list[dict[str, Any]] = []
    for index in range(subscriptions):
        sub = subscription(index)
        sim.place_subscription(sub, zones[index % len(zones)])
        tenant.subscriptions.append(sub)
        for number in range(sets_per_subscription):
            name = f"vmss-{number:02d}"
            is_restricted = index * sets_per_subscription + number in picked
            doc = _in(
                sub, docs.scale_set(name, instances, STRIP if is_restricted else {"team": f"team-{number}"})
            )
            documents.append(doc)
            tenant.sets.append(doc["id"])
            if is_restricted:
                tenant.restricted.add(doc["id"].lower())
            found: list[Instance] = []
            for n in range(instances):
                suffix = f"{index:04x}{number:02x}{n:02x}"
                nic_name = f"{name[:5]}{n:04d}Nic-{suffix}"
                vm_name = f"{name}_{suffix}"
                pip_name = None if is_restricted else f"{vm_name}-pip"
                documents.append(_in(sub, docs.flex_instance(name, suffix, nic_name)))
                if pip_name is not None:
                    documents.append(
                        _public_ip(_in(sub, {"id": docs.public_ip_id(pip_name)})["id"], len(documents))
                    )
                documents.append(_in(sub, docs.nic(nic_name, vm_name, pip_name)))
                found.append(
                    Instance(
                        _in(sub, {"id": docs.vm_id(vm_name)})["id"],
                        _in(sub, {"id": docs.nic_id(nic_name)})["id"],
                        _in(sub, {"id": docs.public_ip_id(pip_name)})["id"] if pip_name else None,
                    )
                )
            tenant.instances[doc["id"]] = found
    tenant.documents = sim.seed({"value": documents})
    return tenant


def grant_remediator(sim: ArmSimulator, group: str = GROUP) -> str:
    """The remediator's custom role (infra/'s actions) at the (seeded) group; returns the assignment."""
    scope = f"/providers/Microsoft.Management/managementGroups/{group}"
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    role = sim.define_role(f"remediator at {group}", actions, assignable_scopes=[scope])
    return sim.grant(LoopbackCredential.APP_ID, role, scope)


def write_event(resource_id: str, when: datetime | None = None) -> dict[str, Any]:
    """A ResourceWriteSuccess event for ``resource_id`` from its own subscription's system topic."""
    event = docs.write_event(resource_id)
    sub = resource_id.split("/")[2]
    event["topic"] = f"/subscriptions/{sub}"
    event["data"]["subscriptionId"] = sub
    event["data"]["correlationId"] = str(uuid.uuid4())
    if when is not None:
        event["eventTime"] = when.astimezone(UTC).isoformat()
    return event
