"""`make reliability`: the remediator against a hostile ARM and a failing storage, scenario by scenario.

Every scenario builds the same estate in the simulator: a restricted Flexible set (strip) scaled
out by 20, with a hand-added VM that carries a public IP and an instance exempt by tag, beside
an unrestricted set of 5. Its events are delivered twice each, shuffled, while the scenario's
fault plays; what fails is redelivered, as Event Grid does (bounded attempts), and a sweep runs
at the end, as the timer would. Then it checks what the product promises:

- no public IP left on a scale-set-created, non-exempt instance of the restricted set;
- no ARM write by the remediator to anything else (the unrestricted set, the hand-added VM,
  the exempt instance);
- every ARM write has an intent and an outcome (`audit verify` reports 0);
- no NIC written successfully more often than intents announced it (a retried write is one intent).

It prints one table row per scenario and exits 1 if any row breaks a promise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import arm_docs as docs  # noqa: E402
from estate import Estate  # noqa: E402

from localazure.host import deliver_event_grid, user_function  # noqa: E402
from localazure.stack import LocalAzure  # noqa: E402
from remediation.arm import LoopbackCredential  # noqa: E402
from remediation.audit import AuditLog  # noqa: E402
from remediation.settings import Settings  # noqa: E402
from sim import ArmSimulator, Faults  # noqa: E402

SIZE = 20
WRITES = ("PUT", "PATCH", "POST", "DELETE")
REDELIVERIES = 8


@dataclass
class Row:
    scenario: str
    events: int = 0
    arm_writes: int = 0
    public_ips_left: int = 0
    writes_outside_scope: int = 0
    intents_without_outcome: int = 0
    writes_beyond_intents: int = 0  # successful NIC PUTs that no intent of their own announced
    seconds: float = 0.0
    note: str = ""

    @property
    def holds(self) -> bool:
        return (
            self.public_ips_left == 0
            and self.writes_outside_scope == 0
            and self.intents_without_outcome == 0
            and self.writes_beyond_intents == 0
        )


class OtherWriter:
    """Someone else editing the restricted set's NICs (tags) while we remediate: 412 races."""

    def __init__(self, estate: Estate, rounds: int = 3) -> None:
        from azure.mgmt.network import NetworkManagementClient

        self.network: Any = NetworkManagementClient(
            _other_credential(),
            docs.SUB,
            base_url=estate.sim.endpoint,
            connection_verify=estate.sim.ca_bundle,
        )
        self.rounds = rounds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(estate,), daemon=True)

    def _run(self, estate: Estate) -> None:
        for round_number in range(self.rounds):
            for nic in list(self.network.network_interfaces.list(docs.GROUP)):
                if self._stop.is_set():
                    return
                doc = nic.as_dict()
                if not doc["name"].startswith("web"):
                    continue
                doc["tags"] = {**doc.get("tags", {}), "touched": str(round_number)}
                try:  # keeps whatever public IP the NIC has now: only its tags change
                    self.network.network_interfaces.begin_create_or_update(
                        docs.GROUP, doc["name"], doc
                    ).result()
                except Exception:  # noqa: BLE001 - a lost race of the other writer is not ours to judge
                    continue

    def __enter__(self) -> OtherWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.network.close()


def _other_credential() -> Any:
    import base64

    from azure.core.credentials import AccessToken

    claims = {"appid": "11111111-2222-3333-4444-555555555555", "name": "someone else"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(f"eyJhbGciOiJub25lIn0.{payload}.x", int(time.time()) + 3600)

    return Credential()


def build(estate: Estate) -> tuple[list[dict[str, Any]], set[str], int]:
    """The estate; returns its events, the resource ids the remediator may write, and where its
    own requests start in the simulator's log."""
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.create_set("open")
    # A VM attached by hand that does carry a public IP: it must be left alone.
    pip = estate.network.public_ip_addresses.begin_create_or_update(
        docs.GROUP, "hand-pip", {"location": docs.LOCATION, "sku": {"name": "Standard"}, "properties": {}}
    ).result()
    nic = estate.network.network_interfaces.begin_create_or_update(
        docs.GROUP,
        "app-vm-01-nic",
        {
            "location": docs.LOCATION,
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {"subnet": {"id": docs.SUBNET}, "publicIPAddress": {"id": pip.id}},
                    }
                ]
            },
        },
    ).result()
    body = docs.hand_added_vm("web", "app-vm-01", "app-vm-01-nic")
    body["properties"]["networkProfile"]["networkInterfaces"][0]["id"] = nic.id
    for field in ("id", "name", "type"):
        body.pop(field)
    estate.compute.virtual_machines.begin_create_or_update(docs.GROUP, "app-vm-01", body).result()
    estate.scale("web", SIZE)
    estate.scale("open", 5)
    created = sorted(
        (vm for vm in estate.vms("web") if vm["name"].startswith("web_")), key=lambda vm: vm["name"]
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(created[0]["id"], {"remediation.exempt-until": tomorrow})
    allowed: set[str] = set()
    for vm in created[1:]:
        for ref in vm["properties"]["networkProfile"]["networkInterfaces"]:
            nic_doc = estate.network.network_interfaces.get(
                docs.GROUP, ref["id"].rsplit("/", 1)[-1]
            ).as_dict()
            allowed.add(nic_doc["id"].lower())
            for config in nic_doc["properties"]["ipConfigurations"]:
                if config["properties"].get("publicIPAddress"):
                    allowed.add(config["properties"]["publicIPAddress"]["id"].lower())
    events = estate.events() * 2
    random.Random(7).shuffle(events)
    estate.sim.wait_idle(60)
    return events, allowed, len(estate.sim.requests())


def deliver(estate: Estate, events: list[dict[str, Any]], fault: Callable[[int], None] | None = None) -> int:
    """Deliver, redelivering failures up to REDELIVERIES times; ``fault(n)`` runs before the n-th."""
    delivered = 0
    pending = list(events)
    for _attempt in range(REDELIVERIES):
        failed = []
        for event in pending:
            if fault is not None:
                fault(delivered)
            delivered += 1
            try:
                deliver_event_grid(event)
            except Exception:  # noqa: BLE001 - the host answers 500 and Event Grid redelivers
                failed.append(event)
        pending = failed
        if not pending:
            break
    return delivered


def sweep() -> None:
    from azure.functions.timer import TimerRequest

    for _attempt in range(REDELIVERIES):  # a failed sweep runs again at the next tick
        try:
            user_function("sweep")(TimerRequest(past_due=False))
            return
        except Exception:  # noqa: BLE001 - the timer fires again
            continue


def _target(path: str) -> str:
    return path.split("?", 1)[0].rstrip("/").lower()


def measure(row: Row, estate: Estate, allowed: set[str], first_request: int) -> Row:
    remediator = LoopbackCredential.APP_ID.lower()
    ours = [r for r in estate.sim.requests()[first_request:] if (r.principal or "").lower() == remediator]
    # Resource Graph answers queries by POST: a read.
    writes = [r for r in ours if r.method in WRITES and "microsoft.resourcegraph" not in r.path.lower()]
    row.arm_writes = sum(1 for r in writes if 200 <= r.status < 300)
    outside = [r for r in writes if _target(r.path) not in allowed]
    row.writes_outside_scope = len(outside)
    if outside:
        row.note += " outside: " + ", ".join(
            f"{r.method} {r.path.rsplit('/', 1)[-1]} {r.status}" for r in outside[:3]
        )
    now = datetime.now(UTC)
    audit = AuditLog(Settings.from_env(estate.environment))
    records = list(audit.records(since=timedelta(hours=1)))
    intents = Counter(
        r.nic.lower() for r in records if r.kind.value == "intent" and r.action == "detach-public-ip"
    )
    nic_writes = Counter(_target(r.path) for r in writes if r.method == "PUT" and 200 <= r.status < 300)
    row.writes_beyond_intents = sum(max(0, count - intents[nic]) for nic, count in nic_writes.items())
    for vm in estate.vms("web"):
        exempt = "remediation.exempt-until" in (vm.get("tags") or {})
        if vm["name"].startswith("web_") and not exempt:
            row.public_ips_left += len(estate.public_ips_of(vm))
    row.intents_without_outcome = len(audit.intents_without_outcome(now - timedelta(hours=1), now))
    return row


@contextmanager
def scenario_estate(local: LocalAzure, extra_env: dict[str, str]) -> Iterator[Estate]:
    local.arm.reset()
    local.arm.set_faults(None)
    unique = uuid.uuid4().hex[:10]
    environment = local.environment(
        audit_table=f"rel{unique}", recheck_queue=f"rel-{unique}", archive_container=f"rel-{unique}"
    )
    environment.update(
        {
            "REMEDIATION_POLICY": json.dumps({"monitored_subscriptions": [docs.SUB]}),
            "RECHECK_DELAYS_SECONDS": "",
            "INTERRUPTED_WRITE_GRACE_SECONDS": "0",
            "STORAGE_RETRY_TOTAL": "1",
            "ARM_READ_TIMEOUT_SECONDS": "2",
            **extra_env,
        }
    )
    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        with Estate(local, environment) as estate:
            yield estate
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_scenario(
    local: LocalAzure,
    name: str,
    *,
    faults: Faults | None = None,
    fault: Callable[[Estate], Callable[[int], None]] | None = None,
    other_writer: bool = False,
    killed: bool = False,
    drain_writes: int = 0,
    extra_env: dict[str, str] | None = None,
) -> Row:
    row = Row(name)
    started = time.monotonic()
    with scenario_estate(local, extra_env or {}) as estate:
        events, allowed, first_request = build(estate)
        row.events = len(events)
        if killed:
            row.note = kill_a_handler_mid_reconcile(estate, events)
        if drain_writes:
            row.note = drain_the_write_bucket(estate, drain_writes)
            first_request = len(estate.sim.requests())
        if faults is not None:
            local.arm.set_faults(faults)
        if other_writer:
            with OtherWriter(estate):
                deliver(estate, events, fault(estate) if fault else None)
        else:
            deliver(estate, events, fault(estate) if fault else None)
        if faults is not None:
            row.note = f"{local.arm.faults_injected} faults injected"
        local.arm.set_faults(None)
        sweep()
        estate.sim.wait_idle(120)
        measure(row, estate, allowed, first_request)
    row.seconds = time.monotonic() - started
    return row


def drain_the_write_bucket(estate: Estate, writes: int) -> str:
    """Spend the remediator's ARM write tokens first (as a busy principal would), so its own writes
    meet 429s with Retry-After."""
    body = {"location": docs.LOCATION, "sku": {"name": "Standard"}, "properties": {}}
    for number in range(writes):
        estate.network.public_ip_addresses.begin_create_or_update(
            docs.GROUP, f"drain-{number}", body, polling=False, retry_total=0
        )
    return f"write bucket drained by {writes} writes first"


def kill_a_handler_mid_reconcile(estate: Estate, events: list[dict[str, Any]]) -> str:
    """A handler process that is killed (SIGKILL) after its third ARM write; what it left is
    finished by redelivery and the sweep in this process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(events, handle)
        path = handle.name
    writes_before = estate.sim.write_count()
    child = subprocess.Popen([sys.executable, "-m", "localazure.host", path], cwd=ROOT, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while (
        child.poll() is None and estate.sim.write_count() - writes_before < 3 and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    os.unlink(path)
    return f"handler killed after {estate.sim.write_count() - writes_before} ARM writes"


def azurite_outage(local: LocalAzure) -> Callable[[Estate], Callable[[int], None]]:
    def plan(estate: Estate) -> Callable[[int], None]:
        def maybe(delivered: int) -> None:
            if delivered == 3:
                local.azurite.stop()
            elif delivered == 8:
                local.azurite.restart()

        return maybe

    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    args = parser.parse_args()
    network = frozenset({"Microsoft.Network/networkInterfaces", "Microsoft.Network/publicIPAddresses"})
    scenarios: list[tuple[str, dict[str, Any]]] = [
        ("baseline", {}),
        ("429 storms (ARM throttling, Retry-After)", {"throttled": True}),
        ("500/503 at 10%", {"faults": Faults(seed=1, rate_500=0.05, rate_503=0.05, max_faults=500)}),
        ("500/503 at 30%", {"faults": Faults(seed=2, rate_500=0.15, rate_503=0.15, max_faults=500)}),
        (
            "timeouts and dropped connections",
            {"faults": Faults(seed=3, rate_timeout=0.05, rate_drop=0.05, timeout_hold_s=4.0, max_faults=100)},
        ),
        ("LRO failures", {"faults": Faults(seed=4, rate_lro_failed=0.2, only_types=network, max_faults=100)}),
        ("412 races with another writer", {"other_writer": True}),
        ("Azurite stopped and restarted", {"azurite": True}),
        ("handler killed mid-reconcile", {"killed": True}),
    ]
    rows: list[Row] = []
    # Persistent storage: one scenario stops Azurite and starts it again.
    with LocalAzure(
        persistent_storage=True, provision_delay_s=0.5, lro_duration_s=0.1, page_size=20
    ) as local:
        for name, options in scenarios:
            if args.only and args.only not in name:
                continue
            if options.get("throttled"):
                rows.append(throttled_scenario(local, name))
                continue
            rows.append(
                run_scenario(
                    local,
                    name,
                    faults=options.get("faults"),
                    fault=azurite_outage(local) if options.get("azurite") else None,
                    other_writer=options.get("other_writer", False),
                    killed=options.get("killed", False),
                )
            )
            print_row(rows[-1])
    print()
    print_table(rows)
    return 0 if all(row.holds for row in rows) else 1


def throttled_scenario(local: LocalAzure, name: str) -> Row:
    """The same, against a simulator that enforces ARM's token buckets (at real speed), with the
    remediator's write bucket spent before the storm."""
    with ArmSimulator(throttling=True, time_scale=1.0, provision_delay_s=0.5, lro_duration_s=0.1) as arm:
        throttled = LocalAzure.__new__(LocalAzure)
        throttled.azurite, throttled.arm = local.azurite, arm
        row = run_scenario(throttled, name, drain_writes=200, extra_env={"ARM_RETRY_TOTAL": "10"})
        row.note += f"; {sum(1 for r in arm.requests() if r.status == 429)} answers were 429"
    print_row(row)
    return row


COLUMNS = (
    "scenario",
    "events",
    "ARM writes",
    "public IPs left",
    "writes outside scope",
    "intents without outcome",
    "NIC writes beyond intents",
    "time",
)


def print_row(row: Row) -> None:
    print(f"  {row.scenario}: {'ok' if row.holds else 'BROKEN'} ({row.seconds:.1f} s) {row.note}", flush=True)


def print_table(rows: list[Row]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [
            row.scenario + (f" ({row.note})" if row.note else ""),
            row.events,
            row.arm_writes,
            row.public_ips_left,
            row.writes_outside_scope,
            row.intents_without_outcome,
            row.writes_beyond_intents,
            f"{row.seconds:.1f} s",
        ]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
