"""Benchmarks of the remediation engine against the local stand-in. Prints figures; asserts nothing
about time (machines are noisy), only that the work was done.

    .venv/bin/python bench/bench_engine.py [--sizes 10 100 500] [--noop-events 2000]

- cold start: `import function_app` against `import azure.mgmt.network`, each in a fresh interpreter;
- no-op path: events per second for unrestricted sets through one host process's Event Grid
  webhook, the host's CPU per event, and the ARM writes they caused (must be 0);
- storms: a restricted Flexible set scaled from 0 to N as autoscale would, its events delivered by
  Event Grid (its 30 s deadline) to three host processes at random, which take them in and run
  the work queue as host.json says; per instance, seconds from its creation to its public IP being
  detached (p50, p95, max), the total, the lower bound that ARM's write bucket sets when the
  simulator throttles, ARM calls per remediated instance (reads, writes, deletes; polls apart),
  and how Event Grid's deliveries were answered (p50, p99, max; after the deadline; delivered
  again). Everything counted from the simulator's log and state and the player's record.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import arm_docs as docs  # noqa: E402

from localazure.eventgrid import DEADLINE_S, Delivery, EventGridPlayer  # noqa: E402
from localazure.functions_host import HostPool  # noqa: E402
from localazure.stack import LocalAzure, estate_owner  # noqa: E402
from remediation.credentials import LoopbackCredential  # noqa: E402
from remediation.events import HANDLED_OPERATIONS, WRITE_SUCCESS  # noqa: E402

# ARM's write bucket per principal: 200 burst, 10 per second (DESIGN.md).
WRITE_BURST, WRITE_RATE = 200, 10.0


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def event_for(set_name: str) -> dict[str, Any]:
    return docs.write_event(docs.set_id(set_name))


class Bench:
    def __init__(self, local: LocalAzure) -> None:
        from azure.mgmt.compute import ComputeManagementClient

        self.local = local
        self.env: dict[str, str] = {}
        # Where the simulator's events go now (a sink cannot be removed: this one forwards).
        self.publish: Callable[[dict[str, Any]], None] | None = None
        local.arm.add_event_sink(lambda event: self.publish(event) if self.publish else None)
        local.authorize(docs.SUB)
        from azure.mgmt.network import NetworkManagementClient

        self.network: Any = NetworkManagementClient(
            estate_owner(),
            docs.SUB,
            base_url=local.arm.endpoint,
            connection_verify=local.arm.ca_bundle,
        )
        self.compute: Any = ComputeManagementClient(
            estate_owner(),
            docs.SUB,
            base_url=local.arm.endpoint,
            connection_verify=local.arm.ca_bundle,
            polling_interval=0.05,
        )

    def use_fresh_tables(self) -> dict[str, str]:
        unique = uuid.uuid4().hex[:10]
        env = self.local.environment(
            audit_table=f"bench{unique}",
            recheck_queue=f"bench-{unique}",
            lock_container=f"bench-locks-{unique}",
        )
        os.environ.update(env)
        self.env = env
        return env

    def create_set(self, name: str, capacity: int, tags: dict[str, str] | None) -> None:
        body = docs.scale_set(name, capacity, tags)
        for field in ("id", "name", "type"):
            body.pop(field)
        self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()

    def noop(self, events: int, sets: int = 20) -> None:
        self.local.arm.reset()
        env = self.use_fresh_tables()
        for index in range(sets):
            self.create_set(f"open{index}", 0, None)
        self.local.arm.wait_idle(60)
        writes_before = self.local.arm.write_count()
        batch = [event_for(f"open{i % sets}") for i in range(events)]
        with HostPool(1, env) as host:
            play(host, batch[:sets])  # each host's clients set up, as after its first events
            cpu_before = process_cpu_seconds(host.processes[0].pid)
            started = time.perf_counter()
            deliveries = play(host, batch)
            seconds = time.perf_counter() - started
            per_event = (process_cpu_seconds(host.processes[0].pid) - cpu_before) / events
        writes = self.local.arm.write_count() - writes_before
        print(
            f"no-op path: {events} events for {sets} unrestricted sets in {seconds:.2f} s = "
            f"{events / seconds:.0f} events/s into one host process (16 concurrent deliveries), "
            f"ARM writes: {writes}; its CPU {per_event * 1000:.1f} ms/event = {1 / per_event:.0f} events/s "
            f"of CPU; answered {answers(deliveries)}"
        )

    def exposures(self, after: int) -> tuple[dict[str, datetime], dict[str, datetime]]:
        """When each VM was created (ARM's timeCreated), and when its NICs were all detached: ARM's
        answer to the remediator's successful PUT of each, from the simulator's log (the product's
        own records are what is under test, not the ruler)."""
        detached_nic: dict[str, datetime] = {}
        for record in self.local.arm.requests()[after:]:
            if (
                record.method == "PUT"
                and record.resource_type.lower() == "microsoft.network/networkinterfaces"
                and 200 <= record.status < 300
                and record.principal.lower() == LoopbackCredential.APP_ID.lower()
            ):
                detached_nic.setdefault(record.path.lower(), record.time)
        created: dict[str, datetime] = {}
        detached: dict[str, datetime] = {}
        for vm in self.compute.virtual_machines.list(docs.GROUP):
            doc = vm.as_dict()
            vm_id = doc["id"].lower()
            created[vm_id] = datetime.fromisoformat(doc["properties"]["timeCreated"].replace("Z", "+00:00"))
            times = [
                detached_nic[ref["id"].lower()]
                for ref in doc["properties"]["networkProfile"]["networkInterfaces"]
                if ref["id"].lower() in detached_nic
            ]
            if times:
                detached[vm_id] = max(times)
        return created, detached

    def storm(self, size: int) -> None:
        self.local.arm.reset()
        self.use_fresh_tables()
        # ARM answers a NIC update in seconds: polling every 0.25 s keeps polls from eating the read bucket.
        os.environ["ARM_POLL_INTERVAL_SECONDS"] = "0.25"
        name = f"storm{size}"
        self.create_set(name, 0, {"remediation.mode": "strip"})
        self.local.arm.wait_idle(60)
        requests_before = len(self.local.arm.requests())
        body = self.compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
        body["sku"]["capacity"] = size
        with HostPool(3, self.env) as hosts, ThreadPoolExecutor(16) as pool:  # hosts inherit os.environ
            player = EventGridPlayer(hosts.handler())
            delivering: list[Future[Delivery]] = []
            # Every event the subscription's filter lets through, delivered as it is published (the
            # remediator's own NIC writes included), while the storm goes on.
            self.publish = lambda e: delivering.append(pool.submit(player.deliver, e)) if wanted(e) else None
            started = time.perf_counter()
            self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
            until_no_public_ip = time.monotonic() + 900
            while self.public_ips_left() and time.monotonic() < until_no_public_ip:
                time.sleep(1)  # the state outside, polled; bounded
            total = time.perf_counter() - started
            self.local.arm.wait_idle(120)
            self.publish = None
            finished = [future.result(timeout=900) for future in list(delivering)]
        created, detached = self.exposures(requests_before)
        windows = [
            (detached[vm_id] - when).total_seconds() for vm_id, when in created.items() if vm_id in detached
        ]
        calls: Counter[str] = Counter()
        for record in self.local.arm.requests()[requests_before:]:
            if record.status == 429:
                calls["throttled"] += 1
            elif "/operations/" in record.path or "/operationResults/" in record.path:
                calls["lro-poll"] += 1
            elif record.resource_type.lower().endswith("virtualmachinescalesets") and record.method == "PUT":
                calls["scale-out"] += 1
            else:
                calls[{"GET": "read", "PUT": "write", "DELETE": "delete", "POST": "read"}[record.method]] += 1
        bound = max(0.0, (size - WRITE_BURST) / WRITE_RATE)
        remediated = len(windows)
        left = self.public_ips_left()
        print(
            f"storm of {size} over 3 hosts: {remediated}/{size} detached through the events, {left} public "
            f"IPs left after {len(finished)} events; "
            f"creation->detach p50 {statistics.median(windows):.2f} s, "
            f"p95 {percentile(windows, 0.95):.2f} s, max {max(windows):.2f} s; total {total:.1f} s "
            f"(write-bucket lower bound {bound:.1f} s; {calls['throttled']} answers were 429); "
            "per remediated instance: "
            f"{calls['read'] / remediated:.2f} reads, {calls['write'] / remediated:.2f} writes, "
            f"{calls['delete'] / remediated:.2f} deletes, {calls['lro-poll'] / remediated:.2f} LRO polls; "
            f"Event Grid's deliveries answered {answers(finished)}"
        )

    def public_ips_left(self) -> int:
        return sum(
            1
            for nic in self.network.network_interfaces.list(docs.GROUP)
            for config in nic.as_dict()["properties"]["ipConfigurations"]
            if config.get("properties", {}).get("publicIPAddress")
        )


def wanted(event: dict[str, Any]) -> bool:
    """What the Event Grid subscription's filter lets through (infra/: ResourceWriteSuccess of the
    operations the remediator handles)."""
    operation = str(event.get("data", {}).get("operationName", "")).lower()
    return event.get("eventType") == WRITE_SUCCESS and operation in HANDLED_OPERATIONS


def play(hosts: HostPool, events: list[dict[str, Any]]) -> list[Delivery]:
    player = EventGridPlayer(hosts.handler())
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(player.deliver, events))


def answers(deliveries: list[Delivery]) -> str:
    """How Event Grid's deliveries were answered: each attempt's time to its answer, from the player."""
    times = [a.answered - a.sent for d in deliveries for a in d.attempts]
    late = sum(1 for d in deliveries for a in d.attempts if a.outcome == "TimedOut")
    again = sum(1 for d in deliveries if len(d.attempts) > 1)
    return (
        f"p50 {statistics.median(times):.2f} s, p99 {percentile(times, 0.99):.2f} s, max {max(times):.2f} s; "
        f"{late} after the {DEADLINE_S:.0f} s deadline; {again} delivered again"
    )


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, from /proc (its clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 500])
    parser.add_argument("--noop-events", type=int, default=2000)
    args = parser.parse_args()

    print(
        f"cold start: import function_app {import_seconds('function_app'):.3f} s; "
        f"import azure.mgmt.network {import_seconds('azure.mgmt.network'):.3f} s (fresh interpreters)"
    )
    with LocalAzure(provision_delay_s=1.0, lro_duration_s=0.1, page_size=100) as local:
        Bench(local).noop(args.noop_events)
    # ARM's real limits, at real speed: the storms are bounded by its token buckets.
    with LocalAzure(provision_delay_s=1.0, lro_duration_s=0.5, page_size=100, throttling=True) as local:
        bench = Bench(local)
        for size in args.sizes:
            bench.storm(size)


if __name__ == "__main__":
    main()
