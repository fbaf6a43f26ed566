"""Event Grid's push delivery, played for the local host: the contract a Functions app meets.

From learn.microsoft.com/azure/event-grid/delivery-and-retry: Event Grid waits 30 s for an
answer; an answer that does not come in time, or an error, makes the delivery fail, and the event
is delivered again on a schedule (10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, then hourly up
to 24 h), with some randomization, until the subscription's maximum attempts (1-30) or the event's
time to live (up to 24 h) run out; then it is dead-lettered, when the subscription has a
dead-letter container. A delivery that timed out is not cancelled: the first invocation goes on
running while the next attempt arrives. A dead-letter blob (learn.microsoft.com/azure/event-grid/
manage-event-delivery) is named after the event subscription, in upper case:
`<SUBSCRIPTION>/<year>/<month>/<day>/<hour>/<id>.json` (no zero padding), and holds a JSON
array of the events, each with `deadLetterReason`, `deliveryAttempts`, `lastDeliveryOutcome`,
`publishTime` and `lastDeliveryAttemptTime` (Microsoft's sample), and `lastHttpStatusCode`
(public dead-letter samples only; to check against a real dead letter).

Time comes from a clock, so a test decides when 30 s have passed (`ManualClock`) instead of
waiting for them, and a benchmark may scale it (`RealClock(time_scale)`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

DEADLINE_S = 30.0
SCHEDULE_S = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0)


class Clock(Protocol):
    def now(self) -> float: ...

    def wait(self, done: threading.Event, until: float) -> bool:
        """Wait until ``done`` is set (True) or the clock reaches ``until`` (False)."""
        ...


class RealClock:
    """Seconds as they pass, ``time_scale`` times faster."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self._scale = time_scale
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self._scale

    def wait(self, done: threading.Event, until: float) -> bool:
        return done.wait(max(until - self.now(), 0.0) / self._scale)


class ManualClock:
    """A clock that moves only when told (``advance``); waits end when it passes their time."""

    def __init__(self) -> None:
        self._now = 0.0
        self._moved = threading.Condition()
        self.waiting = 0  # waits in progress (a test advances once the player is waiting)
        self.waits_begun = 0

    def now(self) -> float:
        with self._moved:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._moved:
            self._now += seconds
            self._moved.notify_all()

    def wait(self, done: threading.Event, until: float) -> bool:
        with self._moved:
            self.waiting += 1
            self.waits_begun += 1
            try:
                while not done.is_set() and self._now < until:
                    self._moved.wait(0.05)  # also wakes to see `done`, which has no condition of its own
            finally:
                self.waiting -= 1
        return done.is_set()


@dataclass(frozen=True)
class Attempt:
    number: int
    sent: float  # clock seconds
    outcome: str  # "Delivered", "TimedOut" or "Failed"
    status: int  # the HTTP status the handler's host answered (408 for a time-out)
    answered: float = 0.0  # clock seconds when the answer came (the deadline, for a time-out)


@dataclass
class Delivery:
    event_id: str
    attempts: list[Attempt] = field(default_factory=list)
    dead_letter: str = ""  # the blob, when the event was dead-lettered


class DeadLetters:
    """Event Grid's dead-letter blobs in a container (Azurite or Azure)."""

    def __init__(self, connection_string: str, container: str, subscription: str) -> None:
        """``subscription``: the event subscription's name (the blobs are named after it)."""
        from azure.storage.blob import ContainerClient

        self._container = ContainerClient.from_connection_string(connection_string, container)
        self._prefix = subscription.upper()

    def write(self, event: Mapping[str, Any], facts: Mapping[str, Any], when: datetime) -> str:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        name = f"{self._prefix}/{when.year}/{when.month}/{when.day}/{when.hour}/{uuid.uuid4()}.json"
        self._container.upload_blob(name, json.dumps([{**event, **facts}]).encode())
        return name


class EventGridPlayer:
    """Deliver events to ``handler`` (the Event Grid triggered function: it returns, or raises for
    the host to answer 500) under Event Grid's deadline, retries and dead-lettering."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any]], None],
        *,
        clock: Clock | None = None,
        deadline_s: float = DEADLINE_S,
        schedule_s: tuple[float, ...] = SCHEDULE_S,
        max_attempts: int = 30,
        time_to_live_s: float = 24 * 3600.0,
        jitter: float = 0.1,
        seed: int = 0,
        dead_letters: DeadLetters | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 1 <= max_attempts <= 30:
            raise ValueError("Event Grid allows 1 to 30 delivery attempts")
        self._handler = handler
        self._clock = clock or RealClock()
        self._deadline = deadline_s
        self._schedule = schedule_s
        self._max_attempts = max_attempts
        self._ttl = time_to_live_s
        self._jitter = jitter
        self._random = random.Random(seed)  # noqa: S311 - Event Grid's jitter, seeded: not a secret
        self._random_lock = threading.Lock()
        self._dead_letters = dead_letters
        self._wall = wall  # the date and time a dead letter is stamped and filed with
        self.running = 0  # handler invocations in progress, timed-out ones included
        self._running_lock = threading.Lock()

    def deliver(self, event: Mapping[str, Any]) -> Delivery:
        """Deliver one event until it is answered in time, dead-lettered or dropped."""
        delivery = Delivery(str(event.get("id", "")))
        published = self._clock.now()
        published_at = self._wall()
        while True:
            sent = self._clock.now()
            done, answer = threading.Event(), {"status": 0}
            threading.Thread(target=self._invoke, args=(event, done, answer), daemon=True).start()
            if self._clock.wait(done, sent + self._deadline):
                status = answer["status"]
                outcome = "Delivered" if status == 200 else "Failed"
            else:
                status, outcome = 408, "TimedOut"  # the invocation goes on running
            answered = self._clock.now()
            delivery.attempts.append(Attempt(len(delivery.attempts) + 1, sent, outcome, status, answered))
            if outcome == "Delivered":
                return delivery
            number = len(delivery.attempts)
            delay = self._schedule[min(number - 1, len(self._schedule) - 1)] * self._spread()
            expired = self._clock.now() + delay - published >= self._ttl
            if number >= self._max_attempts or expired:
                reason = (
                    "MaxDeliveryAttemptsExceeded" if number >= self._max_attempts else "TimeToLiveExceeded"
                )
                delivery.dead_letter = self._dead_letter(event, delivery, reason, published_at)
                return delivery
            self._clock.wait(threading.Event(), self._clock.now() + delay)

    def _invoke(self, event: Mapping[str, Any], done: threading.Event, answer: dict[str, int]) -> None:
        with self._running_lock:
            self.running += 1
        try:
            self._handler(copy.deepcopy(dict(event)))
            answer["status"] = 200
        except Exception:  # noqa: BLE001 - the host answers 500 for a function that raised anything
            answer["status"] = 500
        finally:
            with self._running_lock:
                self.running -= 1
            done.set()

    def _spread(self) -> float:
        with self._random_lock:
            return 1.0 + self._random.uniform(-self._jitter, self._jitter)

    def _dead_letter(
        self, event: Mapping[str, Any], delivery: Delivery, reason: str, published_at: datetime
    ) -> str:
        if self._dead_letters is None:
            return ""  # no dead-letter destination: Event Grid drops the event
        last = delivery.attempts[-1]
        last_at = published_at + timedelta(seconds=last.sent - delivery.attempts[0].sent)
        facts = {
            "deadLetterReason": reason,
            "deliveryAttempts": len(delivery.attempts),
            "lastDeliveryOutcome": last.outcome,
            "lastHttpStatusCode": last.status,
            "publishTime": published_at.isoformat().replace("+00:00", "Z"),
            "lastDeliveryAttemptTime": last_at.isoformat().replace("+00:00", "Z"),
        }
        return self._dead_letters.write(event, facts, last_at)
