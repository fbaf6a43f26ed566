"""Event Grid resource events, shaped like the published samples.

The remediator is driven by `Microsoft.Resources.ResourceWriteSuccess` events
from a subscription system topic. The simulator emits the same Event Grid schema
(see shared/fixtures/eventgrid) when a write's operation completes, carrying who
asked (claims from the caller's token) and how (httpRequest, only on updates and
deletes, as in real events), so handlers can be tested against realistic input.
A POST action (manualUpgrade, reimage, ...) raises `ResourceActionSuccess`, its
operation `{type}/{action}/action`, not a write event. The same events can be delivered in
the CloudEvents 1.0 schema, which Event Grid offers per subscription.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sim.ids import event_casing

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"

# ARM presents some token claims under their long URI names (see the write fixture).
_CLAIM_URIS = {
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "scp": "http://schemas.microsoft.com/identity/claims/scope",
}


@dataclass(frozen=True)
class RequestContext:
    """What an event needs to know about the request that caused a write."""

    method: str
    url: str
    client_request_id: str
    correlation_id: str
    claims: dict[str, Any] = field(default_factory=dict)
    client_ip: str = "127.0.0.1"
    # An injected fault: the write is accepted but its operation ends Failed.
    fail_operation: bool = False

    @classmethod
    def platform(cls, correlation_id: str) -> RequestContext:
        """The context of writes the platform makes itself (scale-out children): no caller claims."""
        return cls(method="", url="", client_request_id="", correlation_id=correlation_id)


def claims_from_authorization(header: str | None) -> dict[str, Any]:
    """Claims of a bearer JWT, without checking its signature; `{}` for opaque tokens."""
    if not header:
        return {}
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return {}
    parts = token.strip().split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {_CLAIM_URIS.get(str(name), str(name)): value for name, value in decoded.items()}


def utc_now_iso() -> str:
    """ARM's timestamp format: ISO 8601, UTC, with a `Z`."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def resource_event(
    *,
    deleted: bool,
    resource_id: str,
    resource_type: str,
    subscription_id: str,
    tenant_id: str,
    context: RequestContext,
    include_http_request: bool,
    action: str = "",
) -> dict[str, Any]:
    """One Event Grid event for a completed write, delete or POST `action` of `resource_id`."""
    # Real write events spell `resourcegroups` in lower case, delete events keep the casing.
    subject = resource_id if deleted else event_casing(resource_id)
    if action:
        operation, event_type = f"{resource_type}/{action}/action", ACTION_SUCCESS
    elif deleted:
        operation, event_type = f"{resource_type}/delete", DELETE_SUCCESS
    else:
        operation, event_type = f"{resource_type}/write", WRITE_SUCCESS
    data: dict[str, Any] = {
        "authorization": {"scope": subject, "action": operation, "evidence": {"role": "Subscription Admin"}},
        "claims": dict(context.claims),
        "correlationId": context.correlation_id,
    }
    if include_http_request:
        data["httpRequest"] = {
            "clientRequestId": context.client_request_id,
            "clientIpAddress": context.client_ip,
            "method": context.method,
            "url": context.url,
        }
    data.update(
        {
            "resourceProvider": resource_type.split("/", 1)[0],
            "resourceUri": subject,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": subscription_id,
            "tenantId": tenant_id,
        }
    )
    return {
        "subject": subject,
        "eventType": event_type,
        "eventTime": utc_now_iso(),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": f"/subscriptions/{subscription_id}",
    }


class EventSchema(StrEnum):
    """The two schemas Event Grid delivers system-topic events in."""

    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


def to_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid event in CloudEvents 1.0, mapped the way Event Grid maps system events.

    `source` is the topic, `type` the event type, `time` the event time; `data` is unchanged.
    """
    return {
        "specversion": "1.0",
        "type": event["eventType"],
        "source": event["topic"],
        "id": event["id"],
        "time": event["eventTime"],
        "subject": event["subject"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


def in_schema(event: dict[str, Any], schema: EventSchema) -> dict[str, Any]:
    return to_cloud_event(event) if schema is EventSchema.CLOUD_EVENTS else event
