"""Event Grid and CloudEvents resource events (writes and the actions that re-create instances)
-> a validated Trigger, or a Rejection with its reason.

A pure module: no I/O. Whatever arrives (a delivery from Event Grid, a replayed archive entry, a
line of a file someone edited by hand) is checked here before anything else looks at it, and
every way it can be wrong has its own reason, which the audit log records. Nothing in the
payload is trusted as state: the handler re-reads ARM (DESIGN.md decision 1); the event only
names a resource to look at.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from remediation.model import Caller, QueuedEvent, Recheck, Rejection, Trigger
from remediation.resource_ids import SCALE_SET_TYPE, InvalidResourceId, ResourceId

T = TypeVar("T")

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"
HANDLED_EVENT_TYPES = (WRITE_SUCCESS, ACTION_SUCCESS)

# The writes that can give a restricted set a public IP.
HANDLED_WRITES = frozenset(
    op.lower()
    for op in (
        "Microsoft.Compute/virtualMachineScaleSets/write",
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write",
        "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/publicIPAddresses/write",
    )
)
# The POST actions that create or re-create instances, or bring the set's model (public IP
# configuration included) to them: ARM raises ResourceActionSuccess for these, not a write event.
# Names as ARM derives them from the REST paths (learn.microsoft.com/rest/api/compute:
# POST .../scaleOut, .../approveRollingUpgrade, .../reimage, ...); scaleOut grows a set as a
# capacity write does; approveRollingUpgrade lets a deferred rolling upgrade re-create instances.
HANDLED_ACTIONS = frozenset(
    op.lower()
    for op in (
        "Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action",
        "Microsoft.Compute/virtualMachineScaleSets/osRollingUpgrade/action",
        "Microsoft.Compute/virtualMachineScaleSets/reimage/action",
        "Microsoft.Compute/virtualMachineScaleSets/reimageAll/action",
        "Microsoft.Compute/virtualMachineScaleSets/redeploy/action",
        "Microsoft.Compute/virtualMachineScaleSets/scaleOut/action",
        "Microsoft.Compute/virtualMachineScaleSets/approveRollingUpgrade/action",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/reimage/action",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/reimageAll/action",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/redeploy/action",
        "Microsoft.Compute/virtualMachines/reimage/action",
        "Microsoft.Compute/virtualMachines/redeploy/action",
    )
)
# Event Grid's filter on data.operationName lists these (at most 25 values per filter).
HANDLED_OPERATIONS = HANDLED_WRITES | HANDLED_ACTIONS


def operation_resource_type(operation: str) -> str:
    """The resource type an operation is on: `{type}/write`, `{type}/{name}/action`."""
    verb_segments = 2 if operation.lower().endswith("/action") else 1
    return operation.rsplit("/", verb_segments)[0]


# Event Grid caps an event at 1 MB; resource events are a few KB. Anything far larger is not one.
MAX_EVENT_BYTES = 64 * 1024

_APPID_CLAIMS = ("appid", "azp")
_NAME_CLAIMS = ("name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn")
_OID_CLAIMS = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")


def _claim(claims: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def caller_from_claims(claims: object) -> Caller:
    if not isinstance(claims, Mapping):
        return Caller()
    return Caller(
        app_id=_claim(claims, _APPID_CLAIMS),
        name=_claim(claims, _NAME_CLAIMS),
        object_id=_claim(claims, _OID_CLAIMS),
        user=str(claims.get("idtyp", "")).lower() == "user" or "upn" in claims or "scp" in claims,
    )


def _event_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def event_id_of(event: object) -> str:
    """The event's id if it has a usable one, else a new id so the rejection can still be recorded."""
    if isinstance(event, Mapping):
        value = event.get("id")
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return f"unidentified-{uuid.uuid4()}"


def parse_event(event: object) -> Trigger | Rejection:
    """Validate one event in Event Grid schema or CloudEvents 1.0 schema."""
    event_id = event_id_of(event)
    if not isinstance(event, Mapping):
        return Rejection(event_id, f"event is not a JSON object (got {type(event).__name__})")
    try:
        size = len(json.dumps(event, default=str))
    except (TypeError, ValueError) as error:
        return Rejection(event_id, f"event is not serialisable as JSON: {error}")
    if size > MAX_EVENT_BYTES:
        return Rejection(event_id, f"event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")
    if not isinstance(event.get("id"), str) or not event.get("id"):
        return Rejection(event_id, "event has no 'id'")

    schema = "cloudevents" if "specversion" in event else "eventgrid"
    event_type = event.get("type" if schema == "cloudevents" else "eventType")
    if not isinstance(event_type, str) or not event_type:
        field = "type" if schema == "cloudevents" else "eventType"
        return Rejection(event_id, f"event has no '{field}'")
    if event_type not in HANDLED_EVENT_TYPES:
        return Rejection(
            event_id,
            f"event type {event_type!r} is not handled (only {' and '.join(HANDLED_EVENT_TYPES)})",
            event_type,
        )

    data = event.get("data")
    if not isinstance(data, Mapping):
        return Rejection(event_id, "event 'data' is not a JSON object", event_type)
    event_time = _event_time(event.get("time" if schema == "cloudevents" else "eventTime"))
    return _trigger_from_data(event_id, event_type, schema, event_time, data)


def _trigger_from_data(
    event_id: str, event_type: str, schema: str, event_time: datetime | None, data: Mapping[str, Any]
) -> Trigger | Rejection:
    """The resource-event part of the check: operation, status and the resource it names."""
    operation = data.get("operationName")
    if not isinstance(operation, str) or not operation:
        return Rejection(event_id, "event has no 'data.operationName'", event_type)
    if operation.lower() not in HANDLED_OPERATIONS:
        return Rejection(event_id, f"operation {operation!r} is not handled", event_type)
    expected_event = ACTION_SUCCESS if operation.lower() in HANDLED_ACTIONS else WRITE_SUCCESS
    if event_type != expected_event:
        reason = f"operation {operation!r} comes in {expected_event} events, not {event_type}"
        return Rejection(event_id, reason, event_type)
    status = data.get("status")
    if isinstance(status, str) and status.lower() != "succeeded":
        return Rejection(event_id, f"operation status is {status!r}, not 'Succeeded'", event_type)
    uri = data.get("resourceUri")
    if not isinstance(uri, str) or not uri:
        return Rejection(event_id, "event has no 'data.resourceUri'", event_type)
    try:
        resource_id = ResourceId.parse(uri)
    except InvalidResourceId as error:
        return Rejection(event_id, f"data.resourceUri: {error}", event_type)
    expected_type = operation_resource_type(operation)
    if not resource_id.is_type(expected_type):
        return Rejection(
            event_id,
            f"data.resourceUri is a {resource_id.type}, "
            f"but the operation {operation!r} is on {expected_type}",
            event_type,
        )
    subscription = data.get("subscriptionId")
    if (
        isinstance(subscription, str)
        and subscription
        and subscription.lower() != resource_id.subscription.lower()
    ):
        return Rejection(
            event_id,
            f"data.subscriptionId {subscription!r} differs from the resource's {resource_id.subscription!r}",
            event_type,
        )

    correlation = data.get("correlationId")
    return Trigger(
        event_id=event_id,
        event_type=event_type,
        operation=operation,
        resource_id=resource_id,
        subscription_id=resource_id.subscription,
        correlation_id=correlation if isinstance(correlation, str) else "",
        event_time=event_time,
        caller=caller_from_claims(data.get("claims")),
        schema=schema,
    )


MAX_RECHECK_ATTEMPT = 100
MAX_FOLLOW_UPS = 1000
MAX_WATCH_LOOKS = 10_000


def parse_work(body: object) -> Recheck | QueuedEvent | Rejection:
    """A work-queue message: a look at a set (``{"scale_set": "<id>", "attempt": n, ...}``) or an
    event to run through intake (``{"event_id": "...", "event": {...} | "archive": "<blob>"}``)."""
    message_id = f"work-{uuid.uuid4()}"
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection(message_id, "work message is not UTF-8 text")
    if not isinstance(body, str) or len(body) > MAX_EVENT_BYTES:
        return Rejection(message_id, "work message is not text of at most 64 KiB")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        return Rejection(message_id, f"work message is not JSON: {error.msg}")
    if not isinstance(document, Mapping):
        return Rejection(message_id, "work message is not a JSON object")
    flags = _fields(document, ("if_marked", "dry_run"), bool, False)
    texts = _fields(document, ("reason", "origin", "replay_of", "note", "archive"), str, "")
    for wrong in (flags, texts):
        if isinstance(wrong, str):
            return Rejection(message_id, f"work message {wrong}")
    assert isinstance(flags, dict) and isinstance(texts, dict)
    if "scale_set" not in document:
        return _queued_event(document, message_id, texts, flags["dry_run"])
    try:
        set_id = ResourceId.parse(document.get("scale_set"), expected_type=SCALE_SET_TYPE)
    except InvalidResourceId as error:  # the message names the segment, or the type it is
        return Rejection(message_id, f"work message scale_set: {error}")
    numbers: dict[str, int] = {}
    for name, most in (
        ("attempt", MAX_RECHECK_ATTEMPT),
        ("follow_up", MAX_FOLLOW_UPS),
        ("watch", MAX_WATCH_LOOKS),
    ):
        number = document.get(name, 0)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= most:
            return Rejection(message_id, f"work message {name} {number!r} is not 0..{most}")
        numbers[name] = number
    return Recheck(
        set_id,
        numbers["attempt"],
        texts["reason"],
        flags["if_marked"],
        texts["origin"],
        flags["dry_run"],
        numbers["follow_up"],
        numbers["watch"],
    )


def _fields(
    document: Mapping[str, Any], names: tuple[str, ...], kind: type[T], default: T
) -> dict[str, T] | str:
    """The named fields, each of ``kind`` (``default`` when absent), or what is wrong."""
    found: dict[str, T] = {}
    for name in names:
        value = document.get(name, default)
        if not isinstance(value, kind):
            return f"{name} {value!r} is not {'a boolean' if kind is bool else 'text'}"
        found[name] = value
    return found


def _queued_event(
    document: Mapping[str, Any], message_id: str, texts: Mapping[str, str], dry_run: bool
) -> QueuedEvent | Rejection:
    event_id = document.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        return Rejection(message_id, "work message has neither a scale_set nor an event_id (text, 1-200)")
    if ("event" in document) == bool(texts["archive"]):
        return Rejection(event_id, "work message for an event needs exactly one of event and archive")
    return QueuedEvent(
        event_id,
        document.get("event"),
        texts["archive"],
        texts["replay_of"],
        texts["note"],
        dry_run,
    )


def events_from_text(text: str, source: str) -> list[object]:
    """Events from a file: one JSON event, a JSON array of them (an Event Grid delivery), or JSON lines."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        events: list[object] = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{source} line {number}: not JSON: {error.msg}") from None
        return events
    return list(document) if isinstance(document, list) else [document]
