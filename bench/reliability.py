"""`make reliability`: the fault matrix. The remediator, with its default settings, against a hostile
ARM and a failing storage, one scenario per row; every column measured from the outside
(``reliability_measure``).

Every scenario builds the same estate in the simulator: a restricted Flexible set (strip) scaled
out by 20, with a hand-added VM that carries a public IP and an instance exempt by tag, beside an
unrestricted set of 5. Its events are delivered twice each, shuffled, while the scenario's fault
plays (in this process, or from several host processes at once); what failed is redelivered, as
Event Grid does (bounded); then the timer sweep runs once, its clock moved past the grace period
for interrupted writes, as if it ran a quarter of an hour later. Faults are set, never raced: the
simulator's buckets are set, faults are seeded and bounded, and the storage and kill triggers fire
at a given request, so a slower machine meets the same faults.

    .venv/bin/python bench/reliability.py [--only TEXT]

It prints one table row per scenario and exits 1 if any row breaks a promise, including a fault
row whose fault was never met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import arm_docs as docs  # noqa: E402
import reliability_measure as measure  # noqa: E402
from estate import Estate  # noqa: E402
from reliability_faults import (  # noqa: E402
    HOSTS,
    REMEDIATOR,
    Run,
    another_writer,
    azurite_outage,
    build,
    deliver_from_hosts,
    deliver_here,
    deliver_to_a_killed_host,
    storage_fails_after_the_fifth_write,
    storage_fails_after_the_third_intent,
    throttled,
)

from localazure.host import pump_queue, user_function  # noqa: E402
from localazure.stack import LocalAzure  # noqa: E402
from localazure.storage_faults import StorageFaults  # noqa: E402
from remediation.engine import remediator_for  # noqa: E402
from remediation.settings import Settings  # noqa: E402
from sim import Faults  # noqa: E402

REDELIVERIES = 8
NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
NETWORK = frozenset({NIC, PUBLIC_IP})
WRITE_METHODS = frozenset({"PUT", "DELETE"})


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str = ""  # what must be met ("" only for the baseline)
    faults: Faults | None = None  # seeded ARM faults during the first round of deliveries
    arrange: Callable[[Run], None] | None = None  # set buckets, storage and request triggers
    hosts: bool = False  # deliver from several host processes at once
    kill: bool = False  # deliver from one host process, killed (SIGKILL) in the middle of a write
    env: dict[str, str] = field(default_factory=dict)
    # Play the queue trigger on the re-check queue until it is empty (bounded): the way back to a
    # set whose holder died, once its lease has lapsed.
    way_back: bool = False


SCENARIOS = [
    Scenario("baseline"),
    Scenario(
        "429s: write and delete buckets drained, kept drained for 40 answers each", "429", arrange=throttled
    ),
    Scenario(
        "500/503 before the work, 10%", "arm", Faults(seed=1, rate_500=0.05, rate_503=0.05, max_faults=500)
    ),
    Scenario(
        "500/503 before the work, 30%", "arm", Faults(seed=2, rate_500=0.15, rate_503=0.15, max_faults=500)
    ),
    Scenario(
        "500 after the write was applied",
        "arm",
        Faults(seed=5, rate_500_after_work=0.3, only_methods=WRITE_METHODS, only_types=NETWORK, max_faults=8),
    ),
    Scenario(
        "connection dropped after the write was applied",
        "arm",
        Faults(
            seed=6, rate_drop_after_work=0.3, only_methods=WRITE_METHODS, only_types=NETWORK, max_faults=8
        ),
    ),
    Scenario(
        "read timeouts and dropped connections (ARM_READ_TIMEOUT_SECONDS=2)",
        "arm",
        Faults(seed=3, rate_timeout=0.05, rate_drop=0.05, timeout_hold_s=4.0, max_faults=100),
        env={"ARM_READ_TIMEOUT_SECONDS": "2"},
    ),
    Scenario(
        "failed detach operations",
        "arm",
        Faults(
            seed=4,
            rate_lro_failed=0.3,
            only_methods=frozenset({"PUT"}),
            only_types=frozenset({NIC}),
            max_faults=6,
        ),
    ),
    Scenario(
        "412s: another writer retags the NICs after each of our first two reads",
        "412",
        arrange=another_writer,
    ),
    Scenario(
        "storage fails between intent and write (16 writers)",
        "storage",
        arrange=storage_fails_after_the_third_intent,
    ),
    Scenario(
        "storage fails between write and outcome (16 writers)",
        "storage",
        arrange=storage_fails_after_the_fifth_write,
    ),
    Scenario("Azurite stopped and restarted mid-storm", "storage", arrange=azurite_outage),
    Scenario(f"{HOSTS} host processes delivering at once", "hosts", hosts=True),
    # The dead host's lease lapses after SET_LEASE_SECONDS; its set is finished by the way back.
    Scenario(
        "host killed with SIGKILL mid-write",
        "kill",
        kill=True,
        env={"SET_LEASE_SECONDS": "15"},
        way_back=True,
    ),
]


# -- running a scenario ----------------------------------------------------------------------


@contextmanager
def scenario_run(local: LocalAzure, storage: StorageFaults, scenario: Scenario) -> Iterator[Run]:
    local.arm.reset()
    local.arm.set_faults(None)
    storage.reset()
    unique = uuid.uuid4().hex[:10]
    environment = local.environment(
        audit_table=f"rel{unique}",
        recheck_queue=f"rel-{unique}",
        archive_container=f"rel-{unique}",
        lock_container=f"rel-locks-{unique}",
    )
    environment["RemediationStorage"] = storage.connection_string
    environment["SET_LEASE_SECONDS"] = "15"  # Azure's shortest lease: what a lapse costs the run
    environment["REMEDIATION_POLICY"] = json.dumps({"monitored_subscriptions": [docs.SUB]})
    environment.update(scenario.env)
    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        with Estate(local, environment) as estate:
            allowed, ips = build(estate)
            events = estate.events() * 2
            random.Random(7).shuffle(events)
            row = measure.Row(scenario.name, scenario.fault)
            run = Run(local, storage, estate, events, allowed, ips, len(local.arm.requests()), row)
            try:
                yield run
            finally:
                for hook in run.hooks:
                    local.arm.remove_request_hook(hook)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_scenario(local: LocalAzure, storage: StorageFaults, scenario: Scenario) -> measure.Row:
    started = time.monotonic()
    with scenario_run(local, storage, scenario) as run:
        row = run.row
        if scenario.arrange is not None:
            scenario.arrange(run)
        local.arm.set_faults(scenario.faults)
        if scenario.hosts:
            pending = deliver_from_hosts(run)
        elif scenario.kill:
            pending = deliver_to_a_killed_host(run)
        else:
            pending = deliver_here(run.events, run.after_delivery)
        row.deliveries = len(run.events)
        row.faults_met.update(local.arm.faults_met())
        if storage.failures:
            row.faults_met["storage requests failed"] = storage.failures
        local.arm.set_faults(None)
        for hook in run.hooks:
            local.arm.remove_request_hook(hook)
        run.hooks.clear()
        storage.reset()
        if not local.azurite.running:
            local.azurite.restart()
        local.arm.wait_idle(120)
        settings = Settings.from_env()
        for _round in range(REDELIVERIES):  # Event Grid redelivers what failed
            if not pending:
                break
            row.deliveries += len(pending)
            pending = deliver_here(pending)
            local.arm.wait_idle(120)
        if pending:
            row.notes.append(f"{len(pending)} events still failing after {REDELIVERIES} redeliveries")
        if scenario.way_back:
            rechecks = play_the_recheck_trigger(settings)
            row.notes.append(f"{rechecks} re-checks delivered once the dead host's lease had lapsed")
            local.arm.wait_idle(120)
        leases_lapse(settings)
        sweep_later(settings)
        local.arm.wait_idle(120)
        collect(run, settings)
    row.seconds = time.monotonic() - started
    return row


def play_the_recheck_trigger(settings: Settings, bound_s: float = 120.0) -> int:
    """Deliver re-check messages as they become visible until the queue is empty (bounded);
    returns how many were delivered."""
    from azure.storage.queue import QueueClient

    assert settings.storage_connection_string
    queue = QueueClient.from_connection_string(settings.storage_connection_string, settings.recheck_queue)
    delivered = 0
    deadline = time.monotonic() + bound_s
    with queue:
        while time.monotonic() < deadline:
            delivered += pump_queue(settings.storage_connection_string, settings.recheck_queue, "on_work")
            if queue.get_queue_properties().approximate_message_count == 0:
                break
            time.sleep(1.0)  # the trigger's polling interval: the messages are not visible yet
    return delivered


def leases_lapse(settings: Settings, bound_s: float = 30.0) -> None:
    """A quarter of an hour passes before the sweep: every lease a failed or killed handling left
    behind has lapsed by then (the harness waits for SET_LEASE_SECONDS, not for 15 minutes)."""
    from azure.storage.blob import ContainerClient

    assert settings.storage_connection_string
    locks = ContainerClient.from_connection_string(
        settings.storage_connection_string, settings.lock_container
    )
    deadline = time.monotonic() + bound_s
    with locks:
        while time.monotonic() < deadline:
            if not locks.exists() or all(blob.lease.state != "leased" for blob in locks.list_blobs()):
                return
            time.sleep(1.0)  # leases lapse on the storage service's clock


def sweep_later(settings: Settings) -> None:
    """The timer sweep, a quarter of an hour later: past the grace period of interrupted writes."""
    remediator = remediator_for(settings)
    later = timedelta(seconds=settings.interrupted_write_grace_s + 60)
    remediator.clock = lambda: datetime.now(UTC) + later
    try:
        from azure.functions.timer import TimerRequest

        for _attempt in range(REDELIVERIES):  # a failed sweep runs again at the next tick
            try:
                user_function("sweep")(TimerRequest(past_due=False))
                return
            except Exception:  # noqa: BLE001 - the timer fires again
                continue
    finally:
        remediator.clock = lambda: datetime.now(UTC)


def collect(run: Run, settings: Settings) -> None:
    row, estate, sim = run.row, run.estate, run.local.arm
    ours = measure.remediator_requests(sim.requests(), run.first_request, REMEDIATOR)
    measure.count_faults(row, ours)
    if row.fault == "429":
        row.faults_met["429"] = row.throttled_met
    if row.fault == "412":
        row.faults_met["412"] = row.conflicts_met
    outside = measure.writes_outside(ours, run.allowed)
    row.writes_outside_scope = len(outside)
    row.notes += [f"outside scope: {r.method} {r.path.rsplit('/', 1)[-1]} {r.status}" for r in outside[:3]]
    entities = measure.audit_entities(run.local.azurite.connection_string, settings.audit_table)
    early = measure.writes_before_intent(ours, [e for e in entities if e.get("kind") == "intent"])
    row.writes_before_intent = len(early)
    row.notes += [f"before its intent: {r.method} {r.path.rsplit('/', 1)[-1]}" for r in early[:3]]
    row.unfinished_before = measure.left_unfinished(entities)
    row.unfinished_after = measure.unfinished(entities)
    for vm in estate.vms("web"):
        if vm["name"].startswith("web_") and "remediation.exempt-until" not in (vm.get("tags") or {}):
            row.public_ips_left += len(estate.public_ips_of(vm))
    for ip in run.built_ips:
        doc = sim.get_resource(ip)
        if doc is not None and not doc.get("properties", {}).get("ipConfiguration"):
            row.detached_ips_left += 1


# -- the table -------------------------------------------------------------------------------

COLUMNS = (
    "scenario",
    "deliveries",
    "faults met",
    "412s",
    "429s",
    "ARM writes",
    "public IPs left",
    "detached IPs left",
    "writes outside scope",
    "writes before their intent",
    "writes left without outcome: by the fault / after recovery",
    "time",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_row(row: measure.Row) -> None:
    verdict = "ok" if not row.broken else "BROKEN: " + "; ".join(row.broken)
    notes = f" ({'; '.join(row.notes)})" if row.notes else ""
    print(f"  {row.scenario}: {verdict} ({row.seconds:.1f} s){notes}", flush=True)


def print_table(rows: list[measure.Row]) -> None:
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Fault matrix of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}:")
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [
            row.scenario,
            row.deliveries,
            measure.fault_summary(row),
            row.conflicts_met,
            row.throttled_met,
            row.arm_writes,
            row.public_ips_left,
            row.detached_ips_left,
            row.writes_outside_scope,
            row.writes_before_intent,
            f"{row.unfinished_before} / {row.unfinished_after}",
            f"{row.seconds:.0f} s",
        ]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    args = parser.parse_args()
    rows: list[measure.Row] = []
    # Persistent storage: one scenario stops Azurite and starts it again. Throttling on, at real speed.
    with (
        LocalAzure(
            persistent_storage=True, provision_delay_s=0.5, lro_duration_s=0.1, page_size=20, throttling=True
        ) as local,
        StorageFaults(local.azurite) as storage,
    ):
        for scenario in SCENARIOS:
            if args.only and args.only not in scenario.name:
                continue
            rows.append(run_scenario(local, storage, scenario))
            print_row(rows[-1])
    print()
    print_table(rows)
    return 0 if all(not row.broken for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
