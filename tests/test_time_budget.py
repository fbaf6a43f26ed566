"""Specification of a reconcile's time budget: writes not begun when it has run out are left to a
follow-up message on the work queue, so no invocation runs past the host's limits; every write is
still made once, and every write's intent and outcome recorded.

The budget is set to nothing, so the clock decides nothing: each reconcile begins its first round
of parallel writes (16) and defers the rest."""

from __future__ import annotations

import pytest
from estate import Estate

from remediation.act import MAX_PARALLEL_FINDINGS
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
SIZE = 40


def test_a_reconcile_out_of_time_leaves_the_rest_to_follow_ups_and_writes_each_once(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_BUDGET_SECONDS", "0")
    estate.create_set("web", tags=STRIP)
    estate.scale("web", SIZE)
    estate.sim.advance_clock(estate.sim.settings.list_lag_s)  # all listed: one look sees every one
    (event,) = [e for e in estate.events() if e["data"]["resourceUri"].lower().endswith("/web")][-1:]

    estate.take_in(event)
    first = estate.pump_once()
    assert first == 1
    assert len(estate.successful("PUT", NIC)) == MAX_PARALLEL_FINDINGS, "one round of writes, no more"
    decisions = [r for r in estate.audit() if r.kind is RecordKind.DECISION]
    deferred = [r for r in decisions if r.reason.startswith("deferred")]
    assert len(deferred) == SIZE - MAX_PARALLEL_FINDINGS
    (continued,) = [r for r in estate.audit() if r.reason.startswith("continued: follow-up 1")]
    assert f"{SIZE - MAX_PARALLEL_FINDINGS} findings left" in continued.reason

    follow_ups = estate.pump_rechecks()

    assert follow_ups >= 2, "the rest was done by follow-up messages"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert estate.public_ip_count() == 0, "the detached IPs whose deletes were deferred are deleted too"
    puts, deletes = estate.successful("PUT", NIC), estate.successful("DELETE", PUBLIC_IP)
    assert len(puts) == len(set(puts)) == SIZE and len(deletes) == len(set(deletes)) == SIZE
    records = estate.audit()
    intents = [r for r in records if r.kind is RecordKind.INTENT]
    closed = {r.intent_id for r in records if r.kind is RecordKind.OUTCOME}
    assert len(intents) == 2 * SIZE and all(i.record_id in closed for i in intents)
    assert {r.event_id for r in intents} == {event["id"]}, "the follow-ups work for the event that asked"
