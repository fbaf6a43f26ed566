"""What the Azure Functions host does for us, for the demo and the tests (there is no host here).

The host indexes ``function_app.app`` once and calls the user functions with binding objects
built from the delivery. This module does the same with the real ``azure.functions`` types, so
what runs is exactly the deployed function, triggered the way Azure triggers it.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import azure.functions as func

log = logging.getLogger(__name__)


_index_lock = threading.Lock()


@functools.cache
def _index() -> dict[str, Any]:
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def indexed_functions() -> dict[str, Any]:
    """Index ``function_app.app`` once, as the host does (indexing twice raises on the names)."""
    with _index_lock:
        return _index()


def user_function(name: str) -> Any:
    return indexed_functions()[name].get_user_function()


def event_grid_event(event: Mapping[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """The binding object for one delivered event, decoded by the worker's own converter.

    The Python worker decodes an Event Grid trigger's JSON with ``EventGridEventInConverter``: a
    ``func.CloudEvent`` when the event has ``specversion`` (CloudEvents 1.0 schema), else a
    ``func.EventGridEvent``, whatever the function's annotation says. Using the converter itself
    keeps this host delivering both schemas exactly as Azure's does.
    """
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    decoded = EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata={})
    if not isinstance(decoded, func.EventGridEvent | func.CloudEvent):
        raise TypeError(f"the converter returned {type(decoded).__name__}")
    return decoded


def deliver_event_grid(event: Mapping[str, Any], function: str = "on_resource_event") -> None:
    """Deliver one event to an Event Grid triggered function; raises what the function raises."""
    user_function(function)(event_grid_event(event))


def queue_message(body: str, message_id: str = "", dequeue_count: int = 1) -> func.QueueMessage:
    """The binding object the host's queue converter makes (the one with ``dequeue_count``)."""
    from azure.functions.queue import QueueMessage

    return QueueMessage(id=message_id or None, body=body, dequeue_count=dequeue_count)  # type: ignore[no-untyped-call]


def pump_queue(
    connection_string: str,
    queue_name: str,
    function: str,
    max_messages: int = 100,
    *,
    retry_after_s: int = 30,
    raise_failures: bool = False,
    unsettled: list[Any] | None = None,
) -> int:
    """Deliver one batch of the queue's visible messages to ``function``, as one poll of the
    host's queue listener (``localazure.queues`` plays the whole contract; this is the step a
    test takes by hand).

    A message is deleted when the function returns; when it raises, it is made visible again
    after ``retry_after_s`` (host.json's visibilityTimeout), and with ``raise_failures`` the first
    error is raised once the batch is done (a test sees it, as the host's log would show it). A
    failed message that cannot be made visible again (storage down) stays hidden for the rest of
    its receive visibility (30 s; the host's is 10 min); it is added to ``unsettled``, so a test
    can play that period's end (``settle``) instead of waiting for it.
    Returns how many were delivered successfully. Bounded by ``max_messages``.
    """
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    queue = QueueClient.from_connection_string(
        connection_string,
        queue_name,
        message_encode_policy=TextBase64EncodePolicy(),  # an update sends the content again
        message_decode_policy=TextBase64DecodePolicy(),
    )
    delivered = 0
    failure: Exception | None = None
    try:
        with queue:
            # One batch, as one poll of the host's listener: the pager would go on receiving
            # messages queued meanwhile (a re-check due now), which the next poll is for.
            pages = queue.receive_messages(messages_per_page=32, visibility_timeout=30).by_page()
            batch: list[Any] = list(next(pages, []))
            for message in batch[:max_messages]:
                try:
                    user_function(function)(queue_message(message.content, message.id, message.dequeue_count))
                except Exception as error:  # the host makes a failed message visible again
                    log.warning("queue message %s failed; it will be retried", message.id, exc_info=True)
                    failure = failure or error
                    try:
                        queue.update_message(message, visibility_timeout=retry_after_s)
                    except AzureError:
                        if unsettled is not None:
                            unsettled.append(message)
                    continue
                queue.delete_message(message)
                delivered += 1
    except ResourceNotFoundError:
        return 0  # nothing was ever queued
    if failure is not None and raise_failures:
        raise failure
    return delivered


def settle(connection_string: str, queue_name: str, messages: list[Any]) -> None:
    """End the receive visibility of ``messages`` now (see ``pump_queue``'s ``unsettled``)."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    with QueueClient.from_connection_string(
        connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        for message in messages:
            queue.update_message(message, visibility_timeout=0)
    messages.clear()
