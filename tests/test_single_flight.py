"""Specification of single flight across hosts: one reconcile of a set at a time, whichever hosts
the events land on, and nothing asked for meanwhile is lost.

Each "host" is a Remediator of its own (its own clients and process state) sharing only Azure:
the simulator and Azurite. Interleavings are forced with request hooks and events, never sleeps:
host A's reconcile is held at its list of the set's VMs while the others deliver.
"""

from __future__ import annotations

import copy
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
from remediation.arm import ArmGateway
from remediation.audit import AuditLog, EventArchive, RecheckQueue
from remediation.credentials import LoopbackCredential
from remediation.engine import Handled, Remediator
from remediation.model import Recheck, RecordKind, ResourceId
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from sim.store import RequestRecord

STRIP = {"remediation.mode": "strip"}
WAIT_S = 30  # bounded: a broken lock fails the test, it does not hang it


class Host:
    """One Functions host: its own Remediator, and the re-checks it queued (delivered by hand)."""

    def __init__(self, estate: Estate) -> None:
        settings = Settings.from_env(estate.environment)
        self.rechecks: list[Recheck] = []
        queue = RecheckQueue(settings)
        original = queue.schedule

        def schedule(recheck: Recheck, delay_s: float) -> None:
            self.rechecks.append(recheck)
            original(recheck, delay_s)

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
        return self.remediator.handle(event)


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
    estate.create_set("web", tags=STRIP)
    estate.scale("web", instances)
    (event,) = estate.events()[-1:]
    return event


def test_a_second_host_leaves_a_set_it_finds_taken_marked_and_the_holder_looks_again(estate: Estate) -> None:
    event = scale_out(estate)
    host_a, host_b = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        a = pool.submit(host_a.handle, event)
        assert reached.wait(WAIT_S), "host A's reconcile reached its VM list"
        before_b = len(estate.sim.requests())
        b = host_b.handle(another_delivery(event))
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
    (way_back,) = host_b.rechecks
    assert way_back.if_marked
    assert Host(estate).remediator.recheck(way_back.to_message()).status == "served"
    assert len(vm_lists(estate)) == 2


def test_a_storm_over_three_hosts_costs_two_reconciles_and_one_way_back(estate: Estate) -> None:
    event = scale_out(estate, instances=3)
    hosts = [Host(estate) for _ in range(3)]
    deliveries = [another_delivery(event) for _ in range(30)]
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(8) as pool:
        first = pool.submit(hosts[0].handle, event)
        assert reached.wait(WAIT_S)
        storm = [pool.submit(hosts[i % 3].handle, e) for i, e in enumerate(deliveries)]
        statuses = [s.result(WAIT_S).status for s in storm]  # all answered while A is held
        release.set()
        assert first.result(WAIT_S).status == "reconciled"

    assert statuses == ["busy"] * 30
    assert len(vm_lists(estate)) == 2, "one reconcile, and one follow-up for the whole storm"
    assert sum(len(h.rechecks) for h in hosts) == 1, "one way back for the marked set, not one per event"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))


def test_when_the_holder_dies_its_lease_lapses_and_the_way_back_finishes_the_set(estate: Estate) -> None:
    event = scale_out(estate)
    dead, survivor = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        hung = pool.submit(dead.handle, event)  # A: holds the lease, then never answers
        assert reached.wait(WAIT_S)
        assert survivor.handle(another_delivery(event)).status == "busy"
        # A's host is gone: nobody renews its lease, which lapses within a lease period (the
        # harness breaks it, as the lapse would, instead of waiting 60 s).
        survivor.remediator.locks.break_lease(ResourceId.parse(docs.set_id("web")))
        (way_back,) = survivor.rechecks
        handled = Host(estate).remediator.recheck(way_back.to_message())
        assert handled.status == "reconciled"
        assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
        release.set()
        hung.result(WAIT_S)  # A wakes up to a set already clean: its stale writes meet If-Match


def test_an_event_about_an_unrestricted_set_takes_no_lease(estate: Estate) -> None:
    from azure.storage.blob import ContainerClient

    estate.create_set("open")
    estate.scale("open", 1)
    for event in estate.events():
        assert Host(estate).handle(event).status == "reconciled"

    locks = ContainerClient.from_connection_string(
        estate.environment["RemediationStorage"], estate.environment["LOCK_CONTAINER"]
    )
    assert not locks.exists() or list(locks.list_blobs()) == [], "one read, and no lease or mark"
    assert all(r.reason.startswith("not restricted") for r in estate.audit() if r.kind is RecordKind.DECISION)


def test_a_holder_that_runs_out_of_passes_leaves_a_way_back(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(single_flight, "MAX_PASSES", 1)
    event = scale_out(estate)
    host_a, host_b = Host(estate), Host(estate)
    with first_vm_list_held(estate) as (reached, release), ThreadPoolExecutor(1) as pool:
        a = pool.submit(host_a.handle, event)
        assert reached.wait(WAIT_S)
        assert host_b.handle(another_delivery(event)).status == "busy"
        release.set()
        assert a.result(WAIT_S).status == "reconciled"

    (left,) = host_a.rechecks  # the holder saw B's mark but had no pass left: it leaves a way back
    assert left.if_marked
    assert Host(estate).remediator.recheck(left.to_message()).status == "reconciled"
    assert Host(estate).remediator.recheck(left.to_message()).status == "served", "the mark is settled"
