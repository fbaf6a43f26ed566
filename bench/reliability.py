"""`make reliability`: the fault matrix. The remediator, with its default settings, against a hostile
ARM and a failing storage, one scenario per row; every column measured from the outside
(``reliability_measure``).

Every scenario builds the same estate in the simulator: a restricted Flexible set (strip) scaled
out by 20, with a hand-added VM that carries a public IP and an instance exempt by tag, beside an
unrestricted set of 5. Its events are delivered twice each, shuffled, while the scenario's fault
plays: in this process (Event Grid's trigger takes each in, then the work queue's trigger does the
work it queued), or by Event Grid to host processes whose queue listeners do the work. What failed
is delivered again, as Event Grid does (bounded), and the work queue is drained each time (way
backs included); then the timer sweep runs once, its clock moved past the grace period for
interrupted writes, as if it ran a quarter of an hour later, and the looks it queued are worked
off. Faults are set, never raced: the simulator's buckets are set, faults are seeded and bounded,
and the storage and kill triggers fire at a given request, so a slower machine meets the same
faults.

    .venv/bin/python bench/reliability.py [--only TEXT]

It prints one table row per scenario and exits 1 if any row breaks a promise, including a fault
row whose fault was never met, or a row that must finish the set before the sweep and did not.
"""

from __future__ import annotations

import argparse
import json
import os
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
    SIZE,
    Run,
    another_writer,
    azurite_outage,
    deliver_from_hosts,
    deliver_here,
    deliver_to_a_killed_host,
    drain_work,
    storage_fails_after_the_fifth_write,
    storage_fails_after_the_third_intent,
    throttled,
)

from localazure.host import user_function  # noqa: E402
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
    hosts: bool = False  # Event Grid delivers to several host processes; their queue listeners work
    kill: bool = False  # one host process killed (SIGKILL) mid-write, then two fresh ones
    env: dict[str, str] = field(default_factory=dict)
    # No public IP may be left on the set before the sweep: the deliveries did the whole job.
    finish_before_sweep: bool = False


SCENARIOS = [
    Scenario("baseline", finish_before_sweep=True),
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
    Scenario(f"{HOSTS} host processes delivering at once", "hosts", hosts=True, finish_before_sweep=True),
    # The dead host's message and lease lapse (20 s, SET_LEASE_SECONDS); fresh hosts finish the set.
    Scenario(
        "host killed with SIGKILL mid-write",
        "kill",
        kill=True,
        env={"SET_LEASE_SECONDS": "15"},
        finish_before_sweep=True,
    ),
]


def build(estate: Estate) -> tuple[set[str], set[str]]:
    """The estate; returns the NIC and public IP ids the remediator may write, and the public IPs."""
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.create_set("open")
    pip = estate.network.public_ip_addresses.begin_create_or_update(
        docs.GROUP, "hand-pip", {"location": docs.LOCATION, "sku": {"name": "Standard"}, "properties": {}}
    ).result()
    config = {"subnet": {"id": docs.SUBNET}, "publicIPAddress": {"id": pip.id}}
    nic = estate.network.network_interfaces.begin_create_or_update(
        docs.GROUP,
        "app-vm-01-nic",
        {
            "location": docs.LOCATION,
            "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]},
        },
    ).result()
    body = docs.hand_added_vm("web", "app-vm-01", "app-vm-01-nic")
    body["properties"]["networkProfile"]["networkInterfaces"][0]["id"] = nic.id
    for name in ("id", "name", "type"):
        body.pop(name)
    estate.compute.virtual_machines.begin_create_or_update(docs.GROUP, "app-vm-01", body).result()
    estate.scale("web", SIZE)
    estate.scale("open", 5)
    created = sorted(
        (vm for vm in estate.vms("web") if vm["name"].startswith("web_")), key=lambda vm: vm["name"]
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(created[0]["id"], {"remediation.exempt-until": tomorrow})
    allowed: set[str] = set()
    ips: set[str] = set()
    for vm in created[1:]:
        for ref in vm["properties"]["networkProfile"]["networkInterfaces"]:
            nic_doc = estate.network.network_interfaces.get(
                docs.GROUP, ref["id"].rsplit("/", 1)[-1]
            ).as_dict()
            allowed.add(nic_doc["id"].lower())
            for ip_config in nic_doc["properties"]["ipConfigurations"]:
                if ip_config["properties"].get("publicIPAddress"):
                    ips.add(ip_config["properties"]["publicIPAddress"]["id"].lower())
    estate.sim.wait_idle(60)
    return allowed | ips, ips


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
        ledger_container=f"rel-ledger-{unique}",
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
            row = measure.Row(scenario.name, scenario.fault, must_finish=scenario.finish_before_sweep)
            first = len(local.arm.requests())
            run = Run(local, storage, estate, events, allowed, ips, first, row, environment=environment)
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
            pending = deliver_here(run, run.events, run.after_delivery)
        # What the hosts left, before this process delivers anything (it would do their work).
        by_hosts = public_ips_left(run) if scenario.hosts or scenario.kill else None
        row.faults_met.update(local.arm.faults_met())
        if storage.failures:
            row.faults_met["storage requests failed"] = storage.failures
        local.arm.set_faults(None)
        for hook in list(run.hooks):
            run.unhook(hook)
        storage.reset()
        if not local.azurite.running:
            local.azurite.restart()
        local.arm.wait_idle(120)
        drain_work(run)  # what the first round left queued: retries, way backs
        local.arm.wait_idle(120)
        settings = Settings.from_env()
        for _round in range(REDELIVERIES):  # Event Grid redelivers what failed
            if not pending:
                break
            pending = deliver_here(run, pending)
            drain_work(run)
            local.arm.wait_idle(120)
        if pending:
            row.notes.append(f"{len(pending)} events still failing after {REDELIVERIES} redeliveries")
        row.left_for_the_sweep = public_ips_left(run) if by_hosts is None else by_hosts
        if row.left_for_the_sweep:
            by = "by the hosts" if by_hosts is not None else "for the sweep"
            row.notes.append(f"{row.left_for_the_sweep} public IPs left {by}")
        leases_lapse(settings)
        sweep_later(run, settings)
        local.arm.wait_idle(120)
        collect(run, settings)
    row.seconds = time.monotonic() - started
    return row


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


def sweep_later(run: Run, settings: Settings) -> None:
    """The timer sweep, a quarter of an hour later: past the grace period of interrupted writes.
    It only queues looks; they are worked off here, with the clock still moved."""
    remediator = remediator_for(settings)
    later = timedelta(seconds=settings.interrupted_write_grace_s + 60)
    remediator.clock = lambda: datetime.now(UTC) + later
    try:
        from azure.functions.timer import TimerRequest

        for _attempt in range(REDELIVERIES):  # a failed sweep runs again at the next tick
            try:
                user_function("sweep")(TimerRequest(past_due=False))
                break
            except Exception:  # noqa: BLE001 - the timer fires again
                continue
        else:
            run.row.notes.append(f"the sweep failed {REDELIVERIES} times")
        drain_work(run)
    finally:
        remediator.clock = lambda: datetime.now(UTC)


def public_ips_left(run: Run) -> int:
    """Public IPs on the restricted set's scale-set-created, non-exempt instances (the estate)."""
    left = 0
    for vm in run.estate.vms("web"):
        if vm["name"].startswith("web_") and "remediation.exempt-until" not in (vm.get("tags") or {}):
            left += len(run.estate.public_ips_of(vm))
    return left


def collect(run: Run, settings: Settings) -> None:
    row, sim = run.row, run.local.arm
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
    row.ledger = measure.ledger_findings(run.local.azurite.connection_string, settings)
    row.public_ips_left = public_ips_left(run)
    for ip in run.built_ips:
        doc = sim.get_resource(ip)
        if doc is not None and not doc.get("properties", {}).get("ipConfiguration"):
            row.detached_ips_left += 1


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
            measure.print_row(rows[-1])
    print()
    measure.print_table(rows)
    return 0 if all(not row.broken for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
