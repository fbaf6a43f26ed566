"""What Event Grid refuses in a system topic or event subscription body, and the documents it serves.

Pure functions, no store and no lock: sim/event_grid.py calls them with what it holds. The refusals
and their words, and where each comes from:

- a second system topic for a source: 400 `InvalidRequest` "There is an existing tracked system
  topic for the given source {source}. Only one system topic is allowed per source." (quoted from
  real answers in MicrosoftDocs/azure-docs#97986 and TaoYang-Cloud/azure.policy.monitor#12);
- a topic PUT that changes its source: 400 `InvalidRequest` "System topic source cannot be
  modified." (the message quoted in Azure/azure-quickstart-templates#13688; its code is not, so
  `InvalidRequest` as the other Event Grid refusals);
- advanced filters: at most 25 filters and 25 values across all filters of one event subscription,
  each string value at most 512 characters (learn.microsoft.com/azure/event-grid/event-filtering,
  "Limitations"); Event Grid answers such refusals 400 `InvalidRequest` (the old five-value limit's
  answer, "The maximum number of values allowed on an advanced filter is 5.", quoted in
  cloud-custodian/cloud-custodian#4669); the messages here are the simulator's, in that form;
- an event subscription's name: 3 to 64 letters, digits and hyphens (the 2024-06-01-preview spec's
  parameter description, Azure/azure-rest-api-specs#28631, and the portal's rule quoted in
  triggermesh/triggermesh#270); Event Grid's code for it is not published: `InvalidRequest`;
- a `Microsoft.Resources.Subscriptions` topic whose source is not its own subscription, a missing
  source or topic type, a destination, filter or retry policy out of the REST API's ranges
  (2025-02-15 EventGrid.json), an `AzureFunction` destination that is no function's id: Event
  Grid's words are not published; 400 `InvalidRequest`, worded by the simulator.

Documents are shaped as the 2025-02-15 examples (SystemTopics_Get.json,
SystemTopics_ListBySubscription.json, SystemTopicEventSubscriptions_Get.json): `properties` with
`provisioningState`, a topic's `source`, `topicType` and `metricResourceId` (a GUID), an event
subscription's `topic`, `destination`, `filter`, `eventDeliverySchema` (default EventGridSchema)
and `retryPolicy` (default 30 attempts, 1440 minutes, as the example shows them).
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from sim.documents import JsonDict
from sim.errors import ArmError

TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/systemTopics/eventSubscriptions"
SUBSCRIPTION_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"
MAX_FILTERS = 25
MAX_FILTER_VALUES = 25
MAX_STRING_VALUE = 512
DEFAULT_RETRY = {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
SCHEMAS = ("EventGridSchema", "CustomInputSchema", "CloudEventSchemaV1_0")
# Defaults of an AzureFunction destination (EventGrid.json: AzureFunctionEventSubscriptionDestination).
FUNCTION_DEFAULTS = {"maxEventsPerBatch": 1, "preferredBatchSizeInKilobytes": 64}

# Served as sent when sent (EventGrid.json: EventSubscriptionProperties).
_KEPT = (
    "labels",
    "expirationTimeUtc",
    "deadLetterDestination",
    "deadLetterWithResourceIdentity",
    "deliveryWithResourceIdentity",
)
_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")
_FUNCTION_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+/functions/[^/]+$",
    re.IGNORECASE,
)
# Advanced filter operators by what they compare with: a list of values, one value, or nothing.
_LIST_OPERATORS = {
    op.lower(): op
    for op in (
        "StringIn",
        "StringNotIn",
        "StringBeginsWith",
        "StringNotBeginsWith",
        "StringEndsWith",
        "StringNotEndsWith",
        "StringContains",
        "StringNotContains",
        "NumberIn",
        "NumberNotIn",
        "NumberInRange",
        "NumberNotInRange",
    )
}
_VALUE_OPERATORS = {
    op.lower(): op
    for op in (
        "NumberGreaterThan",
        "NumberGreaterThanOrEquals",
        "NumberLessThan",
        "NumberLessThanOrEquals",
        "BoolEquals",
    )
}
_NULL_OPERATORS = {op.lower(): op for op in ("IsNullOrUndefined", "IsNotNull")}


def invalid(message: str) -> ArmError:
    """Event Grid's 400 for a request it refuses (see the module docstring for which are quoted)."""
    return ArmError(400, "InvalidRequest", message)


def properties_of(body: JsonDict) -> JsonDict:
    props = body.get("properties")
    if not isinstance(props, dict):
        raise invalid("The request must have a 'properties' object.")
    return props


# ---------------------------------------------------------------------- system topics


def topic_document(
    body: JsonDict, current: JsonDict | None, *, topic_id: str, name: str, subscription: str, tenant: str
) -> JsonDict:
    """The topic a PUT makes (its provisioningState set by the caller); raises Event Grid's refusals."""
    props = properties_of(body)
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    source, topic_type = props.get("source"), props.get("topicType")
    if not isinstance(source, str) or not source:
        raise invalid("The system topic's source is required.")
    if not isinstance(topic_type, str) or not topic_type:
        raise invalid("The system topic's topicType is required.")
    own = f"/subscriptions/{subscription}"
    if topic_type.lower() == SUBSCRIPTION_TOPIC_TYPE.lower() and source.rstrip("/").lower() != own.lower():
        raise invalid(
            f"The source '{source}' of a {SUBSCRIPTION_TOPIC_TYPE} system topic must be its own "
            f"subscription '{own}'."
        )
    if current is not None and str(current["properties"]["source"]).lower() != source.lower():
        raise invalid("System topic source cannot be modified.")
    metric = current["properties"]["metricResourceId"] if current is not None else str(uuid.uuid4())
    doc: JsonDict = {
        "properties": {
            "provisioningState": "Succeeded",
            "source": source,
            "topicType": topic_type,
            "metricResourceId": metric,
        },
        "location": location,
        "tags": copy.deepcopy(body.get("tags")),
        "id": topic_id,
        "name": name,
        "type": TOPIC_TYPE,
    }
    identity = body.get("identity")
    if isinstance(identity, dict):
        doc["identity"] = _identity(identity, current, tenant)
    return doc


def _identity(identity: JsonDict, current: JsonDict | None, tenant: str) -> JsonDict:
    """The identity as sent; a system-assigned one gains its principal and tenant, as ARM adds them."""
    served = copy.deepcopy(identity)
    if "systemassigned" in str(identity.get("type", "")).lower():
        before = current.get("identity") if current is not None else None
        kept = before.get("principalId") if isinstance(before, dict) else None
        served["principalId"] = kept or str(uuid.uuid4())
        served["tenantId"] = tenant
    return served


def duplicate_source(source: str) -> ArmError:
    return invalid(
        f"There is an existing tracked system topic for the given source {source}. "
        "Only one system topic is allowed per source."
    )


# ---------------------------------------------------------------------- event subscriptions


def subscription_document(sub_id: str, name: str, topic: JsonDict, body: JsonDict) -> JsonDict:
    """The event subscription a PUT makes under `topic`; raises Event Grid's refusals."""
    if not _NAME.match(name):
        raise invalid(
            f"The event subscription name '{name}' is invalid: event subscription names must be "
            "between 3 and 64 characters in length and use letters, digits and hyphens only."
        )
    props = properties_of(body)
    schema = props.get("eventDeliverySchema") or "EventGridSchema"
    if schema not in SCHEMAS:
        raise invalid(f"The eventDeliverySchema '{schema}' is not one of {', '.join(SCHEMAS)}.")
    served: JsonDict = {
        "topic": topic["id"],
        "provisioningState": "Succeeded",
        "destination": _destination(props.get("destination")),
        "filter": _filter(props.get("filter")),
        "eventDeliverySchema": schema,
        "retryPolicy": _retry_policy(props.get("retryPolicy")),
    }
    for kept in _KEPT:
        if props.get(kept) is not None:
            served[kept] = copy.deepcopy(props[kept])
    return {"properties": served, "id": sub_id, "name": name, "type": SUBSCRIPTION_TYPE}


def _destination(destination: Any) -> JsonDict:
    if not isinstance(destination, dict) or not isinstance(destination.get("endpointType"), str):
        raise invalid("The event subscription's destination with its endpointType is required.")
    served = copy.deepcopy(destination)
    props = served.setdefault("properties", {})
    if not isinstance(props, dict):
        raise invalid("The destination's properties must be an object.")
    if served["endpointType"].lower() != "azurefunction":
        return served
    resource_id = props.get("resourceId")
    if not isinstance(resource_id, str) or not _FUNCTION_ID.match(resource_id):
        raise invalid(
            f"The AzureFunction destination's resourceId '{resource_id}' is not a function's id "
            "(/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/{site}/functions/{name})."
        )
    for field, default in FUNCTION_DEFAULTS.items():
        props.setdefault(field, default)
    _in_range(props, "maxEventsPerBatch", 1, 5000)
    _in_range(props, "preferredBatchSizeInKilobytes", 1, 1024)
    return served


def _retry_policy(policy: Any) -> JsonDict:
    if policy is None:
        return dict(DEFAULT_RETRY)
    if not isinstance(policy, dict):
        raise invalid("The retryPolicy must be an object.")
    served = {**DEFAULT_RETRY, **copy.deepcopy(policy)}
    _in_range(served, "maxDeliveryAttempts", 1, 30)
    _in_range(served, "eventTimeToLiveInMinutes", 1, 1440)
    return served


def _in_range(props: JsonDict, field: str, low: int, high: int) -> None:
    value = props.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"The value '{value}' of '{field}' must be an integer from {low} to {high}.")


def _filter(given: Any) -> JsonDict:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise invalid("The event subscription's filter must be an object.")
    served: JsonDict = {"subjectBeginsWith": "", "subjectEndsWith": "", **copy.deepcopy(given)}
    served.setdefault("isSubjectCaseSensitive", False)
    advanced = served.get("advancedFilters")
    if advanced is None:
        return served
    if not isinstance(advanced, list):
        raise invalid("The filter's advancedFilters must be a list.")
    if len(advanced) > MAX_FILTERS:
        raise invalid(
            f"The number of advanced filters {len(advanced)} exceeds the maximum allowed: "
            f"{MAX_FILTERS} advanced filters per event subscription."
        )
    counted = sum(_advanced_filter(position, each) for position, each in enumerate(advanced))
    if counted > MAX_FILTER_VALUES:
        raise invalid(
            f"The total number of values {counted} across all the advanced filters exceeds the maximum "
            f"allowed: {MAX_FILTER_VALUES} filter values per event subscription."
        )
    return served


def _advanced_filter(position: int, advanced: Any) -> int:
    """Check one advanced filter; returns how many values it counts toward the limit of 25."""
    where = f"advancedFilters[{position}]"
    if not isinstance(advanced, dict):
        raise invalid(f"{where} must be an object.")
    operator = str(advanced.get("operatorType", ""))
    if not isinstance(advanced.get("key"), str) or not advanced["key"]:
        raise invalid(f"{where}: the key is required.")
    if operator.lower() in _NULL_OPERATORS:
        return 0
    if operator.lower() in _VALUE_OPERATORS:
        if "value" not in advanced or advanced["value"] is None:
            raise invalid(f"{where}: the value is required for the operator '{operator}'.")
        return 1
    if operator.lower() not in _LIST_OPERATORS:
        raise invalid(f"{where}: the operatorType '{operator}' is not supported.")
    values = advanced.get("values")
    if not isinstance(values, list) or not values:
        raise invalid(f"{where}: values are required for the operator '{operator}'.")
    for value in values:
        if isinstance(value, str) and len(value) > MAX_STRING_VALUE:
            raise invalid(
                f"{where}: the string value of length {len(value)} exceeds the maximum allowed length of "
                f"{MAX_STRING_VALUE} characters."
            )
    return len(values)
