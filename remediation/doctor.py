"""`remediation doctor`'s judgements: given what a deployment shows (the identity's permissions
where the code writes and where its links live, the monitored management groups and what is read
at each subscription under them, the last sweep, what waits in the poison and dead-letter stores),
one line per check: ok, warn or fail, and the fix (doctor_events.py judges the Event Grid topic
and subscriptions). Pure: doctor_probe.py and doctor_groups.py read Azure and hand the answers
here.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from remediation.permissions import LINK_ACTIONS
from remediation.resource_ids import MANAGEMENT_GROUP_PREFIX

# What the app reads to learn which subscriptions a monitored management group holds.
GROUP_MEMBERS_ACTION = "Microsoft.Management/managementGroups/descendants/read"
MAX_NAMED = 10  # subscriptions a management group's line names, before "and N more"


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
    *,
    line: str = "permissions",
) -> Check:
    """The identity's effective permissions at ``scope`` against every action the code performs
    there (``line``: "links" where only the joins of links living there are needed)."""
    missing = sorted(action for action in set(required) if not granted(action, blocks))
    name = f"{line} {scope}"
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


def linked_scopes(documents: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Where the links of these scale sets' NIC configurations live (each linked resource's
    resource group, lower case) and the join ARM checks there for each: what a strip's NIC PUT
    and model PATCH re-assert (public IPs and prefixes are stripped, never linked)."""
    from remediation.resource_ids import InvalidResourceId, ResourceId

    found: dict[str, set[str]] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            raw = value.get("id")
            if isinstance(raw, str):
                try:
                    linked = ResourceId.parse(raw)
                except InvalidResourceId:
                    linked = None
                action = LINK_ACTIONS.get(linked.type.lower()) if linked else None
                if linked is not None and action is not None:
                    group = (
                        f"/subscriptions/{linked.subscription}/resourcegroups/{linked.resource_group}".lower()
                    )
                    found.setdefault(group, set()).add(action)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for document in documents:
        profile = ((document.get("properties") or {}).get("virtualMachineProfile") or {}).get(
            "networkProfile"
        )
        walk((profile or {}).get("networkInterfaceConfigurations") or [])
    return found


# -- management groups -------------------------------------------------------------------------


def group_scope(group: str) -> str:
    return f"{MANAGEMENT_GROUP_PREFIX}{group}"


def named(items: Sequence[str], most: int = MAX_NAMED) -> str:
    """``a, b, c``; past ``most`` items, the first ``most`` and "and N more"."""
    shown = ", ".join(items[:most])
    return f"{shown} and {len(items) - most} more" if len(items) > most else shown


def management_group_check(
    group: str,
    members: Sequence[str] | None,
    who: str,
    *,
    status: int | None = None,
    error: str = "",
    scoped: bool = False,
) -> Check:
    """Whether the identity can read which subscriptions are under a monitored group (its
    descendants, as the app reads them to decide what it monitors), or (``scoped``) a group a
    restricted scope names: ``members`` as read, or None with ARM's ``status`` and ``error``."""
    name = f"management group {group}"
    scope = group_scope(group)
    if members is not None:
        if not members:
            through = "restricted" if scoped else "monitored"
            return Check(name, Status.WARN, f"no subscription under {scope}: nothing is {through} through it")
        return Check(
            name, Status.OK, f"{len(members)} subscriptions under {scope}, read as the app reads them"
        )
    if status == 403:
        return Check(
            name,
            Status.FAIL,
            f"{who} cannot read which subscriptions are under {scope}: it lacks {GROUP_MEMBERS_ACTION} "
            f"there ({error})",
            "assign the remediator's custom role at the management group (azd provision with "
            "MANAGEMENT_GROUP_ID: infra/app/management-group.bicep), or wait a few minutes for a new "
            "assignment to apply",
        )
    if status == 404:
        return Check(
            name,
            Status.FAIL,
            f"ARM shows no management group {scope} ({error})",
            "name the group by its id, not its display name (the policy's "
            + (
                "scopes; infra: RESTRICTED_SCOPES)"
                if scoped
                else "monitored_management_groups; infra: MANAGEMENT_GROUP_ID)"
            ),
        )
    return Check(name, Status.FAIL, f"cannot be read: {error}", "run doctor again in a minute")


def not_checked(name: str, group: str) -> Check:
    """A line that needs the subscriptions under a group that could not be read."""
    return Check(
        name,
        Status.WARN,
        f"not checked: which subscriptions are under {group_scope(group)} could not be read "
        f"(the line 'management group {group}')",
    )


def across_subscriptions(
    name: str,
    group: str,
    members: Sequence[str],
    judged: Mapping[str, Check],
    unreadable: Mapping[str, Check],
    *,
    held: str,
    lacking: str,
    fix: str,
    budget_s: float,
) -> Check:
    """One line for a management group out of one check per subscription under it (``members``):
    ``judged``, the checks of what was read; ``unreadable``, the failures of the reads that ARM
    refused or did not answer; a member in neither was not read within ``budget_s``. Fails when
    a subscription fails or could not be read, naming them (at most MAX_NAMED) and the first
    one's finding; warns when some were not read in time, or their own checks warn."""
    failed = [s for s in members if s in judged and judged[s].status is Status.FAIL]
    warned = [s for s in members if s in judged and judged[s].status is Status.WARN]
    refused = [s for s in members if s in unreadable]
    unread = [s for s in members if s not in judged and s not in unreadable]
    good = sum(1 for s in members if s in judged) - len(failed)
    parts = [f"{good} of {len(members)} subscriptions under {group_scope(group)} {held}"]
    fixes: list[str] = []
    if failed:
        parts.append(f"{lacking}: {named(failed)} ({failed[0]}: {judged[failed[0]].detail})")
        fixes.append(fix)
    if refused:
        parts.append(f"could not be read: {named(refused)} ({refused[0]}: {unreadable[refused[0]].detail})")
        fixes.append(unreadable[refused[0]].fix)
    if unread:
        parts.append(f"not all read within {budget_s:g} s: {len(unread)} not read ({named(unread)})")
        fixes.append("run doctor again, or name subscriptions with --subscription")
    if warned:
        parts.append(f"{len(warned)} with warnings ({warned[0]}: {judged[warned[0]].detail})")
    detail = "; ".join(parts)
    if not members:
        return Check(name, Status.WARN, detail)
    if failed or refused:
        return Check(name, Status.FAIL, detail, "; ".join(dict.fromkeys(f for f in fixes if f)))
    if unread or warned:
        return Check(name, Status.WARN, detail, "; ".join(dict.fromkeys(f for f in fixes if f)))
    return Check(name, Status.OK, detail)


def group_permissions_check(
    group: str,
    members: Sequence[str],
    judged: Mapping[str, Check],
    unreadable: Mapping[str, Check],
    budget_s: float,
) -> Check:
    """The identity's permissions across a management group: read at each subscription under it
    (``judged``: permissions_check at each), where the group's assignment applies."""
    return across_subscriptions(
        f"permissions {group_scope(group)}",
        group,
        members,
        judged,
        unreadable,
        held="grant every action the remediator performs",
        lacking="actions missing at",
        fix="assign the remediator's custom role at the management group (azd provision with "
        "MANAGEMENT_GROUP_ID: infra/app/management-group.bicep), or add the missing actions to it "
        "(infra/app/remediator-role-actions.json)",
        budget_s=budget_s,
    )


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
        # NCrontab (the timer's parser) takes a day whose day of month and day of week both match,
        # where Vixie cron takes either when both are restricted; the longer gap is the safer read.
        matches = day.day in days and (day.isoweekday() % 7) in weekdays
        if day.month in months and matches:
            runs.extend(offset * 1440 + h * 60 + m for h in sorted(hours) for m in sorted(minutes))
    if len(runs) < 2:
        raise ValueError(f"{schedule!r} runs fewer than twice a year")
    return timedelta(minutes=max(later - earlier for earlier, later in itertools.pairwise(runs)))


@dataclass(frozen=True)
class SweepSeen:
    """The last sweep the audit log holds: when it recorded, its failure if it failed, and what it
    recorded as an error if it ended all the same (``partial``: a group it could not read)."""

    time: datetime
    sweep_id: str
    failure: str = ""
    partial: str = ""


# The windows a log alert takes (infra/app/alerts.bicep's sweepAlertWindow; tests/infra checks).
ALERT_WINDOWS = tuple(timedelta(minutes=m) for m in (10, 15, 30, 45, 60, 120, 180, 240, 300, 360))


def alert_window(gap: timedelta) -> timedelta:
    """The no-sweep alert's window for a schedule whose runs are at most ``gap`` apart: twice the
    gap, rounded up to a window log alerts take (main.bicep's sweepAlertWindows); past them, twice."""
    return next((window for window in ALERT_WINDOWS if window >= 2 * gap), 2 * gap)


def sweep_check(last: SweepSeen | None, now: datetime, schedule: str, looked_back: timedelta) -> Check:
    """Stale as the no-sweep alert judges it: no timer sweep within its window."""
    try:
        gap = longest_gap(schedule)
    except ValueError as error:
        return Check("sweep", Status.FAIL, f"SWEEP_SCHEDULE cannot be read: {error}", "fix SWEEP_SCHEDULE")
    window = alert_window(gap)
    rerun = (
        "see the sweep function's failures in Application Insights (the timer's sweeps count, "
        "not one run by hand)"
    )
    if last is None:
        return Check(
            "sweep",
            Status.FAIL,
            f"no timer sweep recorded in the last {_span(looked_back)} "
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
    if age > window:
        return Check(
            "sweep",
            Status.FAIL,
            f"the last sweep was {_span(age)} ago ({last.sweep_id}); the no-sweep alert's window "
            f"for SWEEP_SCHEDULE {schedule!r} is {_span(window)}",
            rerun,
        )
    if last.partial:
        return Check(
            "sweep",
            Status.WARN,
            f"the last sweep, {_span(age)} ago ({last.sweep_id}), ended, but: {last.partial}",
            "see the management group lines above, and the sweep's records (remediation audit)",
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
