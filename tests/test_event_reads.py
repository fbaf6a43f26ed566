"""Specification of the reads intake spends on an event, counted in the simulator's log.

- A read ARM served after an event's time shows the event's write, so it answers that event too:
  a backlog of events about one set costs one read of it, while an event newer than every read
  is read for (a tag written since is seen).
- An event raised by the remediator's own write (its claims are the remediator's identity) costs
  no read at all: the look that wrote verified it.
- A read that ARM's budget has no token for within intake's time is not sent (it could only meet
  a 429): the event goes to the work queue, whose worker waits its turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate, estate_on

from localazure.stack import LocalAzure
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind
from remediation.recent_reads import RecentReads, answers
from sim import RequestRecord

NIC = "Microsoft.Network/networkInterfaces"
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def remediator_reads(estate: Estate, after: int) -> list[RequestRecord]:
    return [
        r
        for r in estate.sim.requests()[after:]
        if r.principal.lower() == LoopbackCredential.APP_ID.lower() and r.method == "GET"
    ]


def raised(resource_id: str, ago: timedelta) -> dict[str, Any]:
    """A write event for ``resource_id`` that Event Grid delivers ``ago`` after ARM raised it."""
    event = docs.write_event(resource_id)
    event["eventTime"] = (datetime.now(UTC) - ago).isoformat()
    return event


# -- the judgement ---------------------------------------------------------------------------


def test_a_read_answers_an_event_only_if_arm_served_it_a_margin_after_the_event() -> None:
    margin = timedelta(seconds=2)
    assert answers(NOW + timedelta(seconds=2), NOW, margin)
    assert not answers(NOW + timedelta(seconds=1), NOW, margin), "within the clocks' skew"
    assert not answers(NOW - timedelta(seconds=5), NOW, margin), "served before the write"
    assert not answers(NOW, None, margin), "an event without a time is always read for"
    naive = datetime(2026, 12, 3, 5, 0)  # "2026-12-03T05:00:00", no offset: which moment is unknown
    assert not answers(NOW, naive, margin), "a time without an offset is always read for"


def test_recent_reads_keep_the_newest_read_per_resource_and_a_bounded_number() -> None:
    reads = RecentReads(capacity=2, margin=timedelta(seconds=2))
    fetched: list[str] = []

    def fetch(value: str, served: datetime) -> Any:
        def go() -> tuple[str, datetime]:
            fetched.append(value)
            return value, served

        return go

    later = NOW + timedelta(seconds=10)
    assert reads.read("set", "/A", NOW, fetch("a1", later)) == "a1"
    assert reads.read("set", "/a", NOW, fetch("a2", later)) == "a1", "kept (ids are case-insensitive)"
    assert reads.read("set", "/a", later, fetch("a3", later + timedelta(seconds=3))) == "a3", "newer event"
    reads.read("set", "/b", NOW, fetch("b", later))
    reads.read("set", "/c", NOW, fetch("c", later))  # /a, least recently used, goes
    assert reads.read("set", "/a", NOW, fetch("a4", later)) == "a4"
    assert fetched == ["a1", "a3", "b", "c", "a4"]
    assert reads.read("vm", "/b", NOW, fetch("vm-b", later)) == "vm-b", "kinds are kept apart"


# -- on the wire -----------------------------------------------------------------------------


def test_a_backlog_of_events_about_an_unrestricted_set_costs_one_read(estate: Estate) -> None:
    estate.create_set("open")
    estate.events()
    backlog = [raised(docs.set_id("open"), timedelta(seconds=30)) for _ in range(5)]
    before = len(estate.sim.requests())

    for event in backlog:
        estate.take_in(event)

    assert len(remediator_reads(estate, before)) == 1, "the first event's read answers the other four"
    assert {r.event_id for r in estate.audit() if r.kind is RecordKind.DECISION} == {e["id"] for e in backlog}


def test_an_event_newer_than_every_read_is_read_for_and_sees_the_tag_written_since(estate: Estate) -> None:
    estate.create_set("web")
    estate.events()
    estate.take_in(raised(docs.set_id("web"), timedelta(seconds=30)))  # a read of the set, untagged
    estate.tag(docs.set_id("web"), {"remediation.mode": "strip"})
    before = len(estate.sim.requests())

    fresh = docs.write_event(docs.set_id("web"))  # the tag's write, raised now
    estate.take_in(fresh)

    assert len(remediator_reads(estate, before)) == 1
    decisions = [r.reason for r in estate.audit() if r.event_id == fresh["id"]]
    assert any(reason.startswith("queued: a look at the set") for reason in decisions), decisions


@pytest.mark.parametrize("capacity", [2])
def test_the_events_of_the_remediators_own_writes_cost_no_read(estate: Estate, capacity: int) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", capacity)
    for event in estate.events():
        estate.deliver(event)
    assert len(estate.successful("PUT", NIC)) == capacity
    own = [e for e in estate.events() if e["data"]["operationName"].lower().startswith("microsoft.network")]
    assert len(own) == capacity, "each NIC write raised its event, with the remediator's claims"
    before = len(estate.sim.requests())

    for event in own:
        estate.take_in(event)

    assert remediator_reads(estate, before) == []
    for event in own:
        records = [r for r in estate.audit() if r.event_id == event["id"]]
        assert [r.kind for r in records] == [RecordKind.RECEIVED, RecordKind.DECISION]
        assert records[1].reason.startswith("nothing to do: raised by this app's own write")


@pytest.fixture
def slow_refill(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    """An estate on a simulator of its own (so its ARM endpoint, and the process's pacer for it, are
    this test's alone) whose clock runs at a hundredth of real time: a 429's Retry-After for one
    read token (0.04 simulated seconds) is 4 real seconds, longer than intake waits for a token."""
    with estate_on(local_azure, {}, time_scale=0.01, list_lag_s=0.0) as (estate, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield estate


def test_a_read_with_no_token_in_intakes_time_is_not_sent_and_the_event_goes_to_the_queue(
    slow_refill: Estate,
) -> None:
    estate = slow_refill
    estate.create_set("open")
    estate.events()
    estate.sim.throttle_next(LoopbackCredential.APP_ID, "reads", 1)
    before = len(estate.sim.requests())

    first, second = (docs.write_event(docs.set_id("open")) for _ in range(2))
    estate.take_in(first)  # its read is answered 429, with Retry-After: the pacer's bucket is empty
    estate.take_in(second)  # no token within intake's second: its read is not sent

    reads = remediator_reads(estate, before)
    assert [r.status for r in reads] == [429], "one read, the throttled one; none sent to meet a 429"
    for event in (first, second):
        reasons = [r.reason for r in estate.audit() if r.event_id == event["id"]]
        assert any("handed to the work queue" in reason for reason in reasons), reasons


def test_a_scale_set_write_with_the_remediators_identity_is_still_looked_at(estate: Estate) -> None:
    """Whoever else can act as the identity could scale a restricted set out: only NIC writes
    (the remediator's detaches) are taken as its own."""
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.events()
    event = docs.write_event(docs.set_id("web"))
    event["data"]["claims"] = {"appid": LoopbackCredential.APP_ID, "oid": LoopbackCredential.APP_ID}

    estate.take_in(event)

    reasons = [r.reason for r in estate.audit() if r.event_id == event["id"]]
    assert any(reason.startswith("queued: a look at the set") for reason in reasons), reasons
