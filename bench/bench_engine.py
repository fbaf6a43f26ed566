"""Benchmarks of the remediation engine against the local stand-in. Prints figures and writes them
to bench/results.json (not committed); asserts nothing about time (machines are noisy), only that
the work was done.

    .venv/bin/python bench/bench_engine.py [--sizes 10 100 500] [--noop-events 2000]

- cold start: `import function_app` against `import azure.mgmt.network`, each in a fresh interpreter;
- no-op path: events per second for unrestricted sets through one host process's Event Grid
  webhook, the host's CPU per event, and the ARM writes they caused (must be 0); beside it, in the
  same run against the same simulator, Cloud Custodian's c7n-azure event mode (bench_peers.py);
  both unthrottled, since ARM's read bucket would cap either at 25 reads per second;
- storms (bench/storms.py): a restricted Flexible set scaled from 0 to N as autoscale would, its
  events published when ARM accepts the write and delivered by Event Grid (its 30 s deadline) to
  three host processes at random; exposure, total, public IPs left, applied writes recorded as
  failed and ARM calls per instance, each beside the bound a perfect client reaches under the
  same limits (sim/bounds.py). Everything counted from the simulator's log and state and the
  player's record;
- early event: 10 instances appearing over 10 s after the set's event: the watch's exposure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
RESULTS = ROOT / "bench" / "results.json"

import arm_docs as docs  # noqa: E402
from bench_peers import measure_peer, peers_installed, prepare_peer, simulator_log  # noqa: E402
from storms import run_storm  # noqa: E402

from localazure.eventgrid import DEADLINE_S, Delivery, EventGridPlayer  # noqa: E402
from localazure.functions_host import HostPool  # noqa: E402
from localazure.stack import LocalAzure, estate_owner  # noqa: E402
from remediation.events import HANDLED_OPERATIONS, WRITE_SUCCESS  # noqa: E402


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

    def noop(self, events: int, sets: int = 20) -> dict[str, Any]:
        """No-op events (unrestricted sets), counted from the simulator's log: the deployed
        function in a process of its own, called as the Python worker calls it (as the peer's is),
        "live" (each event raised as it is delivered: no read is recent enough to answer it) and
        "backlog" (raised before delivery begins, as Event Grid delivers a backlog: a read ARM
        served after them answers them all, ``remediation/recent_reads.py``); then live again
        through a host process, with the webhook's HTTP hop and Event Grid's deadline."""
        self.local.arm.reset()
        env = self.use_fresh_tables()
        for index in range(sets):
            self.create_set(f"open{index}", 0, None)
        self.local.arm.wait_idle(60)
        figures: dict[str, Any] = {}
        for run in ("live", "backlog"):
            batch = [event_for(f"open{i % sets}") for i in range(sets + events)]
            if run == "backlog":
                time.sleep(3.0)  # raised 3 s ago: older than recent_reads' margin
            before = len(self.local.arm.requests())
            measured = run_noop_driver(env, batch, warmup=sets, stamp=run == "live")
            log = self.local.arm.requests()[before:]
            requests = len(log)
            throttled = sum(1 for r in log if r.status == 429)
            print(
                f"no-op path, {run}, the function in its own process (as the Python worker calls it): "
                f"{measured['events']} events for {sets} unrestricted sets, {measured['events_per_s']:.0f} "
                f"events/s (16 threads), {measured['cpu_ms_per_event']:.1f} ms of CPU per event, "
                f"{requests / (sets + events):.2f} ARM requests per event ({throttled} answered 429), "
                f"{measured['failures']} failed"
            )
            prefix = "" if run == "live" else "backlog_"
            figures[f"{prefix}events_per_s"] = round(measured["events_per_s"], 1)
            figures[f"{prefix}cpu_ms_per_event"] = round(measured["cpu_ms_per_event"], 2)
            figures[f"{prefix}arm_requests_per_event"] = round(requests / (sets + events), 3)
            figures[f"{prefix}throttled"] = throttled
        writes_before = self.local.arm.write_count()
        batch = [event_for(f"open{i % sets}") for i in range(events)]
        with HostPool(1, env) as host:
            play(host, batch[:sets], stamp=True)  # the host's clients set up
            cpu_before = process_cpu_seconds(host.processes[0].pid)
            started = time.perf_counter()
            deliveries = play(host, batch, stamp=True)
            seconds = time.perf_counter() - started
            per_event = (process_cpu_seconds(host.processes[0].pid) - cpu_before) / events
        print(
            f"no-op path, live, through a host process (the webhook's HTTP hop too): {events / seconds:.0f} "
            f"events/s, {per_event * 1000:.1f} ms of CPU per event, ARM writes: "
            f"{self.local.arm.write_count() - writes_before}; answered {answers(deliveries)}"
        )
        figures["host_events_per_s"] = round(events / seconds, 1)
        figures["host_cpu_ms_per_event"] = round(per_event * 1000, 2)
        if not peers_installed():
            print("no-op peer: .peers-venv is missing (make bench-peers); c7n-azure not measured")
            return figures
        peer_set = prepare_peer(self.local.arm)
        peer = measure_peer(
            self.local.arm.endpoint,
            self.local.arm.ca_bundle,
            resource_id=peer_set,
            events=events,
            request_log=simulator_log(self.local.arm),
        )
        print(
            f"no-op peer, Cloud Custodian c7n-azure event mode, same simulator, same run: "
            f"{peer['events_per_s']:.0f} events/s in one process (16 threads), "
            f"{peer['cpu_ms_per_event']:.1f} ms of CPU per event, "
            f"{peer['arm_requests_per_event']:.2f} ARM requests per event "
            f"({peer['throttled_per_event']:.2f} answered 429); it records nothing"
        )
        figures.update(
            peer_events_per_s=round(peer["events_per_s"], 1),
            peer_cpu_ms_per_event=round(peer["cpu_ms_per_event"], 2),
            peer_throttled_per_event=round(peer["throttled_per_event"], 3),
        )
        return figures

    def early_event(self, size: int = 10) -> dict[str, Any]:
        """A scale-out whose event arrives when ARM accepts it, its instances appearing over the
        simulator's provisioning time: how soon after each NIC exists is its public IP off."""
        summary = self.storm(size, hosts=1)
        return {"exposure_s": {"p50": summary["exposure_s"]["p50"], "max": summary["exposure_s"]["max"]}}

    def storm(self, size: int, hosts: int = 3) -> dict[str, Any]:
        self.local.arm.reset()
        self.use_fresh_tables()
        figures = run_storm(self, size, wanted, hosts)
        summary = figures.summary()
        exposure, bound = summary["exposure_s"], summary["exposure_bound_s"]
        calls = summary["per_instance"]
        print(
            f"storm of {size} over {hosts} hosts: exposure p50 {exposure['p50']:.1f} s, p95 "
            f"{exposure['p95']:.1f} s, max {exposure['max']:.1f} s (bound {bound['p50']:.1f} / "
            f"{bound['p95']:.1f} / {bound['max']:.1f} s); total {figures.total_s:.1f} s (bound "
            f"{figures.total_bound_s:.1f} s); {figures.detached_ips_left} detached and "
            f"{figures.attached_ips_left} attached public IPs left; {figures.applied_recorded_failed} "
            f"applied writes recorded as failed; per instance {calls['reads']:.2f} reads, "
            f"{calls['polls']:.2f} polls, {calls['writes']:.2f} writes, {calls['deletes']:.2f} deletes, "
            f"{calls['throttled']:.2f} answered 429; "
            f"Event Grid's deliveries answered {answers(figures.deliveries)}"
        )
        return summary


def wanted(event: dict[str, Any]) -> bool:
    """What the Event Grid subscription's filter lets through (infra/: ResourceWriteSuccess of the
    operations the remediator handles)."""
    operation = str(event.get("data", {}).get("operationName", "")).lower()
    return event.get("eventType") == WRITE_SUCCESS and operation in HANDLED_OPERATIONS


def play(hosts: HostPool, events: list[dict[str, Any]], *, stamp: bool = False) -> list[Delivery]:
    """Deliver the events 16 at a time; ``stamp``: each raised (its eventTime) as it is sent."""
    player = EventGridPlayer(hosts.handler())

    def deliver(event: dict[str, Any]) -> Delivery:
        if stamp:
            event = {**event, "eventTime": datetime.now(UTC).isoformat()}
        return player.deliver(event)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(deliver, events))


def answers(deliveries: list[Delivery]) -> str:
    """How Event Grid's deliveries were answered: each attempt's time to its answer, from the player."""
    times = [a.answered - a.sent for d in deliveries for a in d.attempts]
    late = sum(1 for d in deliveries for a in d.attempts if a.outcome == "TimedOut")
    again = sum(1 for d in deliveries if len(d.attempts) > 1)
    return (
        f"p50 {statistics.median(times):.2f} s, p99 {percentile(times, 0.99):.2f} s, max {max(times):.2f} s; "
        f"{late} after the {DEADLINE_S:.0f} s deadline; {again} delivered again"
    )


def run_noop_driver(
    env: dict[str, str], events: list[dict[str, Any]], *, warmup: int, stamp: bool, drain: bool = False
) -> dict[str, Any]:
    """bench/noop_driver.py on ``events`` (the first ``warmup`` not measured), with the app
    settings ``env``; ``drain``: then the looks they queued, in the same process. Returns what it
    measured."""
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as scratch:
        events_file = Path(scratch) / "events.jsonl"
        events_file.write_text("\n".join(json.dumps(e) for e in events), encoding="utf-8")
        run_file = Path(scratch) / "run.json"
        run = {
            "events_file": str(events_file),
            "warmup": warmup,
            "concurrency": 16,
            "stamp": stamp,
            "drain": drain,
        }
        run_file.write_text(json.dumps(run), encoding="utf-8")
        return run_driver("noop_driver.py", env, str(run_file))


def run_driver(script: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """bench/``script`` in a process of its own, with the app settings ``env``: the JSON object its
    last line prints (what it measured), or RuntimeError with its stderr's end."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/{script} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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
    results: dict[str, Any] = {"storms": {}}
    # Under ARM's limits as they are: its read bucket (250, then 25 per second per principal) bounds
    # any handler that reads once per event, ours (which paces itself to it) and the peer (which
    # meets its 429s) alike; a backlog is where reads reused (recent_reads) go past it.
    with LocalAzure(provision_delay_s=1.0, lro_duration_s=0.1, page_size=100) as local:
        results["noop"] = Bench(local).noop(args.noop_events)
    # ARM's real limits, at real speed: the storms are bounded by its token buckets.
    with LocalAzure(provision_delay_s=1.0, lro_duration_s=0.5, page_size=100) as local:
        bench = Bench(local)
        for size in args.sizes:
            results["storms"][str(size)] = bench.storm(size)
    # Instances appearing over 10 s after the event: the watch's figure.
    with LocalAzure(provision_delay_s=10.0, lro_duration_s=0.5, page_size=100) as local:
        results["early_event"] = Bench(local).early_event()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
