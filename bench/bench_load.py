"""Load: 5,000 events (duplicates, reordering, many sets) through the handler. Prints throughput
and memory; checks that the estate ended remediated and that memory stayed bounded.

    .venv/bin/python bench/bench_load.py [--events 5000] [--restricted 10] [--open 40] [--size 10]

The estate: ``--restricted`` Flexible sets in strip mode and ``--open`` unrestricted ones, each
scaled to ``--size``. The events: every write event the estate raised, plus events naming its
sets, VMs and NICs at random (as a busy subscription sends), 30% of them delivered twice, all
shuffled, delivered by Event Grid (``EventGridPlayer``, 16 at once) to one host process of their
own (``HostPool``: the Event Grid trigger and the work queue's trigger; the simulator runs in this
one). The host's RSS is sampled every 0.2 s; its CPU is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import arm_docs as docs  # noqa: E402
from bench_engine import answers, play, process_cpu_seconds  # noqa: E402
from estate import Estate  # noqa: E402

from localazure.functions_host import HostPool  # noqa: E402
from localazure.stack import LocalAzure  # noqa: E402


def prepare(estate: Estate, args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    """Build the sets and the event mix: raised events, random ones, 30% duplicated, shuffled."""
    names = [f"r{i}" for i in range(args.restricted)] + [f"o{i}" for i in range(args.open)]
    for name in names:
        estate.create_set(name, tags={"remediation.mode": "strip"} if name.startswith("r") else None)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: estate.scale(n, args.size), names))
    estate.sim.wait_idle(120)
    raised = estate.events()
    resources = [docs.set_id(name) for name in names]
    for vm in estate.compute.virtual_machines.list(docs.GROUP):
        resources.append(vm.id)
        resources.extend(ref.id for ref in vm.network_profile.network_interfaces)
    events = list(raised)
    while len(events) < args.events:
        events.append(docs.write_event(random.choice(resources)))
    events = events[: args.events]
    events += random.sample(events, k=int(0.3 * len(events)))  # at-least-once: duplicates
    random.shuffle(events)  # and no order
    return names, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--restricted", type=int, default=10)
    parser.add_argument("--open", type=int, default=40)
    parser.add_argument("--size", type=int, default=10)
    args = parser.parse_args()
    random.seed(11)

    with LocalAzure(provision_delay_s=0.5, lro_duration_s=0.05, page_size=100) as local:
        unique = uuid.uuid4().hex[:10]
        environment = local.environment(
            audit_table=f"load{unique}",
            recheck_queue=f"load-{unique}",
            archive_container=f"load-{unique}",
            lock_container=f"load-locks-{unique}",
        )
        environment["ARM_POLL_INTERVAL_SECONDS"] = "0.1"
        os.environ.update(environment)
        with Estate(local, environment) as estate:
            names, events = prepare(estate, args)
            with HostPool(1, environment) as host:
                pid = host.processes[0].pid
                rss: list[float] = []
                sampling = threading.Event()
                sampler = threading.Thread(target=sample_rss, args=(pid, rss, sampling), daemon=True)
                sampler.start()
                cpu_before, started = process_cpu_seconds(pid), time.perf_counter()
                deliveries = play(host, events)
                seconds = time.perf_counter() - started
                until = time.monotonic() + 600
                while public_ips_left(estate, names) and time.monotonic() < until:
                    time.sleep(1)  # the looks run on the host's work queue; bounded
                remediated_in = time.perf_counter() - started
                cpu = process_cpu_seconds(pid) - cpu_before
                sampling.set()
                sampler.join(5)
            left = public_ips_left(estate, names)
            failed = sum(1 for d in deliveries if d.attempts[-1].outcome != "Delivered")
            print(
                f"{len(events)} events ({len(events) - args.events} duplicates) for {len(names)} sets "
                f"({args.restricted} restricted, {args.size} instances each) in {seconds:.1f} s = "
                f"{len(events) / seconds:.0f} events/s into one host process (16 concurrent), answered "
                f"{answers(deliveries)}; {failed} failed deliveries; restricted sets remediated "
                f"{remediated_in:.1f} s after the first delivery; public IPs left on them: {left}"
            )
            samples = rss or [0.0]
            quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3, 4)]
            print(
                f"host process: CPU {cpu / len(events) * 1000:.1f} ms/event (intake and looks); "
                "RSS at a quarter, "
                f"half, three quarters and the end of the run: {', '.join(f'{q:.0f}' for q in quarters)} MiB "
                f"(peak {max(samples):.0f} MiB)"
            )
            return 0 if left == 0 else 1


def public_ips_left(estate: Estate, names: list[str]) -> int:
    return sum(
        len(estate.public_ips_of(vm)) for name in names if name.startswith("r") for vm in estate.vms(name)
    )


def sample_rss(pid: int, samples: list[float], stop: threading.Event) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    while not stop.wait(0.2):
        try:
            samples.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page / 2**20)
        except (OSError, IndexError, ValueError):
            return


if __name__ == "__main__":
    sys.exit(main())
