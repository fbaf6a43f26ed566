"""Specification of single flight across hosts: one reconcile of a set at a time, whichever hosts
the events and work messages land on, and nothing asked for meanwhile is lost.

Each "host" is a Remediator of its own (its own clients and process state) sharing only Azure:
the simulator and Azurite. Interleavings are forced with request hooks and events, never sleeps:
host A's reconcile is held at its list of the set's VMs while the others take events and work.
The work queue's messages are captured and delivered by hand, to whichever host the test says.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from remediation import single_flight
from remediation.archive import EventArchive
from remediation.arm import ArmGateway
from remediation.audit import AuditLog
from remediation.credentials import LoopbackCredential
from remediation.engine import Handled, Remediator
from remediation.model import Recheck, RecordKind
from remediation.resource_ids import ResourceId
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.work_queue import RecheckQueue
from sim.store import RequestRecord

STRIP = {"remediation.mode": "strip"}
WAIT_S = 30  # bounded: a broken lock fails the test, it does not hang it


class Host:
    """One Functions host: its own Remediator, and the looks it queued (delivered by hand)."""

    def __init__(self, estate: Estate, **app_settings: str) -> None:
        settings = Settings.from_env({**estate.environment, **app_settings})
        self.queued: list[Recheck] = []
        queue = RecheckQueue(settings)

        def schedule(recheck: Recheck, delay_s: float) -> None:
            self.queued.append(recheck)  # held here: the test delivers it to a host of its choice

        queue.schedule = schedule  # type: ignore[method-assign]
        self.remediator = Remediator(
            settings,
            ArmGateway(settings),
            AuditLog(settings),
            queue,
            EventArchive(settings),
            locks=SetLocks(settings),
        )

    def handle(self, event: dict[str, Any]) -> Handled:
        """Event Grid's delivery of ``event`` to this host."""
        return self.remediator.handle(event)

    def work(self, look: Recheck) -> Handled:
        """The queue's delivery of ``look`` to this host."""
        return self.remediator.work(look.to_message())

    @property
    def way_backs(self) -> list[Recheck]:
        return [look for look in self.queued if look.if_marked]


def is_vm_list(record: RequestRecord) -> bool:
    """The remediator's list of a set's VMs: one per reconcile of a Flexible set."""
    return (
        record.method == "GET"
        and record.path.lower().endswith("/providers/microsoft.compute/virtualmachines")
        and record.principal.lower() == LoopbackCredential.APP_ID.lower()
    )


def vm_lists(estate: Estate, after: int = 0) -> list[RequestRecord]:
    return [r for r in estate.sim.requests()[after:] if is_vm_list(r)]


@contextmanager
def first_vm_list_held(estate: Estate) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the answer to the remediator's first VM list until ``release`` is set; ``reached`` is
    set when it is held (the reconcile that sent it holds the set's lease meanwhile)."""
    reached, release = threading.Event(), threading.Event()
    held = threading.Lock()
    state = {"done": False}

    def hook(record: RequestRecord) -> None:
        if not is_vm_list(record):
            return
        with held:
            if state["done"]:
                return
            state["done"] = True
        reached.set()
        release.wait(WAIT_S)

    estate.sim.add_request_hook(hook)
    try:
        yield reached, release
    finally:
        release.set()
        estate.sim.remove_request_hook(hook)


def another_delivery(event: dict[str, Any]) -> dict[str, Any]:
    """The same write's event as another delivery with its own id (a later write of the set)."""
    copied = copy.deepcopy(event)
    copied["id"] = str(uuid.uuid4())
    return copied


def scale_out(estate: Estate, instances: int = 2) -> dict[str, Any]:
    """A restricted set scaled out, its instances listed (ARM's lists caught up: these tests are
    about who looks when, not about lists that lag, which tests/test_engine.py covers)."""
    estate.create_set("web", tags=STRIP)
    estate.scale("web", instances)
    estate.sim.advance_clock(estate.sim.settings.list_lag_s)
    (event,) = estate.events()[-1:]
    return event


def look_at(estate: Estate) -> Recheck:
    return Recheck(ResourceId.parse(docs.set_id("web")), 0, reason="a test's look")


def test_an_event_hands_the_set_to_the_queue_and_the_queue_trigger_reconciles_it(estate: Estate) -> None:
    event = scale_out(estate)
    intake, worker = Host(estate), Host(estate)
    before = len(estate.sim.requests())
    handled = intake.handle(event)
    assert handled.status == "queued"
    assert vm_lists(estate, before) == [], "intake reads the set, never its instances"
    assert all(r.method == "GET" for r in estate.sim.requests()[before:]), "intake writes nothing to ARM"
    (look,) = intake.queued
    assert look.scale_set.key == ResourceId.parse(docs.set_id("web")).key and look.origin == event["id"]

    assert worker.work(look).status == "reconciled"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    reconcile_records = [r for r in estate.audit() if r.kind is RecordKind.INTENT]
    assert reconcile_records and {r.event_id for r in reconcile_records} == {event["id"]}, (
        "the reconcile's writes are recorded under the event that asked for them"
    )


def test_events_for_a_set_whose_look_is_pending_join_it_instead_of_queuing_more(estate: Estate) -> None:
    event = scale_out(estate)
    hosts = [Host(estate) for _ in range(3)]
    assert hosts[0].handle(event).status == "queued"
    joined = [hosts[i % 3].handle(another_delivery(event)).status for i in range(12)]
    assert joined == ["joined"] * 12
    assert sum(len(h.queued) for h in hosts) == 1, "one look for the whole storm"

    (look,) = hosts[0].queued
    assert hosts[1].work(look).status == "reconciled"
    assert len(vm_lists(estate)) == 1, "the look's reconcile saw every write asked for before it began"
    assert hosts[2].handle(another_delivery(event)).status == "queued", "the mark was settled: a new look"


def test_a_second_host_leaves_a_set_it_finds_taken_marked_and_the_holder_looks_again(estate: Estate) -> None:
    scale_out(estate)
    host_a, host_b = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        a = pool.submit(host_a.work, look_at(estate))
        assert reached.wait(WAIT_S), "host A's reconcile reached its VM list"
        before_b = len(estate.sim.requests())
        b = host_b.work(look_at(estate))
        during_b = vm_lists(estate, before_b)
        release.set()
        a_handled = a.result(WAIT_S)

    assert b.status == "busy" and during_b == [], "B did not reconcile while A held the set"
    assert a_handled.status == "reconciled"
    assert len(vm_lists(estate)) == 2, "A's reconcile, and one more for what B asked meanwhile"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    busy = [r for r in estate.audit() if r.kind is RecordKind.DECISION and r.reason.startswith("busy")]
    assert len(busy) == 1
    # B's way back, in case A's host had died: delivered now, it finds the mark honoured.
    (way_back,) = host_b.way_backs
    assert Host(estate).work(way_back).status == "served"
    assert len(vm_lists(estate)) == 2


def test_a_storm_over_three_hosts_while_the_set_is_held_costs_two_reconciles(estate: Estate) -> None:
    event = scale_out(estate, instances=3)
    hosts = [Host(estate) for _ in range(3)]
    assert hosts[0].handle(event).status == "queued"
    (look,) = hosts[0].queued
    deliveries = [another_delivery(event) for _ in range(30)]
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(8) as pool:
        first = pool.submit(hosts[1].work, look)
        assert reached.wait(WAIT_S)
        storm = [pool.submit(hosts[i % 3].handle, e) for i, e in enumerate(deliveries)]
        statuses = [s.result(WAIT_S).status for s in storm]  # all answered while the set is held
        release.set()
        assert first.result(WAIT_S).status == "reconciled"

    assert statuses == ["joined"] * 30
    assert len(vm_lists(estate)) == 2, "one reconcile, and one more pass for the whole storm"
    assert sum(len(h.queued) for h in hosts) == 1, "no look queued beyond the first"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))


def test_an_event_that_renews_the_mark_as_the_holder_settles_it_is_not_lost(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder reads the mark's ETag, then deletes the mark on it: an event that renews the
    mark in between makes the delete fail, and the holder looks again."""
    event = scale_out(estate)
    intake, holder = Host(estate), Host(estate)
    assert intake.handle(event).status == "queued"
    (look,) = intake.queued
    delete = single_flight._delete_if_unchanged
    between: list[str] = []

    def renewed_first(blob: Any, etag: str) -> bool:
        if not between:
            between.append(intake.handle(another_delivery(event)).status)
        return delete(blob, etag)

    monkeypatch.setattr(single_flight, "_delete_if_unchanged", renewed_first)
    assert holder.work(look).status == "reconciled"
    assert between == ["joined"], "the event found the mark and renewed it"
    assert len(vm_lists(estate)) == 2, "the holder's delete failed on the renewed mark: it looked again"
    assert len(intake.queued) == 1


def test_when_the_holder_dies_its_lease_lapses_and_the_way_back_finishes_the_set(estate: Estate) -> None:
    scale_out(estate)
    dead, survivor = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        hung = pool.submit(dead.work, look_at(estate))  # A: holds the lease, then never answers
        assert reached.wait(WAIT_S)
        assert survivor.work(look_at(estate)).status == "busy"
        # A's host is gone: nobody renews its lease, which lapses within a lease period (the
        # harness breaks it, as the lapse would, instead of waiting 60 s).
        survivor.remediator.locks.break_lease(ResourceId.parse(docs.set_id("web")))
        (way_back,) = survivor.way_backs
        handled = Host(estate).work(way_back)
        assert handled.status == "reconciled"
        assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
        release.set()
        hung.result(WAIT_S)  # A wakes up to a set already clean: its stale writes meet If-Match


def test_an_event_about_an_unrestricted_set_takes_no_lease_nor_mark(estate: Estate) -> None:
    from azure.storage.blob import ContainerClient

    estate.create_set("open")
    estate.scale("open", 1)
    host = Host(estate)
    for event in estate.events():
        assert host.handle(event).status == "ignored"
    assert host.queued == []

    locks = ContainerClient.from_connection_string(
        estate.environment["RemediationStorage"], estate.environment["LOCK_CONTAINER"]
    )
    assert not locks.exists() or list(locks.list_blobs()) == [], "reads only, and no lease or mark"
    assert all(r.reason.startswith("not restricted") for r in estate.audit() if r.kind is RecordKind.DECISION)


def test_a_holder_that_runs_out_of_passes_leaves_a_way_back(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(single_flight, "MAX_PASSES", 1)
    scale_out(estate)
    host_a, host_b = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        a = pool.submit(host_a.work, look_at(estate))
        assert reached.wait(WAIT_S)
        assert host_b.work(look_at(estate)).status == "busy"
        release.set()
        assert a.result(WAIT_S).status == "reconciled"

    (left,) = host_a.way_backs  # the holder saw B's mark but had no pass left: it leaves a way back
    assert Host(estate).work(left).status == "reconciled"
    assert Host(estate).work(left).status == "served", "the mark is settled"


def test_a_dry_run_look_takes_no_lease_and_leaves_the_mark_to_the_look_that_writes(estate: Estate) -> None:
    event = scale_out(estate)
    intake, worker = Host(estate), Host(estate)
    set_id = ResourceId.parse(docs.set_id("web"))
    assert intake.handle(event).status == "queued"
    (look,) = intake.queued

    assert worker.work(dataclasses.replace(look, dry_run=True)).status == "reconciled"  # a dry-run replay's
    assert worker.remediator.locks.marked(set_id), "the mark is the real look's to settle"
    assert estate.successful("PUT", "Microsoft.Network/networkInterfaces") == []

    assert worker.work(look).status == "reconciled"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert not worker.remediator.locks.marked(set_id)


def test_a_mark_left_behind_makes_events_join_until_the_sweep_settles_it(estate: Estate) -> None:
    import json

    event = scale_out(estate)
    host = Host(estate)
    set_id = ResourceId.parse(docs.set_id("web"))
    host.remediator.locks.mark(set_id)  # its look ended before the mark landed, or was poisoned
    assert host.handle(event).status == "joined" and host.queued == []

    policy = json.dumps({"monitored_subscriptions": [docs.SUB]})
    sweeper = Host(estate, REMEDIATION_POLICY=policy)
    estate.sim.advance_clock(estate.sim.settings.graph_lag_s)  # the set is in Resource Graph by then
    assert sweeper.remediator.sweep().queued == 1, "the sweep queues a look whatever the mark says"
    (look,) = sweeper.queued
    assert host.work(look).status == "reconciled"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert not host.remediator.locks.marked(set_id), "settled by the sweep's look"


def test_a_look_that_finds_its_set_no_longer_restricted_clears_the_mark(estate: Estate) -> None:
    event = scale_out(estate)
    host = Host(estate)
    set_id = ResourceId.parse(docs.set_id("web"))
    assert host.handle(event).status == "queued"
    (look,) = host.queued
    estate.compute.virtual_machine_scale_sets.begin_update(docs.GROUP, "web", {"tags": {}}).result()

    assert host.work(look).status == "reconciled"  # settled: not restricted
    assert not host.remediator.locks.marked(set_id), "no reconcile is owed: the mark goes"
