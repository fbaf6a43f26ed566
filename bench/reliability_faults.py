"""The fault matrix's estate, deliveries and fault triggers (``reliability`` runs them).

Faults are set, never raced: the simulator's buckets are set, the storage proxy and the kill
trigger fire at a given request (a request hook runs after ARM did the work and before the answer
leaves), and host processes start on one signal, so a slower machine meets the same faults.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import arm_docs as docs  # noqa: E402
import reliability_measure as measure  # noqa: E402
from estate import Estate  # noqa: E402

from localazure.host import deliver_event_grid  # noqa: E402
from localazure.stack import LocalAzure  # noqa: E402
from localazure.storage_faults import StorageFaults, table_batch_containing  # noqa: E402
from remediation.credentials import LoopbackCredential  # noqa: E402
from sim import RequestRecord  # noqa: E402

SIZE = 20
HOSTS, HOST_WORKERS = 3, 4
REMEDIATOR = LoopbackCredential.APP_ID


@dataclass
class Run:
    """One scenario's estate, the stand-in around it, and what the scenario arranged."""

    local: LocalAzure
    storage: StorageFaults
    estate: Estate
    events: list[dict[str, Any]]
    allowed: set[str]  # NIC and public IP ids the remediator may write
    built_ips: set[str]  # the public IPs the remediable instances had when built
    first_request: int
    row: measure.Row
    hooks: list[Callable[[RequestRecord], None]] = field(default_factory=list)
    after_delivery: Callable[[], None] | None = None  # called after each first-round delivery here

    def hook(self, hook: Callable[[RequestRecord], None]) -> None:
        self.hooks.append(hook)
        self.local.arm.add_request_hook(hook)


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


# -- deliveries ------------------------------------------------------------------------------


def deliver_here(
    events: list[dict[str, Any]], after: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Deliver in this process, one at a time; returns the events whose delivery failed."""
    failed = []
    for event in events:
        try:
            deliver_event_grid(event)
        except Exception:  # noqa: BLE001 - the host answers 500 and Event Grid redelivers
            failed.append(event)
        if after is not None:
            after()
    return failed


def start_host(events: list[dict[str, Any]], workers: int) -> tuple[subprocess.Popen[str], str]:
    """A host process that indexes the function app, says "ready", and delivers on "go"."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(events, handle)
    child = subprocess.Popen(
        [sys.executable, "-m", "localazure.host", handle.name, str(workers), "--wait-for-go"],
        cwd=ROOT,
        env=dict(os.environ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child, handle.name


def go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def finish_host(child: subprocess.Popen[str], path: str) -> dict[str, Any] | None:
    output, _ = child.communicate(timeout=600)
    os.unlink(path)
    lines = output.strip().splitlines()
    return json.loads(lines[-1]) if child.returncode == 0 and lines else None


def deliver_from_hosts(run: Run) -> list[dict[str, Any]]:
    """Deal the events to several host processes, each delivering with several workers at once;
    all start on one signal, once every host is ready."""
    shares = [run.events[host::HOSTS] for host in range(HOSTS)]
    started = [start_host(share, HOST_WORKERS) for share in shares]
    for child, _ in started:
        go(child)
    reports = [finish_host(child, path) for child, path in started]
    failed_ids = {event_id for report in reports if report for event_id in report["failed_ids"]}
    spans = [report["spans"] if report else [] for report in reports]
    run.row.faults_met["hosts in flight at once"] = max(measure.overlap(spans) - 1, 0)
    lost = [share for share, report in zip(shares, reports, strict=True) if report is None]
    return [e for e in run.events if e["id"] in failed_ids] + [e for share in lost for e in share]


def deliver_to_a_killed_host(run: Run) -> list[dict[str, Any]]:
    """One host process delivering everything, killed right after ARM applied its third write
    (before the answer reached it); every event it had is delivered again."""
    child, path = start_host(run.events, HOST_WORKERS)

    def kill() -> None:
        os.kill(child.pid, signal.SIGKILL)
        run.row.faults_met["host killed mid-write"] = 1

    at_applied_write(run, 3, kill)
    go(child)
    finish_host(child, path)
    return list(run.events)


def at_applied_write(run: Run, number: int, act: Callable[[], None]) -> None:
    """Call ``act`` once ARM has applied the remediator's ``number``-th write, before its answer
    leaves (in the request's thread: the answer waits for ``act``)."""
    applied = 0
    lock = threading.Lock()

    def count(record: RequestRecord) -> None:
        nonlocal applied
        if record.principal.lower() != REMEDIATOR.lower() or not measure.is_write(record):
            return
        if 200 <= record.status < 300:
            with lock:
                applied += 1
                if applied != number:
                    return
            act()

    run.hook(count)


# -- triggers --------------------------------------------------------------------------------


def throttled(run: Run) -> None:
    """The remediator's write and delete buckets drained and kept drained for 40 answers each."""
    run.local.arm.throttle_next(REMEDIATOR, "writes", 40)
    run.local.arm.throttle_next(REMEDIATOR, "deletes", 40)


def another_writer(run: Run) -> None:
    """Someone else retags the restricted set's NICs right after ARM answered the remediator's first
    two NIC lists (before the answers arrive): every PUT planned from them meets 412."""
    from azure.mgmt.network import NetworkManagementClient

    someone_else = "11111111-2222-3333-4444-555555555555"
    run.local.arm.grant(someone_else, "Owner", f"/subscriptions/{docs.SUB}")
    network: Any = NetworkManagementClient(
        LoopbackCredential(someone_else, "someone else"),
        docs.SUB,
        base_url=run.local.arm.endpoint,
        connection_verify=run.local.arm.ca_bundle,
    )
    lists = 0

    def retag(record: RequestRecord) -> None:
        nonlocal lists
        wanted = record.method == "GET" and record.path.lower().endswith("/networkinterfaces")
        if record.principal.lower() != REMEDIATOR.lower() or not wanted or lists >= 2:
            return
        lists += 1
        for nic_id in sorted(i for i in run.allowed if "/networkinterfaces/" in i):
            doc = network.network_interfaces.get(docs.GROUP, nic_id.rsplit("/", 1)[-1]).as_dict()
            doc["tags"] = {**doc.get("tags", {}), "touched": str(lists)}
            network.network_interfaces.begin_create_or_update(docs.GROUP, doc["name"], doc, polling=False)

    run.hook(retag)


def storage_fails_after_the_third_intent(run: Run) -> None:
    """Right after the third audit batch holding an intent is stored, the next 16 storage requests
    fail: that intent's write goes out; the parallel writers' intents and outcomes cannot be stored."""
    run.storage.fail_after(table_batch_containing('"kind": "intent"'), 16, occurrence=3)


def storage_fails_after_the_fifth_write(run: Run) -> None:
    """Right after ARM applied the remediator's fifth write (before its answer), the next 16 storage
    requests fail: that write's outcome, and those of the writes in flight, cannot be stored."""
    at_applied_write(run, 5, lambda: run.storage.fail_next(16))


def azurite_outage(run: Run) -> None:
    """Azurite stops right after ARM applied the remediator's third write, and starts again after
    three more deliveries have failed against it."""
    down_for = -1

    def stop() -> None:
        nonlocal down_for
        run.local.azurite.stop()
        run.row.faults_met["Azurite outages"] = 1
        down_for = 0

    def maybe_restart() -> None:
        nonlocal down_for
        if down_for >= 0:
            down_for += 1
            if down_for == 3:
                run.local.azurite.restart()
                down_for = -1

    at_applied_write(run, 3, stop)
    run.after_delivery = maybe_restart
