"""`remediation doctor`'s judgements: given what a deployment shows (settings, the identity's
permissions, the Event Grid topic and subscription, the last sweep, what waits in the poison and
dead-letter stores), one line per check: ok, warn or fail, and the fix. Pure: doctor_probe.py
reads Azure and hands the answers here.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from remediation.events import HANDLED_EVENT_TYPES, HANDLED_OPERATIONS

FUNCTION_NAME = "on_resource_event"  # function_app.py: the Event Grid trigger
EVENT_TYPES = frozenset(HANDLED_EVENT_TYPES)
SCHEMAS = frozenset({"eventgridschema", "cloudeventschemav1_0"})
# Event Grid: 25 advanced filters and 25 values across all the advanced filters of a subscription.
MAX_FILTER_VALUES = 25


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def exit_code(checks: Iterable[Check]) -> int:
    """1 when any check failed (the README's "found wrong"), else 0."""
    return 1 if any(check.status is Status.FAIL for check in checks) else 0


# -- permissions -------------------------------------------------------------------------------


def _pattern(expression: str) -> re.Pattern[str]:
    # ARM's wildcard: '*' matches any run of characters, case-insensitively.
    return re.compile("^" + ".*".join(re.escape(part) for part in expression.split("*")) + "$", re.I)


def granted(action: str, blocks: Sequence[Mapping[str, Any]]) -> bool:
    """Whether one of the caller's permission blocks (Microsoft.Authorization/permissions) allows
    ``action``: its ``actions`` match and its own ``notActions`` do not (notActions subtract from
    their role only; they deny nothing another role grants)."""
    for block in blocks:
        actions = [str(a) for a in block.get("actions") or ()]
        not_actions = [str(a) for a in block.get("notActions") or ()]
        if any(_pattern(a).match(action) for a in actions) and not any(
            _pattern(n).match(action) for n in not_actions
        ):
            return True
    return False


def permissions_check(
    scope: str,
    caller: str,
    blocks: Sequence[Mapping[str, Any]],
    required: Iterable[str],
    linked: Iterable[str],
) -> Check:
    """The identity's effective permissions at ``scope`` against every action the code performs."""
    missing = sorted(action for action in set(required) if not granted(action, blocks))
    name = f"permissions {scope}"
    if not missing:
        return Check(name, Status.OK, f"{caller} holds every action the remediator performs here")
    links = set(linked)
    named = ", ".join(
        f"{a} (linked: ARM checks it for a link a NIC write re-asserts)" if a in links else a for a in missing
    )
    return Check(
        name,
        Status.FAIL,
        f"{caller} lacks {len(missing)} action(s): {named}",
        "assign the remediator's custom role here (azd provision; infra/app/remediator-role.bicep), "
        "or add the missing actions to it",
    )


# -- Event Grid --------------------------------------------------------------------------------


def endpoint_of(function_app_id: str) -> str:
    return f"{function_app_id.rstrip('/')}/functions/{FUNCTION_NAME}"


def topic_for(subscription: str, topics: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
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


def _delivers_to(event_subscription: Mapping[str, Any], function_app_id: str) -> bool:
    destination = (event_subscription.get("properties") or {}).get("destination") or {}
    if str(destination.get("endpointType", "")).lower() != "azurefunction":
        return False
    target = str((destination.get("properties") or {}).get("resourceId", "")).lower()
    if function_app_id:
        return target == endpoint_of(function_app_id).lower()
    return target.endswith(f"/functions/{FUNCTION_NAME}")  # the app is not known: any app's


def events_check(
    subscription: str,
    topics: Sequence[Mapping[str, Any]],
    event_subscriptions: Sequence[Mapping[str, Any]] | None,
    function_app_id: str,
    restricted_paths: Sequence[str],
) -> Check:
    """The subscription's system topic and the event subscription delivering to this app, with a
    filter that passes every operation the code handles, from every restricted scope."""
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
    problems, warnings = _filter_findings(delivering[0], subscription, restricted_paths)
    if len(delivering) > 1:
        warnings.append(
            f"{len(delivering)} event subscriptions deliver to it: every event arrives "
            f"{len(delivering)} times (handled as duplicates, at that many times the cost)"
        )
    if not function_app_id:
        warnings.append("FUNCTION_APP_ID is not set: any app's on_resource_event was taken as this one")
    subject = f"{delivering[0].get('name', '?')} on {topic.get('name', '?')}"
    if problems:
        return Check(
            name,
            Status.FAIL,
            f"{subject}: " + "; ".join(problems + warnings),
            "azd provision restores the event subscription infra/app/event-subscription.bicep declares",
        )
    if warnings:
        return Check(name, Status.WARN, f"{subject}: " + "; ".join(warnings))
    return Check(name, Status.OK, f"{subject} delivers every handled operation to {endpoint}")


def _filter_findings(
    event_subscription: Mapping[str, Any], subscription: str, restricted_paths: Sequence[str]
) -> tuple[list[str], list[str]]:
    """What in an event subscription loses events the code handles (problems) or costs for
    nothing (warnings)."""
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
    paths = list(restricted_paths) or [f"/subscriptions/{subscription}".lower()]
    _subject_findings(filter_, advanced, paths, problems, warnings)
    if not (props.get("deadLetterDestination") or props.get("deadLetterWithResourceIdentity")):
        warnings.append("it has no dead-letter destination: events undeliverable for 24 h are lost")
    return problems, warnings


def _key(advanced_filter: Mapping[str, Any]) -> str:
    return str(advanced_filter.get("key", "")).lower()


def _operator(advanced_filter: Mapping[str, Any]) -> str:
    return str(advanced_filter.get("operatorType", "")).lower()


def _operation_findings(
    advanced: Sequence[Mapping[str, Any]], problems: list[str], warnings: list[str]
) -> None:
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


def _subject_findings(
    filter_: Mapping[str, Any],
    advanced: Sequence[Mapping[str, Any]],
    paths: Sequence[str],
    problems: list[str],
    warnings: list[str],
) -> None:
    """A subject filter must pass every restricted scope's events (the subject is the resource id;
    Event Grid compares advanced filter strings case-insensitively)."""
    subject_filters = [f for f in advanced if _key(f) == "subject"]
    prefixes = [
        str(v).lower()
        for f in subject_filters
        if _operator(f) == "stringbeginswith"
        for v in f.get("values") or ()
    ]
    begins = str(filter_.get("subjectBeginsWith") or "").lower()
    ends = str(filter_.get("subjectEndsWith") or "")
    for path in paths:
        within = f"{path}/"
        if (prefixes and not any(within.startswith(p) for p in prefixes)) or (
            begins and not within.startswith(begins)
        ):
            problems.append(f"its subject filter drops the events of restricted scope {path}")
    understood = {"data.operationname"}
    if all(_operator(f) == "stringbeginswith" for f in subject_filters):
        understood.add("subject")
    others = sorted({str(f.get("key", "")) for f in advanced if _key(f) not in understood})
    if ends:
        others.append(f"subjectEndsWith {ends!r}")
    if others:
        warnings.append(f"it also filters on {', '.join(others)}, which may drop events the code handles")


# -- the sweep ---------------------------------------------------------------------------------

_FIELDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # NCRONTAB: seconds first
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}


def _values(field: str, low: int, high: int, names: Mapping[str, int]) -> set[int]:
    chosen: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        else:
            first, _, last = base.partition("-")
            start = names[first] if first in names else int(first)
            end = (names[last] if last in names else int(last)) if last else (high if step_text else start)
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        chosen.update(range(start, end + 1, step))
    return chosen


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two runs of an NCRONTAB schedule (``{second} {minute} {hour}
    {day} {month} {day-of-week}``), over a year from a Monday (minute resolution: a sweep runs
    at most once a minute). ValueError names what cannot be read."""
    fields = schedule.split()
    if len(fields) != 6:
        raise ValueError(f"{schedule!r}: NCRONTAB has six fields, seconds first")
    names: tuple[Mapping[str, int], ...] = ({}, {}, {}, {}, _MONTHS, _DAYS)
    try:
        sets = [_values(f, lo, hi, n) for f, (lo, hi), n in zip(fields, _FIELDS, names, strict=True)]
    except (KeyError, ValueError) as error:
        raise ValueError(f"{schedule!r}: {error}") from None
    _, minutes, hours, days, months, weekdays = sets
    start = datetime(2024, 1, 1)  # a Monday in a leap year
    runs: list[int] = []  # minutes from start
    for offset in range(366):
        day = start + timedelta(days=offset)
        # cron: a day matches when day-of-month or day-of-week does, unless one of them is '*'
        by_date, by_weekday = day.day in days, (day.isoweekday() % 7) in weekdays
        matches = by_date and by_weekday if "*" in (fields[3], fields[5]) else by_date or by_weekday
        if day.month in months and matches:
            runs.extend(offset * 1440 + h * 60 + m for h in sorted(hours) for m in sorted(minutes))
    if len(runs) < 2:
        raise ValueError(f"{schedule!r} runs fewer than twice a year")
    return timedelta(minutes=max(later - earlier for earlier, later in itertools.pairwise(runs)))


@dataclass(frozen=True)
class SweepSeen:
    """The last sweep the audit log holds: when it recorded, and its failure if it failed."""

    time: datetime
    sweep_id: str
    failure: str = ""


def sweep_check(last: SweepSeen | None, now: datetime, schedule: str, looked_back: timedelta) -> Check:
    """Stale when the last sweep is older than twice the schedule's longest gap (the alert's rule)."""
    try:
        gap = longest_gap(schedule)
    except ValueError as error:
        return Check("sweep", Status.FAIL, f"SWEEP_SCHEDULE cannot be read: {error}", "fix SWEEP_SCHEDULE")
    rerun = "run `remediation sweep` now, and see the sweep function's failures in Application Insights"
    if last is None:
        return Check(
            "sweep",
            Status.FAIL,
            f"no sweep recorded in the last {_span(looked_back)} "
            f"(SWEEP_SCHEDULE {schedule!r}: at most {_span(gap)} apart)",
            rerun,
        )
    age = now - last.time
    if last.failure:
        return Check(
            "sweep",
            Status.FAIL,
            f"the last sweep, {_span(age)} ago ({last.sweep_id}), failed: {last.failure}",
            rerun,
        )
    if age > 2 * gap:
        return Check(
            "sweep",
            Status.FAIL,
            f"the last sweep was {_span(age)} ago ({last.sweep_id}); "
            f"SWEEP_SCHEDULE {schedule!r} runs at most {_span(gap)} apart",
            rerun,
        )
    return Check("sweep", Status.OK, f"the last sweep was {_span(age)} ago ({last.sweep_id})")


def _span(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} d"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# -- what waits --------------------------------------------------------------------------------


def waiting_check(name: str, waiting: int, where: str, replay: str) -> Check:
    """Poison messages or dead letters not yet replayed."""
    if waiting == 0:
        return Check(name, Status.OK, f"nothing waits in {where}")
    return Check(name, Status.FAIL, f"{waiting} wait in {where}, not replayed", f"replay them: {replay}")
