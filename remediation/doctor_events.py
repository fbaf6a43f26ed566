"""`remediation doctor`'s judgement of event delivery: the monitored subscription's Event Grid
system topic, and the event subscriptions on it that deliver to this app's ``on_resource_event``,
with filters that pass every operation the code handles from every restricted scope, once. Pure.

Event Grid ANDs a subscription's advanced filters and ORs the values within one, and compares
strings case-insensitively (learn.microsoft.com/azure/event-grid/event-filtering); it allows 25
values across all the advanced filters of one subscription, so infra splits the restricted
groups' subject prefixes across several subscriptions (infra/app/event-subscription.bicep).

In management-group mode an Azure Policy (deployIfNotExists) wires each subscription under the
group with one event subscription and no subject filter (infra/app/event-wiring-template.json):
each subscription is judged as a monitored one is, every set in it restricted (``events_check``
with no restricted scopes: the whole subscription's events must pass), and ``wiring_check`` sums
them up per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from remediation.doctor import Check, Status, across_subscriptions, group_scope
from remediation.events import HANDLED_EVENT_TYPES, HANDLED_OPERATIONS

FUNCTION_NAME = "on_resource_event"  # function_app.py: the Event Grid trigger
EVENT_TYPES = frozenset(HANDLED_EVENT_TYPES)
SCHEMAS = frozenset({"eventgridschema", "cloudeventschemav1_0"})
MAX_FILTER_VALUES = 25  # advanced filters, and values across them, per event subscription
RESTORE = "azd provision restores the event subscriptions infra/app/event-subscription.bicep declares"
REWIRE = (
    "Azure Policy wires a subscription some minutes after it joins the group; for one already there, "
    "start a remediation task of the wiring policy (azd provision, or az policy remediation create: "
    'docs/deploy.md, "Enforce across a management group")'
)

Document = Mapping[str, Any]


def endpoint_of(function_app_id: str) -> str:
    return f"{function_app_id.rstrip('/')}/functions/{FUNCTION_NAME}"


def topic_for(subscription: str, topics: Sequence[Document]) -> Document | None:
    """The subscription's system topic of resource events (Azure allows one per source)."""
    source = f"/subscriptions/{subscription}".lower()
    for topic in topics:
        props = topic.get("properties") or {}
        if (
            str(props.get("topicType", "")).lower() == "microsoft.resources.subscriptions"
            and str(props.get("source", "")).lower().rstrip("/") == source
        ):
            return topic
    return None


def _delivers_to(event_subscription: Document, function_app_id: str) -> bool:
    destination = (event_subscription.get("properties") or {}).get("destination") or {}
    if str(destination.get("endpointType", "")).lower() != "azurefunction":
        return False
    target = str((destination.get("properties") or {}).get("resourceId", "")).lower()
    if function_app_id:
        return target == endpoint_of(function_app_id).lower()
    return target.endswith(f"/functions/{FUNCTION_NAME}")  # the app is not known: any app's


def events_check(
    subscription: str,
    topics: Sequence[Document],
    event_subscriptions: Sequence[Document] | None,
    function_app_id: str,
    restricted_paths: Sequence[str],
) -> Check:
    name = f"events {subscription}"
    topic = topic_for(subscription, topics)
    if topic is None:
        return Check(
            name,
            Status.FAIL,
            f"no Event Grid system topic of subscription {subscription}'s resource events",
            "azd provision creates it (infra/app/event-topic.bicep)",
        )
    endpoint = endpoint_of(function_app_id) if function_app_id else f"/functions/{FUNCTION_NAME}"
    delivering = [s for s in event_subscriptions or () if _delivers_to(s, function_app_id)]
    if not delivering:
        return Check(
            name,
            Status.FAIL,
            f"no event subscription on {topic.get('name', 'the topic')} delivers to {endpoint}",
            "azd deploy creates it after the code (the postdeploy hook sets deployEventSubscriptions)",
        )
    problems: list[str] = []
    warnings: list[str] = []
    paths = list(restricted_paths) or [f"/subscriptions/{subscription}".lower()]
    passing: dict[str, list[str]] = {path: [] for path in paths}
    for event_subscription in delivering:
        label = str(event_subscription.get("name", "?"))
        found, noted = _filter_findings(event_subscription)
        problems.extend(f"{label}: {text}" for text in found)
        warnings.extend(f"{label}: {text}" for text in noted)
        filter_ = (event_subscription.get("properties") or {}).get("filter") or {}
        for path in paths:
            if subject_passes(filter_, path):
                passing[path].append(label)
    for path, labels in passing.items():
        if not labels:
            problems.append(f"no event subscription passes the events of restricted scope {path}")
        elif len(labels) > 1:
            warnings.append(
                f"the events of {path} arrive {len(labels)} times ({', '.join(labels)}): handled as "
                "duplicates, at that many times the cost"
            )
    if not function_app_id:
        warnings.append("FUNCTION_APP_ID is not set: any app's on_resource_event was taken as this one")
    subject = f"{', '.join(str(s.get('name', '?')) for s in delivering)} on {topic.get('name', '?')}"
    if problems:
        return Check(name, Status.FAIL, f"{subject}: " + "; ".join(problems + warnings), RESTORE)
    if warnings:
        return Check(name, Status.WARN, f"{subject}: " + "; ".join(warnings))
    return Check(name, Status.OK, f"{subject} deliver every handled operation to {endpoint}")


def _filter_findings(event_subscription: Document) -> tuple[list[str], list[str]]:
    """What in one event subscription loses events the code handles (problems) or costs for
    nothing (warnings); which restricted scopes it passes is ``subject_passes``'s."""
    props = event_subscription.get("properties") or {}
    problems: list[str] = []
    warnings: list[str] = []
    state = str(props.get("provisioningState", ""))
    if state and state.lower() != "succeeded":
        problems.append(f"its provisioningState is {state}")
    schema = str(props.get("eventDeliverySchema") or "EventGridSchema")
    if schema.lower() not in SCHEMAS:
        problems.append(f"it delivers in {schema}, which the function does not read")
    filter_ = props.get("filter") or {}
    types = {str(t).lower() for t in filter_.get("includedEventTypes") or ()}
    if not types:
        warnings.append("it passes every event type (the function rejects the others, each recorded)")
    elif missing_types := sorted(t for t in EVENT_TYPES if t.lower() not in types):
        problems.append(f"its event types leave out {', '.join(missing_types)}")
    advanced = [f for f in filter_.get("advancedFilters") or () if isinstance(f, Mapping)]
    values = sum(len(f.get("values") or ()) for f in advanced)
    if values > MAX_FILTER_VALUES or len(advanced) > MAX_FILTER_VALUES:
        problems.append(f"its advanced filters hold {values} values (Event Grid allows {MAX_FILTER_VALUES})")
    _operation_findings(advanced, problems, warnings)
    others = sorted(
        {str(f.get("key", "")) for f in advanced if _key(f) not in ("data.operationname", "subject")}
    )
    others += [
        f"subject with {f.get('operatorType')}"
        for f in advanced
        if _key(f) == "subject" and _operator(f) != "stringbeginswith"
    ]
    if filter_.get("subjectEndsWith"):
        others.append(f"subjectEndsWith {filter_.get('subjectEndsWith')!r}")
    if others:
        warnings.append(f"it also filters on {', '.join(others)}, which may drop events the code handles")
    if not (props.get("deadLetterDestination") or props.get("deadLetterWithResourceIdentity")):
        warnings.append("it has no dead-letter destination: events undeliverable for 24 h are lost")
    return problems, warnings


def _key(advanced_filter: Document) -> str:
    return str(advanced_filter.get("key", "")).lower()


def _operator(advanced_filter: Document) -> str:
    return str(advanced_filter.get("operatorType", "")).lower()


def _operation_findings(advanced: Sequence[Document], problems: list[str], warnings: list[str]) -> None:
    operations = [f for f in advanced if _key(f) == "data.operationname"]
    if not operations:
        warnings.append(
            "no data.operationName filter: every write is delivered, and all but "
            f"{len(HANDLED_OPERATIONS)} kinds are rejected"
        )
    for operation_filter in operations:
        if _operator(operation_filter) != "stringin":
            problems.append(
                f"its data.operationName filter is {operation_filter.get('operatorType')}, not StringIn"
            )
            continue
        listed = {str(v).lower() for v in operation_filter.get("values") or ()}
        if left_out := sorted(HANDLED_OPERATIONS - listed):
            problems.append(f"its operation filter leaves out {', '.join(left_out)} (never delivered)")
        if extra := sorted(listed - HANDLED_OPERATIONS):
            warnings.append(f"its operation filter passes {', '.join(extra)}, which the code rejects")


def subject_passes(filter_: Document, path: str) -> bool:
    """Whether a subscription's subject filters pass the events of resources under ``path`` (a
    resource event's subject is the resource id): every StringBeginsWith filter on ``subject``
    (they are ANDed) has a prefix of the path, and so has ``subjectBeginsWith``."""
    within = f"{path.lower().rstrip('/')}/"
    begins = str(filter_.get("subjectBeginsWith") or "").lower()
    if begins and not within.startswith(begins):
        return False
    for advanced_filter in filter_.get("advancedFilters") or ():
        if not isinstance(advanced_filter, Mapping) or _key(advanced_filter) != "subject":
            continue
        if _operator(advanced_filter) == "stringbeginswith" and not any(
            within.startswith(str(value).lower()) for value in advanced_filter.get("values") or ()
        ):
            return False
    return True


def wiring_check(
    group: str,
    members: Sequence[str],
    judged: Mapping[str, Check],
    unreadable: Mapping[str, Check],
    budget_s: float,
) -> Check:
    """How many subscriptions under a management group are wired (``judged``: ``events_check``
    of each with no restricted scopes), naming those that are not."""
    return across_subscriptions(
        f"events {group_scope(group)}",
        group,
        members,
        judged,
        unreadable,
        held="wired",
        lacking="not wired",
        fix=REWIRE,
        budget_s=budget_s,
    )
