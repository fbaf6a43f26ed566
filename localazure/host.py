"""What the Azure Functions host does for us, for the demo and the tests (there is no host here).

The host indexes ``function_app.app`` once and calls the user functions with binding objects
built from the delivery. This module does the same with the real ``azure.functions`` types, so
what runs is exactly the deployed function, triggered the way Azure triggers it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import azure.functions as func


@functools.cache
def indexed_functions() -> dict[str, Any]:
    """Index ``function_app.app`` once, as the host does (indexing twice raises on the names)."""
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def user_function(name: str) -> Any:
    return indexed_functions()[name].get_user_function()


def event_grid_event(event: Mapping[str, Any]) -> func.EventGridEvent:
    """The binding object for one delivered Event Grid event (whatever its fields hold)."""
    raw_time = event.get("eventTime")
    event_time = (
        datetime.fromisoformat(raw_time.replace("Z", "+00:00")) if isinstance(raw_time, str) else None
    )
    return func.EventGridEvent(
        id=event.get("id"),  # type: ignore[arg-type]  # the host passes whatever JSON came
        data=event.get("data"),  # type: ignore[arg-type]
        topic=event.get("topic"),  # type: ignore[arg-type]
        subject=event.get("subject"),  # type: ignore[arg-type]
        event_type=event.get("eventType"),  # type: ignore[arg-type]
        event_time=event_time,
        data_version=event.get("dataVersion"),  # type: ignore[arg-type]
    )


def deliver_event_grid(event: Mapping[str, Any], function: str = "on_resource_event") -> None:
    """Deliver one event to an Event Grid triggered function; raises what the function raises."""
    user_function(function)(event_grid_event(event))
