"""Specification of the two schemas Event Grid delivers resource events in, through the Functions
binding: the worker decodes an event with ``specversion`` into a ``func.CloudEvent`` and any other
into a ``func.EventGridEvent`` (whatever the function's annotation says), and the function handles
both alike. The events are the simulator's, mapped to CloudEvents 1.0 as Event Grid maps them.
"""

from __future__ import annotations

import azure.functions as func
import pytest
from estate import Estate
from hosts import until, work_queue_empty

from function_app import event_grid_payload
from localazure.functions_host import HostPool
from localazure.host import event_grid_event
from remediation.events import parse_event
from remediation.model import RecordKind, Trigger
from sim.events import EventSchema, in_schema

STRIP = {"remediation.mode": "strip"}


@pytest.mark.parametrize("schema", list(EventSchema))
def test_an_event_in_either_schema_reaches_the_engine_as_the_same_trigger(
    estate: Estate, schema: EventSchema
) -> None:
    estate.create_set("web", tags=STRIP)
    (event,) = estate.events()

    delivered = event_grid_event(in_schema(event, schema))

    expected = func.CloudEvent if schema is EventSchema.CLOUD_EVENTS else func.EventGridEvent
    assert isinstance(delivered, expected)
    trigger = parse_event(event_grid_payload(delivered))
    assert isinstance(trigger, Trigger), trigger
    assert trigger.event_id == event["id"]
    assert trigger.resource_id.value.lower() == event["subject"].lower()
    assert trigger.operation == event["data"]["operationName"]
    assert trigger.schema == ("cloudevents" if schema is EventSchema.CLOUD_EVENTS else "eventgrid")


def test_a_cloudevents_delivery_to_a_host_process_remediates_the_set(estate: Estate) -> None:
    estate.create_set("web", tags=STRIP)
    estate.events()
    estate.scale("web", 2)
    events = [in_schema(event, EventSchema.CLOUD_EVENTS) for event in estate.events()]
    assert events and all(event["specversion"] == "1.0" for event in events)

    with HostPool(1, estate.environment) as pool:
        statuses = [pool.deliver(event) for event in events]
        until(lambda: all(estate.public_ips_of(vm) == [] for vm in estate.vms("web")), "no public IP")
        until(lambda: work_queue_empty(estate), "the work queue drained")

    assert statuses == [202] * len(events)
    assert len(estate.vms("web")) == 2
    records = estate.audit()
    assert not [r for r in records if r.kind is RecordKind.REJECTED]
    taken_in = {r.event_id for r in records if r.kind is RecordKind.RECEIVED}
    assert {event["id"] for event in events} <= taken_in


def test_an_event_grid_event_is_read_even_by_a_library_without_cloudevent(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that loads an older azure-functions library has no func.CloudEvent: Event Grid
    schema deliveries are read all the same (the schemas are told apart by specversion)."""
    estate.create_set("web", tags=STRIP)
    (event,) = estate.events()
    delivered = event_grid_event(event)
    monkeypatch.delattr(func, "CloudEvent")

    trigger = parse_event(event_grid_payload(delivered))

    assert isinstance(trigger, Trigger) and trigger.event_id == event["id"]
