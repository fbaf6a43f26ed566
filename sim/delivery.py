"""Event delivery: the way Event Grid hands resource events to subscribers, pluggable.

The remediator must cope with what Event Grid really does: at-least-once
delivery (duplicates), no ordering guarantee, and either of two schemas. The
store produces events in completion order; the bus in between can duplicate
them (`duplicate_rate`) and shuffle them within a window (`reorder_window`),
both from a seeded random generator so a failing run can be repeated, then
hands each one to every sink in that sink's schema. Sinks: an in-process
callback (synchronous, as before), an HTTP webhook on loopback (an array per
POST, as Event Grid does), and an Azure Storage queue (one message per event,
as Event Grid's storage-queue handler does). Webhook and queue sinks deliver
from their own thread, so a slow subscriber never stalls ARM.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from sim.events import EventSchema, in_schema
from sim.scheduler import Scheduler

logger = logging.getLogger(__name__)

Event = dict[str, Any]
_QUEUE_CLOSE = object()


class Sink(Protocol):
    def send(self, event: Event) -> None: ...

    def wait_empty(self, timeout_s: float) -> bool: ...

    def close(self) -> None: ...


class CallbackSink:
    """An in-process subscriber, called synchronously from the thread that completed the write."""

    def __init__(self, callback: Callable[[Event], None], schema: EventSchema) -> None:
        self._callback = callback
        self._schema = schema

    def send(self, event: Event) -> None:
        try:
            self._callback(in_schema(copy.deepcopy(event), self._schema))
        except Exception:
            # A failing subscriber must not break ARM for everyone else, as in Event Grid.
            logger.exception("event sink failed for event %s", event.get("id"))

    def wait_empty(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        return None


class _Worker(ABC):
    """A sink that delivers from its own daemon thread, in the order it was given events."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def send(self, event: Event) -> None:
        self._queue.put(copy.deepcopy(event))

    def wait_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self) -> None:
        self._queue.put(_QUEUE_CLOSE)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _QUEUE_CLOSE:
                    return
                assert isinstance(item, dict)
                self._deliver(item)
            except Exception:
                logger.exception("event delivery failed in %s", self._thread.name)
            finally:
                self._queue.task_done()

    @abstractmethod
    def _deliver(self, event: Event) -> None:
        """Deliver one event; an exception is logged and the event dropped."""


def _require_loopback(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook {url!r} must be an http(s) URL")
    host = parts.hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"webhook {url!r} is not on loopback; the simulator only talks to this machine")


class WebhookSink(_Worker):
    """POSTs each event as a JSON array of one (Event Grid's default batch size) to a loopback URL.

    Like Event Grid it retries a failed delivery (any non-2xx or a connection error), here a bounded
    number of times with a short pause, then drops the event and logs it (Event Grid would
    dead-letter it). There is no validation handshake.
    """

    def __init__(self, url: str, schema: EventSchema, *, attempts: int = 3, timeout_s: float = 5.0) -> None:
        _require_loopback(url)
        self.url = url
        self._schema = schema
        self._attempts = max(attempts, 1)
        self._timeout_s = timeout_s
        super().__init__(f"arm-sim-webhook-{url}")

    def _deliver(self, event: Event) -> None:
        payload = json.dumps([in_schema(event, self._schema)]).encode("utf-8")
        content_type = (
            "application/cloudevents-batch+json; charset=utf-8"
            if self._schema is EventSchema.CLOUD_EVENTS
            else "application/json"
        )
        for attempt in range(1, self._attempts + 1):
            request = urllib.request.Request(  # noqa: S310 (http(s) on loopback, checked at construction)
                self.url,
                data=payload,
                method="POST",
                headers={"Content-Type": content_type, "aeg-event-type": "Notification"},
            )
            try:
                # The URL was checked at construction: http(s) on loopback only.
                with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:  # noqa: S310
                    if 200 <= answer.status < 300:
                        return
            except (urllib.error.URLError, OSError) as exc:
                logger.info("webhook %s attempt %d failed: %s", self.url, attempt, exc)
            time.sleep(0.05 * attempt)
        logger.warning("webhook %s dropped event %s after %d attempts", self.url, event["id"], self._attempts)


class QueueSink(_Worker):
    """Puts each event, as JSON text, on an Azure Storage queue (created if missing)."""

    def __init__(self, connection_string: str, queue_name: str, schema: EventSchema) -> None:
        # Imported here: only users of this sink pay for the storage SDK.
        from azure.storage.queue import QueueClient

        self._client = QueueClient.from_connection_string(connection_string, queue_name)
        with contextlib.suppress(Exception):
            self._client.create_queue()  # ResourceExistsError when it is there already
        self._schema = schema
        super().__init__(f"arm-sim-queue-{queue_name}")

    def _deliver(self, event: Event) -> None:
        self._client.send_message(json.dumps(in_schema(event, self._schema)))

    def close(self) -> None:
        super().close()
        self._client.close()


class EventBus:
    """Duplicates and reorders (seeded) the store's events, then gives each to every sink."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        duplicate_rate: float = 0.0,
        reorder_window: int = 0,
        seed: int = 0,
        flush_after_s: float = 0.2,
    ) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        if reorder_window < 0:
            raise ValueError("reorder_window must not be negative")
        self._scheduler = scheduler
        self._duplicate_rate = duplicate_rate
        self._window = reorder_window
        self._seed = seed
        self._random = random.Random(seed)  # noqa: S311 (seeded, repeatable; not security)
        self._flush_after_s = flush_after_s
        self._lock = threading.Lock()
        self._sinks: list[Sink] = []
        self._held: list[Event] = []
        self._flush_pending = False

    def add(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def reset(self) -> None:
        """Forget held events and restart the random sequence; sinks stay."""
        with self._lock:
            self._held.clear()
            self._flush_pending = False
            self._random = random.Random(self._seed)  # noqa: S311 (seeded, repeatable)

    def publish(self, events: list[Event]) -> None:
        ready: list[Event] = []
        with self._lock:
            for event in events:
                copies = 2 if self._duplicate_rate and self._random.random() < self._duplicate_rate else 1
                for _ in range(copies):
                    if self._window <= 1:
                        ready.append(event)
                        continue
                    self._held.append(event)
                    while len(self._held) >= self._window:
                        ready.append(self._held.pop(self._random.randrange(len(self._held))))
            if self._held and not self._flush_pending:
                self._flush_pending = True
                self._scheduler.call_later(self._flush_after_s, self.flush)
        self._send(ready)

    def flush(self) -> None:
        """Release every held event, in random order (seeded)."""
        with self._lock:
            ready: list[Event] = []
            while self._held:
                ready.append(self._held.pop(self._random.randrange(len(self._held))))
            self._flush_pending = False
        self._send(ready)

    def wait_delivered(self, timeout_s: float) -> bool:
        """Release held events and wait until every sink has delivered; False on timeout."""
        self.flush()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            sinks = list(self._sinks)
        return all(sink.wait_empty(max(deadline - time.monotonic(), 0.0)) for sink in sinks)

    def close(self) -> None:
        """Stop the worker sinks (webhook, queue); in-process callbacks stay for a restart."""
        with self._lock:
            workers = [sink for sink in self._sinks if not isinstance(sink, CallbackSink)]
            self._sinks = [sink for sink in self._sinks if isinstance(sink, CallbackSink)]
        for sink in workers:
            sink.close()

    def _send(self, events: list[Event]) -> None:
        if not events:
            return
        with self._lock:
            sinks = list(self._sinks)
        for event in events:
            for sink in sinks:
                sink.send(event)
