"""Event Grid's delivery contract as the local host plays it (localazure/eventgrid.py), on a clock
the test moves: a delivery not answered within 30 s is tried again while the first invocation
still runs; failures follow the retry schedule; after the last attempt the event is dead-lettered
in Event Grid's form; and `remediation replay --dead-letter` brings such an event back."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from estate import Estate

from localazure.eventgrid import DeadLetters, EventGridPlayer, ManualClock
from localazure.stack import LocalAzure
from remediation.cli import main
from remediation.model import RecordKind

WAIT_S = 30.0  # bounded: a broken player fails the test, it does not hang it
EVENT = {"id": "e-1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "data": {}}


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the player never got there"
        time.sleep(0.01)


def next_wait(clock: ManualClock, begun: int) -> None:
    """Wait until the player is waiting again, in a wait begun after ``begun`` others."""
    until(lambda: clock.waits_begun > begun and clock.waiting == 1)


def test_a_delivery_past_the_deadline_is_tried_again_while_the_first_still_runs() -> None:
    clock, entered, release = ManualClock(), threading.Semaphore(0), threading.Event()

    def slow(event: dict[str, Any]) -> None:
        entered.release()
        release.wait(WAIT_S)

    player = EventGridPlayer(slow, clock=clock, jitter=0.0)
    with ThreadPoolExecutor(1) as pool:
        delivering = pool.submit(player.deliver, EVENT)
        assert entered.acquire(timeout=WAIT_S)
        next_wait(clock, 0)  # waiting for attempt 1's answer
        begun = clock.waits_begun
        clock.advance(29.9)
        time.sleep(0.2)  # room for a wrong player to act too early (a right one cannot)
        assert clock.waits_begun == begun and not delivering.done(), "not yet timed out at 29.9 s"
        clock.advance(0.1)  # no answer in 30 s
        next_wait(clock, begun)  # waiting out the 10 s before attempt 2
        begun = clock.waits_begun
        clock.advance(9.9)
        time.sleep(0.2)
        assert not entered.acquire(timeout=0), "no attempt 2 before its 10 s"
        clock.advance(0.1)
        assert entered.acquire(timeout=WAIT_S), "attempt 2 arrives"
        assert player.running == 2, "while attempt 1 still runs"
        next_wait(clock, begun)
        release.set()
        delivery = delivering.result(WAIT_S)

    assert [(a.number, a.sent, a.outcome, a.status) for a in delivery.attempts] == [
        (1, 0.0, "TimedOut", 408),
        (2, 40.0, "Delivered", 200),
    ]


def dead_letters(local: LocalAzure) -> tuple[DeadLetters, str]:
    container = f"deadletter-{uuid.uuid4().hex[:10]}"
    return DeadLetters(local.azurite.connection_string, container, "vmss-public-ip-remediator"), container


def read_dead_letters(local: LocalAzure, container: str) -> dict[str, Any]:
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(local.azurite.connection_string, container)
    return {blob.name: json.loads(client.download_blob(blob.name).readall()) for blob in client.list_blobs()}


def test_failures_follow_the_schedule_then_the_event_is_dead_lettered(local_azure: LocalAzure) -> None:
    clock = ManualClock()
    sink, container = dead_letters(local_azure)

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("the function raised: the host answers 500")

    early = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)  # single-digit month, day and hour
    player = EventGridPlayer(
        broken, clock=clock, max_attempts=3, jitter=0.0, dead_letters=sink, wall=lambda: early
    )
    with ThreadPoolExecutor(1) as pool:
        delivering = pool.submit(player.deliver, EVENT)
        # Each attempt's answer comes at once (wait 1, 3, 5); the waits before attempts 2 and 3
        # are waits 2 and 4.
        next_wait(clock, 1)
        clock.advance(9.9)
        time.sleep(0.2)
        assert clock.waits_begun == 2, "attempt 2 not before its 10 s"
        clock.advance(0.1)
        next_wait(clock, 3)
        clock.advance(29.9)
        time.sleep(0.2)
        assert clock.waits_begun == 4, "attempt 3 not before its 30 s"
        clock.advance(0.1)
        delivery = delivering.result(WAIT_S)

    assert [(a.sent, a.outcome, a.status) for a in delivery.attempts] == [
        (0.0, "Failed", 500),
        (10.0, "Failed", 500),
        (40.0, "Failed", 500),
    ]
    ((name, content),) = read_dead_letters(local_azure, container).items()
    assert name == delivery.dead_letter
    assert name.startswith("VMSS-PUBLIC-IP-REMEDIATOR/2026/3/4/5/"), (
        "the subscription's name, no zero padding"
    )
    assert name.endswith(".json")
    (event,) = content
    assert event["id"] == EVENT["id"]
    assert event["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert (event["deliveryAttempts"], event["lastDeliveryOutcome"], event["lastHttpStatusCode"]) == (
        3,
        "Failed",
        500,
    )
    assert event["publishTime"] == "2026-03-04T05:06:00Z"
    assert event["lastDeliveryAttemptTime"] == "2026-03-04T05:06:40Z", "40 s after the first attempt"


@pytest.mark.parametrize("timed_out", [False, True])
def test_a_dead_lettered_event_is_replayed_and_remediates_its_set(
    estate: Estate, capsys: pytest.CaptureFixture[str], timed_out: bool
) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    (scale_out,) = estate.events()[-1:]
    sink, container = dead_letters(estate.local)
    release = threading.Event()

    def host_down(event: dict[str, Any]) -> None:
        if timed_out:
            release.wait(WAIT_S)  # never answers in time
        raise RuntimeError("host unavailable")

    clock = ManualClock()
    player = EventGridPlayer(host_down, clock=clock, max_attempts=1, dead_letters=sink)
    with ThreadPoolExecutor(1) as pool:
        delivering = pool.submit(player.deliver, scale_out)
        if timed_out:
            next_wait(clock, 0)
            clock.advance(30)
        delivery = delivering.result(WAIT_S)
        release.set()
    assert delivery.dead_letter and estate.public_ips_of(estate.vms("web")[0]), "nothing remediated yet"

    assert main(["replay", "--dead-letter", container]) == 0
    estate.pump_rechecks()  # the replay's event, then the look it queued

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    outcome = "TimedOut" if timed_out else "Failed"
    received = [r for r in estate.audit() if r.kind is RecordKind.RECEIVED]
    assert any(
        f"dead-lettered (MaxDeliveryAttemptsExceeded) after 1 attempts, last: {outcome}" in r.reason
        for r in received
    )
    capsys.readouterr()
