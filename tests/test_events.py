"""Specification of the event validator: what is accepted, and the reason for each rejection."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from remediation.events import MAX_EVENT_BYTES, parse_event
from remediation.model import Rejection, Trigger

SUB = "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10"
SET_ID = f"/subscriptions/{SUB}/resourcegroups/rg1/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1"
SAMPLE = Path(__file__).resolve().parent / "fixtures" / "eventgrid" / "resource-write-success.eventgrid.json"


def write_event(
    resource_id: str = SET_ID, operation: str = "Microsoft.Compute/virtualMachineScaleSets/write"
) -> dict[str, Any]:
    """The published ResourceWriteSuccess sample, pointed at one of our resources."""
    event: dict[str, Any] = copy.deepcopy(json.loads(SAMPLE.read_text())[0])
    event["subject"] = resource_id
    event["topic"] = f"/subscriptions/{SUB}"
    event["data"].update(resourceUri=resource_id, operationName=operation, subscriptionId=SUB)
    return event


def test_the_published_sample_becomes_a_trigger_for_the_resource_it_names() -> None:
    trigger = parse_event(write_event())
    assert isinstance(trigger, Trigger)
    assert trigger.resource_id.name == "vmss1"
    assert trigger.resource_id.resource_group == "rg1"
    assert trigger.operation == "Microsoft.Compute/virtualMachineScaleSets/write"
    assert trigger.schema == "eventgrid"
    assert trigger.caller.app_id == "{ID}"
    assert str(trigger.caller) == "{full-name}; appid {ID}; oid {ID}"
    assert trigger.event_time is not None and trigger.event_time.year == 2018


def test_resource_ids_compare_without_regard_to_case() -> None:
    lower = parse_event(write_event(SET_ID))
    upper = parse_event(write_event(SET_ID.replace("resourcegroups", "resourceGroups").upper()))
    assert isinstance(lower, Trigger) and isinstance(upper, Trigger)
    assert lower.resource_id == upper.resource_id
    assert hash(lower.resource_id) == hash(upper.resource_id)


def test_cloudevents_schema_is_accepted() -> None:
    event = write_event()
    cloud = {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event["data"],
    }
    trigger = parse_event(cloud)
    assert isinstance(trigger, Trigger) and trigger.schema == "cloudevents"


def test_claims_may_be_empty() -> None:
    event = write_event()
    event["data"]["claims"] = {}
    trigger = parse_event(event)
    assert isinstance(trigger, Trigger) and str(trigger.caller) == "unknown"


def _without(path: str) -> dict[str, Any]:
    event = write_event()
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    del target[last]
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("just a string", "event is not a JSON object (got str)"),
        ([1, 2], "event is not a JSON object (got list)"),
        (_without("id"), "event has no 'id'"),
        (_without("eventType"), "event has no 'eventType'"),
        (_without("data.resourceUri"), "event has no 'data.resourceUri'"),
        (_without("data.operationName"), "event has no 'data.operationName'"),
        ({**write_event(), "data": "not an object"}, "event 'data' is not a JSON object"),
        ({**write_event(), "eventType": "Microsoft.Resources.ResourceDeleteSuccess"}, "is not handled"),
        (
            write_event(operation="Microsoft.Storage/storageAccounts/write"),
            "operation 'Microsoft.Storage/storageAccounts/write' is not handled",
        ),
        (
            write_event(
                "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/x"
            ),
            "is not a GUID",
        ),
        (write_event("vmss1"), "is not of the form"),
        (write_event(SET_ID.replace("vmss1", "vm..%2f")), "is not a valid name"),
        (write_event(operation="Microsoft.Network/networkInterfaces/write"), "but the operation"),
        ({**write_event(), "padding": "x" * MAX_EVENT_BYTES}, "over the"),
    ],
    ids=[
        "string",
        "array",
        "no-id",
        "no-type",
        "no-resourceUri",
        "no-operation",
        "data-not-object",
        "delete-event",
        "unhandled-operation",
        "bad-subscription",
        "not-an-id",
        "bad-segment",
        "type-mismatch",
        "oversized",
    ],
)
def test_each_malformed_event_is_rejected_with_its_reason(event: object, reason: str) -> None:
    rejection = parse_event(event)
    assert isinstance(rejection, Rejection)
    assert reason in rejection.reason
    assert rejection.event_id


def test_a_failed_operation_is_not_acted_on() -> None:
    event = write_event()
    event["data"]["status"] = "Failed"
    rejection = parse_event(event)
    assert isinstance(rejection, Rejection) and "not 'Succeeded'" in rejection.reason
