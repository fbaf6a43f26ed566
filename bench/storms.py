"""Storms measured from the outside: a restricted Flexible set scaled from 0 to N, its events
delivered by Event Grid's player to host processes as they are published, and every figure read
from the simulator's log and state (its own, not its lists, which lag the writes), each beside the
lower bound a perfect client could reach under the same limits (sim/bounds.py), learning of each
NIC when a list first shows it (list_lag_s after its creation).

- exposure: per instance, its creation (ARM's timeCreated of the VM, whose NIC is created with it)
  to ARM's answer to the remediator's successful PUT of its NIC;
- total: the scale-out's request to the last of its public IPs gone from ARM's state (attached
  or detached);
- detached public IPs left: on no NIC and still there once the storm's work drained;
- applied writes recorded as failed: NIC PUTs ARM applied (the NIC no longer carries its IP)
  whose outcome in the audit log is not `succeeded` (the audit log is what is checked here);
- ARM calls per instance by kind, the remediator's only: reads (polls apart), polls, writes,
  deletes, and answers that were 429.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import arm_docs as docs

from localazure.eventgrid import Delivery, EventGridPlayer
from localazure.functions_host import HostPool
from localazure.stack import LocalAzure
from remediation.audit import AuditLog
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind
from remediation.settings import Settings
from sim.bounds import Budget, storm_bound
from sim.limits import ARM_BUCKETS, NETWORK_WRITES, RequestClass

NIC_TYPE = "microsoft.network/networkinterfaces"
PIP_TYPE = "microsoft.network/publicipaddresses"
REMEDIATOR = LoopbackCredential.APP_ID.lower()


@dataclass
class StormFigures:
    size: int
    exposure_s: list[float]
    exposure_bound: list[float]
    total_s: float
    total_bound_s: float
    detached_ips_left: int
    attached_ips_left: int
    applied_recorded_failed: int
    per_instance: dict[str, float]
    deliveries: list[Delivery]

    def summary(self) -> dict[str, Any]:
        return {
            "exposure_s": quantiles(self.exposure_s),
            "exposure_bound_s": quantiles(self.exposure_bound),
            "total_s": round(self.total_s, 2),
            "total_bound_s": round(self.total_bound_s, 2),
            "detached_ips_left": self.detached_ips_left,
            "attached_ips_left": self.attached_ips_left,
            "applied_recorded_failed": self.applied_recorded_failed,
            "per_instance": {kind: round(value, 2) for kind, value in self.per_instance.items()},
        }


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
        "max": round(ordered[-1], 2),
    }


def budget(local: LocalAzure, request_class: RequestClass) -> Budget:
    """The remediator's bucket as the simulator holds it now, in real seconds."""
    spec = ARM_BUCKETS[request_class]
    scale = local.arm.settings.time_scale
    level = local.arm.bucket_level(REMEDIATOR, request_class.value, docs.SUB)
    return Budget(level, spec.refill_per_s * scale, spec.capacity, time.time())


def network_budget(local: LocalAzure) -> Budget:
    scale = local.arm.settings.time_scale
    level = local.arm.network_budget_level(docs.SUB)
    return Budget(level, NETWORK_WRITES.refill_per_s * scale, NETWORK_WRITES.capacity, time.time())


class StormBench(Protocol):
    """What a storm needs of the benchmark: the stand-in, the app's settings, clients as the
    estate's owner, and where the simulator's events go now (None: nowhere)."""

    local: LocalAzure
    env: dict[str, str]
    compute: Any
    network: Any
    publish: Callable[[dict[str, Any]], None] | None

    def create_set(self, name: str, capacity: int, tags: dict[str, str] | None) -> None: ...


def run_storm(
    bench: StormBench, size: int, wanted: Callable[[dict[str, Any]], bool], hosts: int = 3
) -> StormFigures:
    """Scale a restricted set from 0 to ``size`` and measure its remediation (module docstring)."""
    local, env, compute = bench.local, bench.env, bench.compute
    name = f"storm{size}"
    bench.create_set(name, 0, {"remediation.mode": "strip"})
    local.arm.wait_idle(60)
    before = len(local.arm.requests())
    body = compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
    body["sku"]["capacity"] = size
    writes, deletes = budget(local, RequestClass.WRITE), budget(local, RequestClass.DELETE)
    nrp = network_budget(local)
    with HostPool(hosts, env) as pool, ThreadPoolExecutor(16) as senders:
        player = EventGridPlayer(pool.handler())
        delivering: list[Future[Delivery]] = []
        bench.publish = lambda e: delivering.append(senders.submit(player.deliver, e)) if wanted(e) else None
        started = time.time()
        compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
        bound_at = time.monotonic() + 900
        while public_ips(local) and time.monotonic() < bound_at:  # the state outside; bounded
            time.sleep(0.5)
        ended = time.time()
        local.arm.wait_idle(120)
        bench.publish = None
        finished = [future.result(timeout=900) for future in list(delivering)]
    created = instances_created(local)
    detached = detach_answers(local, before)
    exposure = [(detached[nic] - when).total_seconds() for nic, when in created.items() if nic in detached]
    # A client learns of a NIC from a list, which shows it list_lag_s after its creation.
    seen_after = local.arm.settings.list_lag_s / local.arm.settings.time_scale
    seen = [when.timestamp() + seen_after for when in created.values()]
    bound = storm_bound(started, seen, writes, deletes, nrp)
    exposure_bound = [value + seen_after for value in bound.exposure_s]
    left = public_ips(local)
    return StormFigures(
        size=size,
        exposure_s=exposure,
        exposure_bound=exposure_bound,
        total_s=ended - started,
        total_bound_s=bound.total_s,
        detached_ips_left=sum(1 for ip in left if not ip["attached"]),
        attached_ips_left=sum(1 for ip in left if ip["attached"]),
        applied_recorded_failed=applied_recorded_failed(env, local),
        per_instance=calls_per_instance(local, before, max(len(exposure), 1)),
        deliveries=finished,
    )


# The state is read from the simulator itself, ARM's truth now: its lists lag the writes.


def resources(local: LocalAzure, resource_type: str) -> list[dict[str, Any]]:
    return local.arm.resources(resource_type)


def public_ips(local: LocalAzure) -> list[dict[str, Any]]:
    return [
        {"id": ip["id"], "attached": ip.get("properties", {}).get("ipConfiguration") is not None}
        for ip in resources(local, "Microsoft.Network/publicIPAddresses")
    ]


def instances_created(local: LocalAzure) -> dict[str, datetime]:
    """Each NIC of the storm's VMs (lower-cased id) with its VM's creation time."""
    created: dict[str, datetime] = {}
    for doc in resources(local, "Microsoft.Compute/virtualMachines"):
        when = datetime.fromisoformat(doc["properties"]["timeCreated"].replace("Z", "+00:00"))
        for ref in doc["properties"]["networkProfile"]["networkInterfaces"]:
            created[ref["id"].lower()] = when
    return created


def detach_answers(local: LocalAzure, after: int) -> dict[str, datetime]:
    """When ARM answered the remediator's first successful PUT of each NIC."""
    answered: dict[str, datetime] = {}
    for record in local.arm.requests()[after:]:
        if (
            record.method == "PUT"
            and record.resource_type.lower() == NIC_TYPE
            and 200 <= record.status < 300
            and record.principal.lower() == REMEDIATOR
        ):
            answered.setdefault(record.path.lower(), record.time)
    return answered


def calls_per_instance(local: LocalAzure, after: int, instances: int) -> dict[str, float]:
    calls: Counter[str] = Counter()
    for record in local.arm.requests()[after:]:
        if record.principal.lower() != REMEDIATOR:
            continue
        if record.status == 429:
            calls["throttled"] += 1
        elif "/operations/" in record.path or "/operationresults/" in record.path.lower():
            calls["polls"] += 1
        elif record.method == "GET" or (record.method == "POST" and "resourcegraph" in record.path.lower()):
            calls["reads"] += 1
        elif record.method == "DELETE":
            calls["deletes"] += 1
        else:
            calls["writes"] += 1
    return {kind: calls[kind] / instances for kind in ("reads", "polls", "writes", "deletes", "throttled")}


def applied_recorded_failed(env: dict[str, str], local: LocalAzure) -> int:
    """Detaches ARM applied (the NIC no longer carries the IP) whose last outcome is not success."""
    last: dict[str, str] = {}
    for record in AuditLog(Settings.from_env(env)).records():
        if record.kind is RecordKind.OUTCOME and record.action == "detach-public-ip":
            last[record.nic.lower()] = record.result
    carrying = {
        nic["id"].lower()
        for nic in resources(local, "Microsoft.Network/networkInterfaces")
        for config in nic["properties"]["ipConfigurations"]
        if config.get("properties", {}).get("publicIPAddress")
    }
    return sum(1 for nic, result in last.items() if result != "succeeded" and nic not in carrying)
