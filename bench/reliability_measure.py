"""What the fault matrix measures, and only from the outside: the simulator's request log and state,
the storage proxy's and Azurite's own records, and the deliveries the harness made. Never from the
product's counters: the product's audit records are read only as the thing under test (is every
write's intent stored before the write, does every write end with a known outcome?).

A row holds when no scale-set-created, non-exempt instance of the restricted set keeps a public IP,
no public IP that remediation detached is left undeleted, the remediator wrote nothing outside its
scope, every ARM write of the remediator came after its intent was stored (Azurite's timestamp of
the intent against the simulator's arrival time of the request), every intent ends with a known
outcome after recovery, and, in a fault row, the fault was met at least once. A row that must
finish before the sweep (the baseline, the host rows) also leaves no such public IP to the sweep.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sim import RequestRecord

WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
KNOWN_RESULTS = frozenset({"succeeded", "failed", "conflict", "skipped"})
UNLEDGERED = "missing from ledger"


@dataclass
class Row:
    scenario: str
    fault: str = ""  # "" for the baseline: no fault needs to be met
    deliveries: int = 0
    faults_met: dict[str, int] = field(default_factory=dict)
    conflicts_met: int = 0  # 412s answered to the remediator
    throttled_met: int = 0  # 429s answered to the remediator
    arm_writes: int = 0  # the remediator's write requests that ARM accepted (2xx)
    public_ips_left: int = 0  # on scale-set-created, non-exempt instances of the restricted set
    detached_ips_left: int = 0  # detached from such an instance and not deleted
    writes_outside_scope: int = 0
    writes_before_intent: int = 0  # ARM write requests with no intent stored before their arrival
    unfinished_before: int = 0  # intents their own handling left without a known outcome ...
    unfinished_after: int = 0  # ... and those still without one after recovery
    # `audit verify`'s judgement of the table against the audit ledger after recovery, by finding:
    # "missing from ledger" may follow a store cut between the two writes; the others never may.
    ledger: dict[str, int] = field(default_factory=dict)
    must_finish: bool = False  # the deliveries must leave no public IP for the sweep ...
    left_for_the_sweep: int = 0  # ... public IPs on those instances when the sweep came
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def met(self) -> int:
        return sum(self.faults_met.values())

    @property
    def broken(self) -> list[str]:
        """The promises this row breaks (empty: it holds)."""
        problems = []
        if self.fault and self.met == 0:
            problems.append(f"the fault ({self.fault}) was never met")
        if self.must_finish and self.left_for_the_sweep:
            problems.append(f"{self.left_for_the_sweep} public IPs left for the sweep")
        for name, value in (
            ("public IPs left", self.public_ips_left),
            ("detached public IPs left", self.detached_ips_left),
            ("writes outside scope", self.writes_outside_scope),
            ("writes before their intent", self.writes_before_intent),
            ("intents without outcome after recovery", self.unfinished_after),
        ):
            if value:
                problems.append(f"{value} {name}")
        problems += [f"{n} ledger {finding}" for finding, n in self.ledger.items() if finding != UNLEDGERED]
        return problems


def remediator_requests(requests: list[RequestRecord], first: int, principal: str) -> list[RequestRecord]:
    return [r for r in requests[first:] if (r.principal or "").lower() == principal.lower()]


def is_write(record: RequestRecord) -> bool:
    """A write of a resource: not a status poll, not a Resource Graph query (a POST that reads)."""
    return (
        record.method in WRITES
        and "/locations/" not in record.resource_type.lower()
        and "microsoft.resourcegraph" not in record.path.lower()
        and not record.operation.endswith("/read")
    )


def target_of(path: str) -> str:
    """The resource a write request goes to (a POST action's resource, without the action)."""
    target = path.split("?", 1)[0].rstrip("/").lower()
    for action in ("/manualupgrade", "/reimage", "/redeploy", "/start", "/restart"):
        target = target.removesuffix(action)
    return target


def count_faults(row: Row, ours: list[RequestRecord]) -> None:
    row.conflicts_met = sum(1 for r in ours if r.status == 412)
    row.throttled_met = sum(1 for r in ours if r.status == 429)
    writes = [r for r in ours if is_write(r)]
    row.arm_writes = sum(1 for r in writes if 200 <= r.status < 300)


def writes_outside(ours: list[RequestRecord], allowed: set[str]) -> list[RequestRecord]:
    return [r for r in ours if is_write(r) and target_of(r.path) not in allowed]


# Azurite stamps entities to the millisecond: an intent counts as stored before a write that
# arrived up to this much after the stamp's millisecond began.
STAMP_RESOLUTION = timedelta(milliseconds=1)


def writes_before_intent(ours: list[RequestRecord], intents: list[Any]) -> list[RequestRecord]:
    """The remediator's writes that no intent stored before them announces, one intent per write.

    A write is one call: its attempts (the SDK's retries) share the client request id, and its
    first attempt's arrival is when it went out. Each must be matched, in arrival order, to an
    intent for the same target stored before it (Azurite's own timestamp of the intent's copy by
    hour, stored last of its copies) that no earlier write took: the second write of a NIC needs
    a second intent. ``intents``: raw intent entities with ``metadata["timestamp"]``.
    """
    calls: dict[tuple[str, str], RequestRecord] = {}
    for record in sorted((r for r in ours if is_write(r)), key=lambda r: r.received):
        key = (target_of(record.path), record.client_request_id or f"unnamed-{id(record)}")
        calls.setdefault(key, record)  # the first attempt
    stored: dict[str, list[datetime]] = defaultdict(list)
    for entity in intents:
        target = str(entity.get("target") or "").lower()
        if target:
            stored[target].append(entity.metadata["timestamp"])
    for times in stored.values():
        times.sort()
    early = []
    for (target, _), first in sorted(calls.items(), key=lambda item: item[1].received):
        available = stored.get(target, [])
        match = next(
            (i for i, when in enumerate(available) if when <= first.received + STAMP_RESOLUTION), None
        )
        if match is None:
            early.append(first)
        else:
            del available[match]  # each intent announces one write
    return early


def unfinished(records: list[Any]) -> int:
    """Intents that no known outcome closes (no outcome, or only "unknown" ones)."""
    intents = {e["record_id"] for e in records if e.get("kind") == "intent"}
    known = {
        e.get("intent_id") for e in records if e.get("kind") == "outcome" and e.get("result") in KNOWN_RESULTS
    }
    return len(intents - known)


def left_unfinished(records: list[Any]) -> int:
    """Intents whose own handling did not record a known outcome: it stopped between intent and
    outcome (no known outcome under the intent's event id), or the outcome was unknown (an
    "unknown" outcome recorded, whatever settled it later). (A later handling's outcome settled
    them, or none did.) A look at a set is recorded under the event that queued it, so every
    reconcile of a storm shares one event id: an unknown answer counts even when the same look
    resolved it afterwards."""
    intents = {e["record_id"]: e.get("event_id") for e in records if e.get("kind") == "intent"}
    outcomes = [e for e in records if e.get("kind") == "outcome" and e.get("intent_id") in intents]
    closed_by_own_handling = {
        e.get("intent_id")
        for e in outcomes
        if e.get("result") in KNOWN_RESULTS and intents.get(e.get("intent_id")) == e.get("event_id")
    }
    answered_unknown = {e.get("intent_id") for e in outcomes if e.get("result") not in KNOWN_RESULTS}
    return len((set(intents) - closed_by_own_handling) | answered_unknown)


def ledger_findings(connection_string: str, settings: Any) -> dict[str, int]:
    """What ``integrity.judge`` finds between every entity of the audit table and every line of the
    audit ledger, both read from Azurite directly: findings by name (empty: they agree)."""
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    from remediation.integrity import judge

    with TableClient.from_connection_string(connection_string, table_name=settings.audit_table) as table:
        entities = [dict(entity) for entity in table.list_entities()]
    container = ContainerClient.from_connection_string(connection_string, settings.ledger_container)
    lines: list[str] = []
    if container.exists():
        for name in sorted(blob.name for blob in container.list_blobs()):
            lines += [line for line in container.download_blob(name).readall().decode().split("\n") if line]
    now = datetime.now(UTC)
    verdict = judge(entities, lines, now - timedelta(days=1), now + timedelta(hours=1), every_copy=True)
    return dict(Counter(discrepancy.finding.value for discrepancy in verdict.discrepancies))


def audit_entities(connection_string: str, table: str) -> list[Any]:
    """Every record of the audit table, once (its hourly copy), as Azurite stored it: TableEntity
    dicts whose ``metadata["timestamp"]`` is when Azurite stored them."""
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, table_name=table) as client:
        return list(client.query_entities("PartitionKey ge 'h-' and PartitionKey lt 'h.'"))


def reconciles(ours: list[RequestRecord], set_name: str) -> int:
    """Reconciles of a Flexible set: each lists the set's VMs once (the set named in $filter)."""
    return sum(
        1
        for r in ours
        if r.method == "GET"
        and r.path.lower().endswith("/providers/microsoft.compute/virtualmachines")
        and r.filter.rstrip("' ").lower().endswith(f"/virtualmachinescalesets/{set_name.lower()}")
    )


def fault_summary(row: Row) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(row.faults_met.items())) or "none"


def overlap(spans_by_host: list[list[list[float]]]) -> int:
    """The most deliveries in flight at once on different hosts (1: the hosts never overlapped)."""
    moments: list[tuple[float, int, int]] = []
    for host, spans in enumerate(spans_by_host):
        for start, end in spans:
            moments += [(start, 1, host), (end, -1, host)]
    busy: Counter[int] = Counter()
    best = 0
    for _, change, host in sorted(moments, key=lambda m: (m[0], m[1])):
        busy[host] += change
        best = max(best, sum(1 for count in busy.values() if count > 0))
    return best


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
    "ledger: disagreements / missing from ledger",
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


def print_row(row: Row) -> None:
    verdict = "ok" if not row.broken else "BROKEN: " + "; ".join(row.broken)
    notes = f" ({'; '.join(row.notes)})" if row.notes else ""
    print(f"  {row.scenario}: {verdict} ({row.seconds:.1f} s){notes}", flush=True)


def print_table(rows: list[Row]) -> None:
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Fault matrix of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}:")
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [
            row.scenario,
            row.deliveries,
            fault_summary(row),
            row.conflicts_met,
            row.throttled_met,
            row.arm_writes,
            row.public_ips_left,
            row.detached_ips_left,
            row.writes_outside_scope,
            row.writes_before_intent,
            f"{row.unfinished_before} / {row.unfinished_after}",
            f"{sum(n for f, n in row.ledger.items() if f != UNLEDGERED)} / {row.ledger.get(UNLEDGERED, 0)}",
            f"{row.seconds:.0f} s",
        ]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")


# -- outside state: when the work is done ------------------------------------------------------


def queued(connection_string: str, *queues: str) -> int | None:
    """The messages these queues hold, visible or not, as the storage service counts them (a
    queue never made holds none; None: the service did not answer)."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.storage.queue import QueueClient

    total = 0
    for name in queues:
        client = QueueClient.from_connection_string(
            connection_string, name, retry_total=0, connection_timeout=5
        )
        with client:
            try:
                total += int(client.get_queue_properties().approximate_message_count or 0)
            except ResourceNotFoundError:
                continue
            except AzureError:
                return None
    return total


def until(done: Callable[[], bool], bound_s: float) -> bool:
    """Poll outside state until ``done`` (True) or ``bound_s`` passed (False)."""
    deadline = time.monotonic() + bound_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)  # bounded polling of outside state, not a synchronisation
    return True
