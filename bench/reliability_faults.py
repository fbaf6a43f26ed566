"""The fault matrix's estate, deliveries and fault triggers (``reliability`` runs them).

Faults are set, never raced: the simulator's buckets are set, the storage proxy and the kill
trigger fire at a given request (a request hook runs after ARM did the work and before the answer
leaves), so a slower machine meets the same faults.

Deliveries follow the app's two triggers: Event Grid's delivery only takes an event in (intake
queues a look at the set); the work queue's trigger reconciles. In this process both are played
by hand (``deliver_here``, ``drain_work``); from host processes (``localazure.functions_host``)
Event Grid (``EventGridPlayer``) delivers to the hosts' webhooks and the hosts' queue listeners
do the work. When the work is done is read from the outside: Azurite's queues, empty.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import arm_docs as docs  # noqa: E402
import reliability_measure as measure  # noqa: E402
from estate import Estate  # noqa: E402

from localazure.eventgrid import EventGridPlayer  # noqa: E402
from localazure.functions_host import HostDeliveryError, HostPool  # noqa: E402
from localazure.host import deliver_event_grid, queue_message, user_function  # noqa: E402
from localazure.stack import LocalAzure  # noqa: E402
from localazure.storage_faults import StorageFaults, StorageRequest  # noqa: E402
from remediation.credentials import LoopbackCredential  # noqa: E402
from sim import RequestRecord  # noqa: E402

SIZE = 20
HOSTS, HOST_WORKERS = 3, 4  # host processes, and Event Grid's deliveries in flight per host
REMEDIATOR = LoopbackCredential.APP_ID
RUNNING_VISIBILITY_S = 20.0  # a running message, on the hosts (Azure: 10 min); a dead host's returns
PUMPS = 20  # batches of visible work delivered here after each delivery (bounded)
DRAIN_S = 180.0  # the work queue drained here, way backs (a lease period later) included
SETTLE_S = 300.0  # host processes: their work queue drained
KILL_S = 120.0  # the killed host: until it met its third applied write
QUIET_S = 2.5  # after the kill: the simulator's log is watched this long for a live writer
ON_THE_WIRE_S = 0.5  # requests sent before the kill may still be read this much after it


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
    environment: dict[str, str] = field(default_factory=dict)  # the app settings
    hooks: list[Callable[[RequestRecord], None]] = field(default_factory=list)
    after_delivery: Callable[[], None] | None = None  # called after each first-round delivery here
    unsettled: list[Any] = field(default_factory=list)  # work messages storage kept hidden

    def hook(self, hook: Callable[[RequestRecord], None]) -> None:
        self.hooks.append(hook)
        self.local.arm.add_request_hook(hook)

    def unhook(self, hook: Callable[[RequestRecord], None]) -> None:
        self.local.arm.remove_request_hook(hook)
        self.hooks.remove(hook)


# -- deliveries here --------------------------------------------------------------------------


def deliver_here(
    run: Run, events: list[dict[str, Any]], after: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Deliver in this process, one at a time, each followed by the work it queued (as a host's
    queue listener would take it up); returns the events whose delivery failed."""
    failed = []
    for event in events:
        run.row.deliveries += 1
        try:
            deliver_event_grid(event)
        except Exception:  # noqa: BLE001 - the host answers 500 and Event Grid redelivers
            failed.append(event)
        pump_work(run)
        if after is not None:
            after()
    return failed


def pump_work(run: Run, batches: int = PUMPS) -> int:
    """The work queue's trigger in this process: its visible messages delivered, batch after
    batch, until none is visible (at most ``batches``). Returns how many were handled."""
    from azure.core.exceptions import AzureError

    delivered = 0
    with work_queue(run) as queue:
        for _batch in range(batches):
            try:
                while run.unsettled:  # storage kept them hidden: visible again once it answers
                    queue.update_message(run.unsettled[0], visibility_timeout=0)
                    run.unsettled.pop(0)
                pages = queue.receive_messages(messages_per_page=32, visibility_timeout=30).by_page()
                received = list(next(pages, []))
            except AzureError as error:  # storage unreachable: the trigger's next poll tries again
                if getattr(error, "status_code", None) in (400, 404) and run.unsettled:
                    run.unsettled.pop(0)  # taken again already, or gone
                break
            if not received:
                break
            delivered += sum(handled_here(run, queue, message) for message in received)
    return delivered


def handled_here(run: Run, queue: Any, message: Any) -> bool:
    """One message to ``on_work``, as ``localazure.host.pump_queue`` delivers it: deleted when it
    returns, visible again at once when it raises (or, storage failing, ``unsettled``)."""
    from azure.core.exceptions import AzureError

    try:
        user_function("on_work")(queue_message(message.content, message.id, message.dequeue_count))
    except Exception:  # noqa: BLE001 - the host makes a failed message visible again
        try:
            queue.update_message(message, visibility_timeout=0)
        except AzureError:
            run.unsettled.append(message)
        return False
    with contextlib.suppress(AzureError):  # not deleted: it comes back, and is looked at again
        queue.delete_message(message)
    return True


def work_queue(run: Run) -> Any:
    """The work queue as the trigger reads it (the app's storage connection), with quick retries
    as the app's own clients have: the storage SDK's defaults wait 15, 18 and 24 s a request."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    connection, name = run.environment["RemediationStorage"], run.environment["RECHECK_QUEUE"]
    quick: dict[str, Any] = {"retry_total": 2, "initial_backoff": 1, "increment_base": 2}
    return QueueClient.from_connection_string(
        connection,
        name,
        message_encode_policy=TextBase64EncodePolicy(),  # an update sends the content again
        message_decode_policy=TextBase64DecodePolicy(),
        connection_timeout=5,
        **quick,
    )


def drain_work(run: Run, bound_s: float = DRAIN_S) -> int:
    """Deliver the work queue here until it holds no message, visible or not yet (a way back is
    visible a lease period after it was queued); bounded. Returns how many were handled."""
    delivered, deadline = 0, time.monotonic() + bound_s
    while time.monotonic() < deadline:
        delivered += pump_work(run)
        if queued(run) == 0:
            return delivered
        time.sleep(1.0)  # bounded polling of Azurite: what is left is not visible yet
    run.row.notes.append(f"the work queue still held messages after {bound_s:g} s")
    return delivered


def queued(run: Run, *, poison: bool = False) -> int | None:
    """The messages the work queue (with ``poison``, and its poison queue) holds, in Azurite."""
    name = run.environment["RECHECK_QUEUE"]
    names = (name, f"{name}-poison") if poison else (name,)
    return measure.queued(run.local.azurite.connection_string, *names)


# -- deliveries from host processes ------------------------------------------------------------


def play(
    pool: HostPool, events: list[dict[str, Any]], run: Run, *, attempts: int, spans: list[Any] | None = None
) -> list[dict[str, Any]]:
    """Event Grid delivers the events, HOST_WORKERS a host at once, to the pool's live hosts in
    turn, trying each at most ``attempts`` times on its schedule; returns those not delivered.
    ``spans``: each delivery's [start, end] (wall clock), per host, as the player saw them."""
    turn, lock = itertools.count(), threading.Lock()

    def deliver(event: dict[str, Any]) -> None:
        alive = pool.alive()
        if not alive:
            raise RuntimeError("no host is running")
        with lock:
            host = alive[next(turn) % len(alive)]
        start = time.time()
        try:
            status = pool.post(host, [event])[0]
        finally:
            if spans is not None:
                with lock:
                    spans[host].append([start, time.time()])
        if not 200 <= status <= 204:
            raise HostDeliveryError(status, "")

    player = EventGridPlayer(deliver, max_attempts=attempts, seed=7)
    with ThreadPoolExecutor(pool.n * HOST_WORKERS) as workers:
        deliveries = list(workers.map(player.deliver, events))
    run.row.deliveries += sum(len(d.attempts) for d in deliveries)
    return [e for e, d in zip(events, deliveries, strict=True) if d.attempts[-1].outcome != "Delivered"]


def settled_by_hosts(run: Run, what: str) -> None:
    """Wait (bounded) until the hosts' work queue and its poison queue are empty in Azurite."""
    if not measure.until(lambda: queued(run, poison=True) == 0, SETTLE_S):
        run.row.notes.append(f"{what}: the work queue still held messages after {SETTLE_S:g} s")


def deliver_from_hosts(run: Run) -> list[dict[str, Any]]:
    """HOSTS host processes: Event Grid delivers the events to them, several at once, and their
    queue listeners do the work. "Hosts in flight at once" is read from the player's deliveries:
    how many hosts were answering a delivery at one moment, less one (0: they never overlapped)."""
    spans: list[list[list[float]]] = [[] for _ in range(HOSTS)]
    with HostPool(HOSTS, run.environment, running_visibility_s=RUNNING_VISIBILITY_S) as pool:
        pending = play(pool, run.events, run, attempts=3, spans=spans)
        settled_by_hosts(run, f"{HOSTS} hosts")
    run.row.faults_met["hosts in flight at once"] = max(measure.overlap(spans) - 1, 0)
    ours = measure.remediator_requests(run.local.arm.requests(), run.first_request, REMEDIATOR)
    per_host = ", ".join(str(len(s)) for s in spans)
    run.row.notes.append(f"deliveries per host: {per_host}; {measure.reconciles(ours, 'web')} reconciles")
    return pending


def deliver_to_a_killed_host(run: Run) -> list[dict[str, Any]]:
    """One host process takes the events in and does the work; it is SIGKILLed right after ARM
    applied its third write (before the answer reached it). The fault is met when, from the
    simulator's log, the remediator then fell silent: the kill stopped the one writer. Then a
    fresh pool of two hosts takes what Event Grid could not deliver, and finishes the set once
    the dead host's message (its running visibility) and the set's lease have lapsed."""
    killed: list[datetime] = []
    with HostPool(1, run.environment, running_visibility_s=RUNNING_VISIBILITY_S) as doomed:

        def kill() -> None:
            doomed.kill(0)
            killed.append(datetime.now(UTC))

        hook = at_applied_write(run, 3, kill)
        try:
            pending = play(doomed, run.events, run, attempts=1)  # Event Grid's next try: the new hosts
            measure.until(lambda: bool(killed) or queued(run) == 0, KILL_S)
        finally:
            run.unhook(hook)
    if not killed:
        run.row.notes.append("the host was never killed: it met no third applied write")
    else:
        stray = silence_after(run, killed[0])
        if stray:
            run.row.notes.append(f"{stray} remediator requests after the kill: it missed the writer")
        else:
            run.row.faults_met["host killed mid-write"] = 1
    with HostPool(2, run.environment, running_visibility_s=RUNNING_VISIBILITY_S) as fresh:
        pending = play(fresh, pending, run, attempts=3)
        settled_by_hosts(run, "the fresh hosts")
    if killed:
        after = (datetime.now(UTC) - killed[0]).total_seconds()
        run.row.notes.append(f"the fresh hosts' work queue was empty {after:.0f} s after the kill")
    return pending


def silence_after(run: Run, moment: datetime) -> int:
    """The remediator's requests that reached ARM from ON_THE_WIRE_S to QUIET_S after ``moment``
    (watched, bounded; no host runs then: one there came from a writer the kill did not stop)."""
    start, end = moment + timedelta(seconds=ON_THE_WIRE_S), moment + timedelta(seconds=QUIET_S)

    def stray() -> int:
        ours = measure.remediator_requests(run.local.arm.requests(), run.first_request, REMEDIATOR)
        return sum(1 for r in ours if start < r.received <= end)

    measure.until(lambda: stray() > 0 or datetime.now(UTC) > end, QUIET_S + 1)
    return stray()


def at_applied_write(run: Run, number: int, act: Callable[[], None]) -> Callable[[RequestRecord], None]:
    """Call ``act`` once ARM has applied the remediator's ``number``-th write, before its answer
    leaves (in the request's thread: the answer waits for ``act``); returns the hook."""
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
    return count


# -- triggers --------------------------------------------------------------------------------


def throttled(run: Run) -> None:
    """The remediator's write and delete buckets drained and kept drained for 40 answers each."""
    run.local.arm.throttle_next(REMEDIATOR, "writes", 40)
    run.local.arm.throttle_next(REMEDIATOR, "deletes", 40)


def another_writer(run: Run) -> None:
    """Someone else retags a restricted set's NIC right after ARM answered each of the remediator's
    first two reads of it by id (before the answer arrives): the PUT planned from that read meets
    412, and so does the one re-planned from the second."""
    from azure.mgmt.network import NetworkManagementClient

    someone_else = "11111111-2222-3333-4444-555555555555"
    run.local.arm.grant(someone_else, "Owner", f"/subscriptions/{docs.SUB}")
    network: Any = NetworkManagementClient(
        LoopbackCredential(someone_else, "someone else"),
        docs.SUB,
        base_url=run.local.arm.endpoint,
        connection_verify=run.local.arm.ca_bundle,
    )
    reads: Counter[str] = Counter()

    def retag(record: RequestRecord) -> None:
        nic_id = record.path.lower()
        if (
            record.method != "GET"
            or record.principal.lower() != REMEDIATOR.lower()
            or "/networkinterfaces/" not in nic_id
            or nic_id not in run.allowed
        ):
            return
        reads[nic_id] += 1
        if reads[nic_id] > 2:
            return
        doc = network.network_interfaces.get(docs.GROUP, nic_id.rsplit("/", 1)[-1]).as_dict()
        doc["tags"] = {**doc.get("tags", {}), "touched": str(reads[nic_id])}
        network.network_interfaces.begin_create_or_update(docs.GROUP, doc["name"], doc, polling=False)

    run.hook(retag)


def storage_fails_after_the_third_intent(run: Run) -> None:
    """Right after the third audit store holding an intent is complete (its table batch, then its
    lines appended to the audit ledger), the next 16 storage requests fail: that intent's write goes
    out; the parallel writers' intents and outcomes cannot be stored."""
    run.storage.fail_after(ledger_append_containing('"kind":"intent"'), 16, occurrence=3)


def ledger_append_containing(text: str) -> Callable[[StorageRequest], bool]:
    """An Append Block to the audit ledger whose lines (compact JSON) contain ``text``."""
    wanted = text.encode()
    return lambda request: "comp=appendblock" in request.path and wanted in request.body


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
