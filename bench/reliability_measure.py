"""What the fault matrix measures, and only from the outside: the simulator's request log and state,
the storage proxy's and Azurite's own records, and the deliveries the harness made. Never from the
product's counters: the product's audit records are read only as the thing under test (is every
write's intent stored before the write, does every write end with a known outcome?).

A row holds when no scale-set-created, non-exempt instance of the restricted set keeps a public IP,
no public IP that remediation detached is left undeleted, the remediator wrote nothing outside its
scope, every ARM write of the remediator came after its intent was stored (Azurite's timestamp of
the intent against the simulator's arrival time of the request), every intent ends with a known
outcome after recovery, and, in a fault row, the fault was met at least once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sim import RequestRecord

WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
KNOWN_RESULTS = frozenset({"succeeded", "failed", "conflict", "skipped"})


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
        for name, value in (
            ("public IPs left", self.public_ips_left),
            ("detached public IPs left", self.detached_ips_left),
            ("writes outside scope", self.writes_outside_scope),
            ("writes before their intent", self.writes_before_intent),
            ("intents without outcome after recovery", self.unfinished_after),
        ):
            if value:
                problems.append(f"{value} {name}")
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
    outcome, or the outcome was unknown. (A later handling's outcome settled them, or none did.)"""
    intents = {e["record_id"]: e.get("event_id") for e in records if e.get("kind") == "intent"}
    closed_by_own_handling = {
        e.get("intent_id")
        for e in records
        if e.get("kind") == "outcome"
        and e.get("result") in KNOWN_RESULTS
        and intents.get(e.get("intent_id")) == e.get("event_id")
    }
    return len(set(intents) - closed_by_own_handling)


def audit_entities(connection_string: str, table: str) -> list[Any]:
    """Every record of the audit table, once (its hourly copy), as Azurite stored it: TableEntity
    dicts whose ``metadata["timestamp"]`` is when Azurite stored them."""
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, table_name=table) as client:
        return list(client.query_entities("PartitionKey ge 'h-' and PartitionKey lt 'h.'"))


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
