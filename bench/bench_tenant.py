"""Tenant scale: one management group of 200 subscriptions, 2,000 scale sets, 50 restricted, against
the ARM simulator with its default (adversarial) settings. Prints a sweep's cost and the cost of a
day of ordinary write traffic per host process; writes them into bench/results.json under
"tenant" (merged: the other benchmarks' figures stay). Asserts nothing about time, only that the
work was done (exit 1 if the sweep's looks are not exactly the restricted sets, a delivery
failed, or anything was written to ARM: the restricted sets are already compliant).

    .venv/bin/python bench/bench_tenant.py [--subscriptions 200] [--sets-per-subscription 10]
        [--restricted 50] [--instances 2] [--events 2000] [--writes-per-set-per-day 10]

The estate (tests/tenant.py, seeded straight into the simulator's store): the group `platform`
with two landing-zone groups beneath, the subscriptions spread over the three, each set with
``--instances`` instances (a VM, its NIC and, on an unrestricted set, the public IP it is
allowed; a restricted set's NICs carry none). The app monitors the group alone
(``monitored_management_groups``) and holds the custom role of infra/ at it.

Every figure is read from outside the product: ARM calls from the simulator's request log (the
remediator's principal only), queue messages from Azurite (the work queue's message count), the
most connections open to ARM at once from the kernel's TCP table (sampled), CPU and wall time from
the process that ran the product (``bench/tenant_driver.py`` for the sweep and
the work queue's looks, ``bench/noop_driver.py`` for Event Grid's deliveries, as the no-op benchmark
runs them: the deployed functions, each in a process of its own, 16 events at once).

- a sweep: the timer function once, then the looks it queued drained by the queue trigger (the
  reconcile of each restricted set);
- a day of ordinary write traffic: a burst of ``--events`` write events (each raised as it is
  delivered), spread uniformly over the sets as a day's writes would be: about the unrestricted
  sets, their scale set, VM, NIC or public IP written; about restricted (already compliant) sets in
  the same share as they are of the sets (2.5%), each about a different one, so each queues a look,
  drained afterwards and counted with them. Before it, one event per subscription warms the
  process (its clients, the group's members), not measured. Then the day is an assumption, stated
  with the figures: ``--writes-per-set-per-day`` events a day for each set, plus the timer's sweeps
  (SWEEP_SCHEDULE's default, every 15 minutes: 96 a day).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import threading
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
RESULTS = ROOT / "bench" / "results.json"

from bench_engine import run_driver, run_noop_driver  # noqa: E402
from tenant import GROUP, Tenant, grant_remediator, seed_tenant, write_event  # noqa: E402

from localazure.stack import LocalAzure  # noqa: E402
from remediation.credentials import LoopbackCredential  # noqa: E402
from sim.request_log import RequestRecord  # noqa: E402

REMEDIATOR = LoopbackCredential.APP_ID.lower()
GRAPH = "Microsoft.ResourceGraph/resources"
KINDS = ("management-group reads", "Resource Graph pages", "other reads", "writes")
SWEEPS_A_DAY = 96  # SWEEP_SCHEDULE's default, "0 */15 * * * *"
GROUP_CACHE_S = 600  # remediation/ancestry.py's TTL: a process reads the groups at most this often
DAY_S = 86_400


def kind(record: RequestRecord) -> str:
    if record.path.lower().startswith("/providers/microsoft.management/"):
        return "management-group reads"
    if record.resource_type == GRAPH:
        return "Resource Graph pages"
    return "other reads" if record.method == "GET" else "writes"


def remediators(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.principal.lower() == REMEDIATOR]


def calls(records: list[RequestRecord]) -> dict[str, int]:
    counted = Counter(kind(r) for r in records)
    figures = {name: counted[name] for name in KINDS}
    figures["answered 429"] = sum(1 for r in records if r.status == 429)
    return figures


def other_reads_by_type(records: list[RequestRecord]) -> dict[str, int]:
    """The other reads by what they read: a GET by id, or a list (a path ending in the type)."""
    counted: Counter[str] = Counter()
    for r in records:
        if kind(r) == "other reads":
            short = r.resource_type.rsplit("/", 1)[-1]
            listed = r.path.rstrip("/").rsplit("/", 1)[-1].lower() == short.lower()
            counted[f"{'list' if listed else 'GET'} {short}"] += 1
    return dict(sorted(counted.items()))


def window(measured: dict[str, Any]) -> tuple[datetime, datetime]:
    """When a driver's measured work ran (UTC), to tell its requests in ARM's log from the rest."""
    edges = measured["window"]
    return datetime.fromisoformat(edges["start"]), datetime.fromisoformat(edges["end"])


class OpenConnections:
    """The most TCP connections open to ARM (the simulator's port) at once while it runs, as the
    kernel lists them (/proc/net/tcp, ESTABLISHED), sampled every 0.2 s: the product's client ends
    (the simulator's own ends have the port as their local one)."""

    def __init__(self, endpoint: str) -> None:
        self.port = int(endpoint.rsplit(":", 1)[1])
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def count(self) -> int:
        found = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if int(fields[2].rsplit(":", 1)[1], 16) == self.port and fields[3] == "01":
                        found += 1
        return found

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.most = max(self.most, self.count())

    def __enter__(self) -> OpenConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def shown(figures: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in figures.items())


class TenantBench:
    def __init__(self, local: LocalAzure, tenant: Tenant) -> None:
        self.local = local
        self.tenant = tenant
        unique = uuid.uuid4().hex[:10]
        self.env = local.environment(
            audit_table=f"tenant{unique}",
            recheck_queue=f"tenant-{unique}",
            archive_container=f"tenant-{unique}",
            lock_container=f"tenant-locks-{unique}",
            ledger_container=f"tenant-ledger-{unique}",
        )
        self.env["REMEDIATION_POLICY"] = json.dumps({"monitored_management_groups": [GROUP]})

    def log(self) -> list[RequestRecord]:
        return list(self.local.arm.requests())

    def sweep(self) -> dict[str, Any]:
        """(a): bench/tenant_driver.py: the timer function once, then its looks in the same process."""
        before = len(self.log())
        with OpenConnections(self.local.arm.endpoint) as connections:
            swept = run_driver("tenant_driver.py", self.env)
        start, end = window(swept)
        sent = remediators(self.log()[before:])
        during = [r for r in sent if start <= r.received <= end]
        looked = [r for r in sent if r.received > end]
        drained = swept["drain"]
        set_reads = {
            r.path.lower()
            for r in looked
            if r.method == "GET" and r.resource_type.lower() == "microsoft.compute/virtualmachinescalesets"
        }
        figures = {
            "sweep": {
                "arm_calls": calls(during),
                "wall_s": round(swept["seconds"], 3),
                "cpu_s": round(swept["cpu_seconds"], 3),
                "queue_messages_enqueued": swept["queued"],
                # ARM's part of it: the sweep's first request received to its last answered.
                "arm_span_s": round(
                    (max(r.time for r in during) - min(r.received for r in during)).total_seconds(), 3
                )
                if during
                else 0.0,
            },
            "looks": {
                "arm_calls": calls(looked),
                "other_reads": other_reads_by_type(looked),
                "delivered": drained["delivered"],
                "outcomes": drained["outcomes"],
                "wall_s": round(drained["seconds"], 3),
                "cpu_s": round(drained["cpu_seconds"], 3),
                "sets_read_are_the_restricted": set_reads == self.tenant.restricted,
                "most_connections_open_to_arm": connections.most,  # the sweep's and its looks'
            },
        }
        s, looks = figures["sweep"], figures["looks"]
        print(
            f"(a) a sweep (the timer function, in a process of its own): ARM calls: {shown(s['arm_calls'])}; "
            f"wall {s['wall_s']:.2f} s (ARM's requests span {s['arm_span_s']:.2f} s of it), CPU "
            f"{s['cpu_s']:.2f} s; queue messages enqueued (Azurite): "
            f"{s['queue_messages_enqueued']}"
        )
        print(
            f"    its looks (the queue trigger, host.json's concurrency, in the same process): "
            f"{looks['delivered']} delivered ({looks['outcomes']}); ARM calls: {shown(looks['arm_calls'])} "
            f"(other reads: {shown(looks['other_reads'])}); wall {looks['wall_s']:.2f} s, CPU "
            f"{looks['cpu_s']:.2f} s ({looks['cpu_s'] / max(looks['delivered'], 1) * 1000:.1f} ms a look); "
            f"the sets they read are exactly the {len(self.tenant.restricted)} restricted: "
            f"{looks['sets_read_are_the_restricted']}; at most {connections.most} TCP connections open "
            "to ARM at once (the sweep and its looks)"
        )
        return figures

    # -- (b) a day of ordinary write traffic ---------------------------------------------------

    def burst(self, count: int, rng: random.Random) -> tuple[list[dict[str, Any]], Counter[str]]:
        """``count`` write events over the sets uniformly (module docstring), shuffled."""
        restricted = sorted(s for s in self.tenant.sets if s.lower() in self.tenant.restricted)
        unrestricted = [s for s in self.tenant.sets if s.lower() not in self.tenant.restricted]
        share = len(restricted) / len(self.tenant.sets)
        about_restricted = round(count * share)
        chosen = [
            (s, True) for s in (restricted * math.ceil(about_restricted / len(restricted)))[:about_restricted]
        ]
        chosen += [(rng.choice(unrestricted), False) for _ in range(count - about_restricted)]
        events: list[dict[str, Any]] = []
        mix: Counter[str] = Counter()
        for set_id, is_restricted in chosen:
            instance = rng.choice(self.tenant.instances[set_id])
            options = {"scale set": set_id, "VM": instance.vm, "NIC": instance.nic}
            if instance.public_ip is not None:
                options["public IP"] = instance.public_ip
            written = rng.choice(sorted(options))
            mix[f"{written} of {'a restricted' if is_restricted else 'an unrestricted'} set"] += 1
            events.append(write_event(options[written]))
        rng.shuffle(events)
        return events, mix

    def traffic(self, count: int, rng: random.Random) -> dict[str, Any]:
        # One event per subscription, about its first unrestricted set: the process as a day leaves it.
        firsts: dict[str, str] = {}
        for set_id in self.tenant.sets:
            if set_id.lower() not in self.tenant.restricted:
                firsts.setdefault(self.tenant.subscription_of(set_id), set_id)
        warmup = [write_event(set_id) for set_id in firsts.values()]
        events, mix = self.burst(count, rng)
        before = len(self.log())
        with OpenConnections(self.local.arm.endpoint) as connections:
            measured = run_noop_driver(self.env, warmup + events, warmup=len(warmup), stamp=True, drain=True)
        start, end = window(measured)
        sent = remediators(self.log()[before:])
        looked = [r for r in sent if r.received > end]
        sent = [r for r in sent if start <= r.received <= end]
        queued, drained = measured["queued"], measured["drain"]
        n = measured["events"]
        intake_cpu, looks_cpu = measured["cpu_seconds"], drained["cpu_seconds"]
        per_event = calls(sent)
        looks_calls = calls(looked)
        figures = {
            "events": n,
            "mix": dict(sorted(mix.items())),
            "failures": measured["failures"],
            "events_per_s": round(measured["events_per_s"], 1),
            "intake_cpu_ms_per_event": round(intake_cpu / n * 1000, 2),
            "intake_arm_calls": per_event,
            "intake_other_reads": other_reads_by_type(sent),
            "queue_messages_enqueued": queued,
            "most_connections_open_to_arm": connections.most,
            "looks": {
                "delivered": drained["delivered"],
                "outcomes": drained["outcomes"],
                "cpu_s": round(looks_cpu, 3),
                "arm_calls": looks_calls,
            },
            "cpu_ms_per_event": round((intake_cpu + looks_cpu) / n * 1000, 2),
            "arm_calls_per_event": round(
                (sum(per_event[k] for k in KINDS) + sum(looks_calls[k] for k in KINDS)) / n, 3
            ),
        }
        print(
            f"(b) write traffic: {n} events ({shown(figures['mix'])}) delivered to the Event Grid function "
            f"in its own process (16 at once, each raised as it is delivered), after {len(warmup)} "
            f"warm-up events (one per subscription, not measured): {measured['events_per_s']:.1f} events/s, "
            f"{figures['intake_cpu_ms_per_event']:.2f} ms of CPU per event; ARM calls: {shown(per_event)} "
            f"({sum(per_event[k] for k in KINDS) / n:.2f} per event; other reads: "
            f"{shown(figures['intake_other_reads'])}); "
            f"{measured['failures']} failed; queue messages enqueued (Azurite): {queued}; at most "
            f"{connections.most} TCP connections open to ARM at once (the kernel's table, sampled)"
        )
        print(
            f"    the looks they queued, then run in the same process: {drained['delivered']} delivered "
            f"({drained['outcomes']}), CPU {looks_cpu:.2f} s "
            f"({looks_cpu / max(drained['delivered'], 1) * 1000:.1f} ms a look), ARM calls: "
            f"{shown(looks_calls)}; all told per event: "
            f"{figures['cpu_ms_per_event']:.2f} ms of CPU, {figures['arm_calls_per_event']:.2f} ARM calls"
        )
        return figures


def a_day(
    args: argparse.Namespace, sweep: dict[str, Any], traffic: dict[str, Any], sets: int
) -> dict[str, Any]:
    events = sets * args.writes_per_set_per_day
    events_cpu = events * traffic["cpu_ms_per_event"] / 1000
    sweep_cpu = SWEEPS_A_DAY * (sweep["sweep"]["cpu_s"] + sweep["looks"]["cpu_s"])
    sweep_calls = sum(sweep["sweep"]["arm_calls"][k] + sweep["looks"]["arm_calls"][k] for k in KINDS)
    # The sweeps read the groups (their cache has lapsed 15 minutes on); intake reads them too when
    # its 10-minute cache lapses between sweeps: at most DAY_S / GROUP_CACHE_S reads in all.
    group_pages = sweep["sweep"]["arm_calls"]["management-group reads"]
    extra_group_calls = (DAY_S // GROUP_CACHE_S - SWEEPS_A_DAY) * group_pages
    arm = events * traffic["arm_calls_per_event"] + SWEEPS_A_DAY * sweep_calls + extra_group_calls
    cpu = events_cpu + sweep_cpu
    figures = {
        "assumption": f"{sets} sets x {args.writes_per_set_per_day} write events a day = {events} events, "
        f"spread as the burst was; {SWEEPS_A_DAY} sweeps (every 15 minutes), each with its looks, at the "
        "cost of the sweep above (in a fresh process: an upper bound)",
        "events": events,
        "cpu_s": round(cpu, 1),
        "cpu_s_events": round(events_cpu, 1),
        "cpu_s_sweeps": round(sweep_cpu, 1),
        "fraction_of_one_process": round(cpu / DAY_S, 5),
        "arm_calls": round(arm),
    }
    print(
        f"a day, assumed: {figures['assumption']}: {cpu:.0f} CPU-seconds ({events_cpu:.0f} for the events, "
        f"{sweep_cpu:.0f} for the sweeps and their looks) = {cpu / DAY_S:.2%} of one process; "
        f"{arm:.0f} ARM calls (about {arm / DAY_S:.2f} a second)"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--sets-per-subscription", type=int, default=10)
    parser.add_argument("--restricted", type=int, default=50)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writes-per-set-per-day", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(16)

    with LocalAzure() as local:  # the simulator's defaults: throttling, lagging lists and graph, ...
        tenant = seed_tenant(
            local.arm,
            subscriptions=args.subscriptions,
            sets_per_subscription=args.sets_per_subscription,
            restricted=args.restricted,
            instances=args.instances,
        )
        grant_remediator(local.arm)
        settings = local.arm.settings
        print(
            f"tenant: management group {GROUP} (2 landing zones beneath), {len(tenant.subscriptions)} "
            f"subscriptions, {len(tenant.sets)} scale sets ({len(tenant.restricted)} restricted, over "
            f"{len({tenant.subscription_of(s) for s in tenant.restricted})} subscriptions), {args.instances} "
            f"instances each; {tenant.documents} resources seeded. Simulator defaults: throttling "
            f"{settings.throttling}, list page {settings.page_size}, lists lag {settings.list_lag_s:g} s, "
            f"Resource Graph {settings.graph_lag_s:g} s"
        )
        bench = TenantBench(local, tenant)
        swept = bench.sweep()
        traffic = bench.traffic(args.events, rng)
        day = a_day(args, swept, traffic, len(tenant.sets))
        writes = (
            swept["sweep"]["arm_calls"]["writes"]
            + swept["looks"]["arm_calls"]["writes"]
            + traffic["intake_arm_calls"]["writes"]
            + traffic["looks"]["arm_calls"]["writes"]
        )
    problems = []
    if swept["sweep"]["queue_messages_enqueued"] != len(tenant.restricted):
        problems.append(f"the sweep queued {swept['sweep']['queue_messages_enqueued']} looks")
    if not swept["looks"]["sets_read_are_the_restricted"]:
        problems.append("the sweep's looks did not read exactly the restricted sets")
    if traffic["failures"]:
        problems.append(f"{traffic['failures']} deliveries failed")
    if writes:
        problems.append(f"{writes} writes to ARM (the restricted sets are compliant)")
    results: dict[str, Any] = {}
    if RESULTS.exists():
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
    results["tenant"] = {
        "estate": {
            "subscriptions": len(tenant.subscriptions),
            "scale_sets": len(tenant.sets),
            "restricted": len(tenant.restricted),
            "instances_per_set": args.instances,
        },
        "sweep": swept,
        "traffic": traffic,
        "day": day,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f'figures written to {RESULTS.relative_to(ROOT)} (key "tenant")')
    for problem in problems:
        print(f"tenant run not as intended: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
