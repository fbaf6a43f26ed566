"""What a test observes of the simulator: event sinks, the request log, request hooks, counters.

Event sinks and request hooks survive `reset()`. Mixed into `ArmSimulator`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.delivery import CallbackSink, EventBus, QueueSink, WebhookSink
from sim.events import EventSchema
from sim.hooks import RequestHook, RequestHooks
from sim.request_log import WRITE_METHODS, RequestRecord, counters
from sim.writes import WritableStore


class Observation:
    """Mixed into ArmSimulator, which provides the store, the event bus and the request hooks."""

    _store: WritableStore
    _bus: EventBus
    _hooks: RequestHooks

    def add_event_sink(
        self,
        callback: Callable[[dict[str, Any]], None],
        *,
        schema: EventSchema | str = EventSchema.EVENT_GRID,
    ) -> None:
        """`callback(event)` for every emitted event, from any thread, in the given schema."""
        self._bus.add(CallbackSink(callback, EventSchema(schema)))

    def add_webhook_sink(
        self, url: str, *, schema: EventSchema | str = EventSchema.EVENT_GRID, attempts: int = 3
    ) -> None:
        """POST every event (a JSON array of one) to a loopback URL, from a delivery thread."""
        self._bus.add(WebhookSink(url, EventSchema(schema), attempts=attempts))

    def add_queue_sink(
        self, connection_string: str, queue_name: str, *, schema: EventSchema | str = EventSchema.EVENT_GRID
    ) -> None:
        """Put every event on an Azure Storage queue (Azurite locally), one JSON message each."""
        self._bus.add(QueueSink(connection_string, queue_name, EventSchema(schema)))

    def requests(self) -> list[RequestRecord]:
        return self._store.records()

    def add_request_hook(self, hook: RequestHook) -> None:
        """Call `hook(record)` for every request recorded from now on (`autoscale_to`'s PATCH too).

        It runs in the request's own thread after the request's work is done and its record stored,
        and before its answer is written (before any injected delay or hold, and before an injected
        drop): a hook that blocks holds that answer back while the client waits. An exception from a
        hook is logged and swallowed. Hooks run in the order added and survive `reset()`.
        """
        self._hooks.add(hook)

    def remove_request_hook(self, hook: RequestHook) -> None:
        """Stop calling `hook` (one registration of it); nothing happens if it is not registered."""
        self._hooks.remove(hook)

    def counters(self) -> dict[str, Any]:
        """Request counts by method, resource type, operation, status and principal.

        The same numbers are served at `GET {endpoint}/_sim/counters` (and the log at `/_sim/requests`).
        """
        return counters(self._store.records())

    def write_count(self, resource_type: str | None = None) -> int:
        """PUT/PATCH/POST/DELETE requests answered 2xx, optionally of one resource type.

        Operation polls and Resource Graph queries (POSTs that only read) are not writes.
        """
        wanted = resource_type.lower() if resource_type else None
        return len(
            [
                record
                for record in self._store.records()
                if record.method in WRITE_METHODS
                and 200 <= record.status < 300
                and "/locations/" not in record.resource_type.lower()
                and not record.operation.endswith("/read")
                and (wanted is None or record.resource_type.lower() == wanted)
            ]
        )
