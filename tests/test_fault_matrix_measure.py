"""The fault matrix's columns can fail: given a request log and audit entities that break a
promise, each measure counts the breach (bench/reliability_measure.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import reliability_measure as measure

from sim import RequestRecord

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic-1"
SET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"


def request(
    method: str,
    path: str,
    at: datetime,
    *,
    status: int = 200,
    resource_type: str = "",
    operation: str = "",
    call: str = "",
) -> RequestRecord:
    """One request as the simulator logs it; ``call`` is the client request id its retries share."""
    return RequestRecord(
        method=method,
        path=path,
        resource_type=resource_type or "Microsoft.Network/networkInterfaces",
        operation=operation,
        status=status,
        time=at,
        principal="remediator",
        received=at,
        client_request_id=call or f"call-{method}-{path}-{at.isoformat()}",
    )


class Entity(dict[str, Any]):
    def __init__(self, stored: datetime, **fields: Any) -> None:
        super().__init__(**fields)
        self.metadata = {"timestamp": stored}


def test_a_write_that_arrived_before_its_intent_was_stored_is_counted() -> None:
    intent = Entity(T0, kind="intent", record_id="i1", target=NIC.lower())
    in_order = request("PUT", NIC, T0 + timedelta(milliseconds=5))
    overtaking = request("PUT", NIC, T0 - timedelta(milliseconds=5))
    unannounced = request("DELETE", NIC.replace("nic-1", "nic-2"), T0)

    early = measure.writes_before_intent([in_order, overtaking, unannounced], [intent])

    assert early == [overtaking, unannounced]


def test_each_write_needs_an_intent_of_its_own_and_retries_share_one() -> None:
    intent = Entity(T0, kind="intent", record_id="i1", target=NIC.lower())
    first = request("PUT", NIC, T0 + timedelta(milliseconds=5), status=500, call="c1")
    retry = request("PUT", NIC, T0 + timedelta(milliseconds=900), call="c1")  # the SDK's retry of it
    second = request("PUT", NIC, T0 + timedelta(seconds=2), call="c2")  # a new call: a second intent?

    assert measure.writes_before_intent([first, retry, second], [intent]) == [second]
    later = Entity(T0 + timedelta(seconds=1), kind="intent", record_id="i2", target=NIC.lower())
    assert measure.writes_before_intent([first, retry, second], [intent, later]) == []


def test_reads_polls_and_graph_queries_are_not_writes() -> None:
    poll = request("GET", "/subscriptions/s/providers/Microsoft.Network/locations/x/operations/1", T0)
    graph = request("POST", "/providers/Microsoft.ResourceGraph/resources", T0, resource_type="x/y")
    status_poll = request("GET", NIC, T0)
    assert not any(measure.is_write(r) for r in (poll, graph, status_poll))
    assert measure.writes_before_intent([poll, graph, status_poll], []) == []


def test_an_action_is_matched_to_the_resource_it_acts_on() -> None:
    upgrade = request(
        "POST", f"{SET}/manualupgrade", T0, resource_type="Microsoft.Compute/virtualMachineScaleSets"
    )
    assert measure.target_of(upgrade.path) == SET.lower()
    assert measure.writes_outside([upgrade], {SET.lower()}) == []
    assert measure.writes_outside([upgrade], set()) == [upgrade]


def test_intents_without_a_known_outcome_are_counted() -> None:
    entities = [
        Entity(T0, kind="intent", record_id="a"),
        Entity(T0, kind="outcome", intent_id="a", result="succeeded"),
        Entity(T0, kind="intent", record_id="b"),
        Entity(T0, kind="outcome", intent_id="b", result="unknown"),
        Entity(T0, kind="intent", record_id="c"),
    ]
    assert measure.unfinished(entities) == 2


def test_hosts_that_never_overlapped_show_no_concurrency() -> None:
    assert measure.overlap([[[0.0, 1.0]], [[2.0, 3.0]], [[4.0, 5.0]]]) == 1
    assert measure.overlap([[[0.0, 3.0]], [[1.0, 2.0]], [[1.5, 4.0]]]) == 3


def test_a_fault_row_whose_fault_was_never_met_is_broken() -> None:
    row = measure.Row("a fault row", fault="arm")
    assert row.broken == ["the fault (arm) was never met"]
    row.faults_met["500"] = 2
    row.detached_ips_left = 1
    assert row.broken == ["1 detached public IPs left"]


def test_writes_their_own_handling_left_without_outcome_are_counted_even_once_settled() -> None:
    entities = [
        Entity(T0, kind="intent", record_id="a", event_id="e1"),
        Entity(T0, kind="outcome", intent_id="a", result="succeeded", event_id="e1"),
        Entity(T0, kind="intent", record_id="b", event_id="e1"),
        Entity(T0, kind="outcome", intent_id="b", result="unknown", event_id="e1"),
        Entity(T0, kind="outcome", intent_id="b", result="succeeded", event_id="e2"),  # settled later
        Entity(T0, kind="intent", record_id="c", event_id="e1"),  # never settled
    ]
    assert measure.left_unfinished(entities) == 2
    assert measure.unfinished(entities) == 1
