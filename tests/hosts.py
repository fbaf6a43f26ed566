"""Helpers for tests with several host processes: Event Grid's delivery to them, and what is
read from the outside (the simulator's log, the work queue) to know when they are done."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from estate import Estate

from localazure.eventgrid import Delivery, EventGridPlayer
from localazure.functions_host import HostPool
from remediation.credentials import LoopbackCredential
from sim.store import RequestRecord

NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
SETTLE_S = 300  # bounded: a broken mechanism fails the test, it does not hang it


def by_the_remediator(record: RequestRecord) -> bool:
    return record.principal.lower() == LoopbackCredential.APP_ID.lower()


def reconciles_per_set(estate: Estate) -> Counter[str]:
    """One list of a Flexible set's VMs per reconcile: counted per set from the request's $filter."""
    lists = [
        r
        for r in estate.sim.requests()
        if by_the_remediator(r)
        and r.method == "GET"
        and r.path.lower().endswith("/providers/microsoft.compute/virtualmachines")
    ]
    return Counter(r.filter.rsplit("/", 1)[-1].strip("' ") for r in lists)


def work_queue_empty(estate: Estate) -> bool:
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(
        estate.environment["RemediationStorage"], estate.environment["RECHECK_QUEUE"]
    )
    with queue:
        return int(queue.get_queue_properties().approximate_message_count or 0) == 0


def until(done: Callable[[], bool], what: str, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.5)  # polling the outside state, bounded: not a synchronisation


def play(pool: HostPool, events: list[dict[str, Any]], seed: int = 0) -> list[Delivery]:
    """Event Grid delivers the events, several at once, each to a host chosen at random."""
    player = EventGridPlayer(pool.handler(), seed=seed)
    with ThreadPoolExecutor(16) as deliveries:
        return list(deliveries.map(player.deliver, events))
