"""The harness's side of management groups: the hierarchy set up without HTTP, and Azure Policy's
deployIfNotExists effect that wires each new subscription's events.

A tenant-wide deployment assigns its role and its policy at a management group; what it must survive
is a subscription that joins the group later. These methods of `ArmSimulator` (this mixin) create
groups, place and remove subscriptions (as a tenant's administrators do in the portal: neither
authorized nor throttled, recorded as the PUT or DELETE of
`/providers/Microsoft.Management/managementGroups/{group}[/subscriptions/{sub}]` they stand for), and
stand in for the policy: `register_event_wiring(group, deploy)` calls `deploy(subscription)` for every
subscription placed under the group (or beneath it) afterwards, `wiring_delay_s` simulated seconds
after the placement, as Azure Policy evaluates a new subscription some minutes later
(learn.microsoft.com, "Evaluate resources with Azure Policy": a new or moved subscription's
evaluation starts within about 15 minutes; deployIfNotExists then deploys after its
`evaluationDelay`). `remediate_event_wiring(group)` is the remediation task: `deploy` now for the
subscriptions already there. `deploy` runs in a thread of its own (it may talk to the simulator over
HTTPS and wait for its operations); `wait_event_wiring()` joins them.

With `events_need_wiring` (a switch of the simulator, off by default), a subscription's resource
events reach the event sinks only once it is wired: a Succeeded system topic with the subscription as
its source holds a Succeeded event subscription (sim/event_grid.py `wired`), as in Azure nothing
delivers the events of a subscription without one. Events of an unwired subscription are dropped,
not held. The hierarchy and the registered wirings survive `reset()`; `reset(access=True)` forgets
them with the role assignments.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sim.delivery import Event, EventBus
from sim.event_grid import EventGridApi
from sim.hooks import RequestHooks
from sim.management_groups import GROUP_TYPE, SUBSCRIPTION_TYPE, ManagementGroups, group_id
from sim.request_log import harness_record
from sim.scheduler import Scheduler
from sim.settings import Settings
from sim.writes import WritableStore

logger = logging.getLogger(__name__)
DEFAULT_WIRING_DELAY_S = 900.0  # Azure Policy's "within about 15 minutes" for a new subscription


@dataclass(frozen=True)
class EventWiring:
    """A deployIfNotExists policy stand-in assigned at a group."""

    group: str
    deploy: Callable[[str], None]
    delay_s: float


class ManagementHarness:
    """Mixed into ArmSimulator, which provides the store, hooks, scheduler, bus and Event Grid."""

    settings: Settings
    _store: WritableStore
    _hooks: RequestHooks
    _scheduler: Scheduler
    _bus: EventBus
    _event_grid: EventGridApi
    _groups: ManagementGroups
    _wirings: list[EventWiring]
    _wiring_threads: list[threading.Thread]

    @property
    def tenant_root_group(self) -> str:
        """The tenant root group's name (the tenant's id): every subscription's group by default."""
        return self._groups.root

    def create_management_group(
        self, name: str, parent: str | None = None, *, display_name: str | None = None
    ) -> str:
        """Create a group under `parent` (the tenant root group if None), or move or rename one;
        returns its id. ValueError for what Azure refuses (see ManagementGroups.create)."""
        group = self._groups.create(name, parent, display_name)
        self._record_management("PUT", group_id(group.name), GROUP_TYPE, 200)
        return group_id(group.name)

    def place_subscription(self, subscription: str, group: str, *, display_name: str | None = None) -> None:
        """Move a subscription into `group` (from wherever it was). A wiring registered at the group
        or above it is deployed for it `delay_s` later. ValueError if there is no such group."""
        self._groups.place(subscription, group, display_name)
        self._record_management(
            "PUT", f"{group_id(group)}/subscriptions/{subscription}", SUBSCRIPTION_TYPE, 200
        )
        for wiring in self._wirings_over(subscription):
            self._scheduler.call_later(wiring.delay_s, partial(self._start_deploy, wiring, subscription))

    def remove_subscription(self, subscription: str) -> None:
        """Take a subscription out of its group: back in the tenant root group (its wiring stays)."""
        before = self._groups.parent_of(subscription).name
        self._groups.remove(subscription)
        self._record_management(
            "DELETE", f"{group_id(before)}/subscriptions/{subscription}", SUBSCRIPTION_TYPE, 200
        )

    def register_event_wiring(
        self, group: str, deploy: Callable[[str], None], *, delay_s: float = DEFAULT_WIRING_DELAY_S
    ) -> None:
        """Stand in for a deployIfNotExists assignment at `group`: `deploy(subscription)` for each
        subscription placed under it from now on, `delay_s` simulated seconds after its placement."""
        if self._groups.group(group) is None:
            raise ValueError(f"no management group {group!r}")
        if delay_s < 0:
            raise ValueError("delay_s must not be negative")
        self._wirings.append(EventWiring(group, deploy, delay_s))

    def remediate_event_wiring(self, group: str) -> list[str]:
        """The policy's remediation task: `deploy` now for every subscription under `group` that is not
        wired yet, for each wiring registered at the group or above it; returns those subscriptions."""
        started: list[str] = []
        for item in self._groups.descendants(group):
            subscription = getattr(item, "subscription", None)
            if subscription is None or self._event_grid.wired(subscription):
                continue
            for wiring in self._wirings_over(subscription):
                self._start_deploy(wiring, subscription)
            started.append(subscription)
        return started

    def wait_event_wiring(self, timeout_s: float = 30.0) -> None:
        """Wait until every `deploy` started so far has returned; TimeoutError otherwise."""
        for thread in list(self._wiring_threads):
            thread.join(timeout_s)
            if thread.is_alive():
                raise TimeoutError(f"an event wiring deployment ({thread.name}) did not finish")

    def is_wired(self, subscription: str) -> bool:
        """Whether a subscription's events are delivered under `events_need_wiring`."""
        return self._event_grid.wired(subscription)

    def _reset_management(self) -> None:
        self._groups.reset()
        self._wirings.clear()

    def _wirings_over(self, subscription: str) -> list[EventWiring]:
        return [w for w in self._wirings if self._groups.is_under(subscription, [w.group])]

    def _start_deploy(self, wiring: EventWiring, subscription: str) -> None:
        if not self._groups.is_under(subscription, [wiring.group]):
            return  # moved out of the group before the policy evaluated it

        def run() -> None:
            try:
                wiring.deploy(subscription)
            except Exception:
                logger.exception("event wiring of %s under %s failed", subscription, wiring.group)

        thread = threading.Thread(target=run, name=f"event-wiring-{subscription}", daemon=True)
        self._wiring_threads.append(thread)
        thread.start()

    def _publish(self, events: list[Event]) -> None:
        """The store's publisher: the bus, past the wiring gate when `events_need_wiring` is on."""
        if self.settings.events_need_wiring:
            events = [e for e in events if self._event_grid.wired(str(e.get("topic", "")).rsplit("/", 1)[-1])]
        self._bus.publish(events)

    def _record_management(self, method: str, path: str, resource_type: str, status: int) -> None:
        record = harness_record(method, path, resource_type, status)
        self._store.record(record)
        self._hooks.call(record)
