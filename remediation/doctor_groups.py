"""`remediation doctor`'s reads in management-group mode (the policy's ``monitored_management_groups``;
infra's ``managementGroupId``): what that mode deploys, checked where it applies.

infra/app/management-group.bicep assigns the custom role at the group, and an Azure Policy
(deployIfNotExists) wires, in each subscription under it, the system topic and the event
subscription ``vmss-public-ip-remediator`` with no subject filter (event-wiring-template.json).
So, per monitored group, three lines:

- ``management group <name>``: the subscriptions under it, read as the app reads them (ARM's
  descendants of the group: ``ArmGateway.management_group_subscriptions``); a 403 or 404 fails it,
  naming the group and the action, and the two lines below are then not checked (warn);
- ``permissions <group scope>``: the identity's effective permissions at each subscription under
  the group. ARM lists a caller's permissions for a resource group or a resource (the REST
  reference, "Permissions - List For Resource Group" and "List For Resource", api-version
  2022-04-01: learn.microsoft.com/rest/api/authorization/permissions) and, as the subscription
  lines of doctor_probe.py read it, for a subscription; it documents no list at a management
  group's scope. A role assigned at a management group applies to every subscription beneath it
  (learn.microsoft.com/azure/role-based-access-control/scope-overview: "Lower levels inherit
  role permissions from higher levels."), so each subscription's list holds the group's
  assignment: read there, it is the role the remediator works with in that subscription;
- ``events <group scope>``: each subscription's system topic and the event subscription that
  delivers to this app, judged by ``doctor_events.events_check`` with no restricted scope (the
  whole subscription's events must pass): "N of M subscriptions wired".

The subscriptions' reads (three each) run on GROUP_READ_WORKERS daemon threads and stop at
GROUP_READS_BUDGET_S in all (the HTTP route answers within the platform's 230 s): what was not
read by then is named as such, and doctor does not wait for a read still under way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from remediation.doctor import (
    Check,
    group_permissions_check,
    group_scope,
    management_group_check,
    not_checked,
    permissions_check,
)
from remediation.doctor_events import events_check, wiring_check
from remediation.doctor_probe import _failure, _from_azure, read_wiring

if TYPE_CHECKING:
    from remediation.arm import ArmGateway
    from remediation.settings import Settings

GROUP_READ_WORKERS = 8
GROUP_READS_BUDGET_S = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    """One subscription's check: judged from what was read, or (``read`` False) the read's failure."""

    check: Check
    read: bool


@dataclass(frozen=True)
class SubscriptionSeen:
    permissions: Seen
    events: Seen


def group_checks(
    settings: Settings, arm: ArmGateway, who: str, required: Iterable[str], linked: Iterable[str]
) -> list[Check]:
    """The three lines of each monitored management group, in the groups' order."""
    deadline = time.monotonic() + GROUP_READS_BUDGET_S
    groups = sorted(settings.policy.monitored_management_groups)
    members: dict[str, list[str]] = {}
    refused: dict[str, Check] = {}
    for group in groups:
        try:
            members[group] = sorted({s.lower() for s in arm.management_group_subscriptions(group)})
        except Exception as error:
            if not _from_azure(error):
                raise
            status, code = getattr(error, "status", None), getattr(error, "code", "")
            said = f"ARM {status} {code}" if status and code else _first_line(error)
            refused[group] = management_group_check(group, None, who, status=status, error=said)
    read = _subscription_reader(settings, arm, who, set(required), set(linked))
    everyone = sorted({s for found in members.values() for s in found})
    seen = read_within(everyone, read, deadline)
    checks: list[Check] = []
    for group in groups:
        scope = group_scope(group)
        if group in refused:
            checks += [
                refused[group],
                not_checked(f"permissions {scope}", group),
                not_checked(f"events {scope}", group),
            ]
            continue
        found = members[group]
        permissions = {s: seen[s].permissions for s in found if s in seen}
        events = {s: seen[s].events for s in found if s in seen}
        checks.append(management_group_check(group, found, who))
        checks.append(group_permissions_check(group, found, *_split(permissions), GROUP_READS_BUDGET_S))
        checks.append(wiring_check(group, found, *_split(events), GROUP_READS_BUDGET_S))
    return checks


def _split(seen: Mapping[str, Seen]) -> tuple[dict[str, Check], dict[str, Check]]:
    """(judged, unreadable) checks by subscription."""
    return (
        {s: v.check for s, v in seen.items() if v.read},
        {s: v.check for s, v in seen.items() if not v.read},
    )


def _subscription_reader(
    settings: Settings, arm: ArmGateway, who: str, required: set[str], linked: set[str]
) -> Callable[[str], SubscriptionSeen]:
    """What is read at each subscription under a group: the identity's permissions there, and its
    wiring (no restricted scope: every event of the subscription must pass)."""

    def read(subscription: str) -> SubscriptionSeen:
        scope = f"/subscriptions/{subscription}"

        def permissions() -> Check:
            return permissions_check(scope, who, arm.caller_permissions(scope), required, linked)

        def events() -> Check:
            topics, found = read_wiring(settings, arm, subscription)
            return events_check(subscription, topics, found, settings.function_app_id, ())

        return SubscriptionSeen(
            _seen(f"permissions {scope}", permissions), _seen(f"events {subscription}", events)
        )

    return read


def _seen(name: str, judge: Callable[[], Check]) -> Seen:
    try:
        return Seen(judge(), True)
    except Exception as error:
        if not _from_azure(error):
            raise
        return Seen(_failure(name, error), False)


def read_within(items: Sequence[str], read: Callable[[str], T], deadline: float) -> dict[str, T]:
    """``read(item)`` for each item on at most GROUP_READ_WORKERS daemon threads, none begun after
    ``deadline`` (time.monotonic()), returning at the deadline at the latest with what was read
    by then. A read still under way is left to end on its own (its answer is dropped); an error
    that is not Azure's (a bug) is raised here."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    lock = threading.Lock()
    results: dict[str, T] = {}
    errors: list[BaseException] = []

    def work() -> None:
        while time.monotonic() < deadline:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                value = read(item)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                with lock:
                    errors.append(error)
                return
            with lock:
                results[item] = value

    threads = [
        threading.Thread(target=work, name=f"doctor-group-read-{n}", daemon=True)
        for n in range(min(GROUP_READ_WORKERS, len(items)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        if errors:
            raise errors[0]
        return dict(results)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
