"""Management groups: the tenant's hierarchy of groups and the subscriptions placed in them.

Platform teams govern by management group: a role assignment or policy assignment at a group applies
to every group and subscription beneath it. The simulator keeps that hierarchy here and answers
Microsoft.Management's reads from it (sim/management_api.py); RBAC asks it which groups a scope sits
under (sim/rbac.py), Resource Graph which subscriptions a group holds (sim/graph.py).

As Azure has it (learn.microsoft.com, "What are Azure management groups?"): every tenant has one
root group, the "Tenant Root Group", whose id is the tenant's id; every other group has exactly one
parent; every subscription is in exactly one group, the root group unless it was placed elsewhere,
and a subscription removed from a group goes back to the root group. So a subscription the simulator
was never told about is under the root group. Group names compare case-insensitively and keep the
casing of their creation. Thread-safe.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sim.events import utc_now_iso

GROUP_TYPE = "Microsoft.Management/managementGroups"
SUBSCRIPTION_TYPE = "Microsoft.Management/managementGroups/subscriptions"
GROUP_PREFIX = "/providers/Microsoft.Management/managementGroups/"
ROOT_DISPLAY_NAME = "Tenant Root Group"
_GROUP_SCOPE = re.compile(r"^/providers/Microsoft\.Management/managementGroups/(?P<group>[^/]+)", re.I)
_SUBSCRIPTION_SCOPE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_().-]{1,90}$")  # letters, digits, -_().; at most 90 (Azure's rule)


def group_id(name: str) -> str:
    return f"{GROUP_PREFIX}{name}"


@dataclass
class Group:
    name: str
    display_name: str
    parent: str | None  # the parent's lower-cased name; None for the root group
    version: int
    updated_time: str
    updated_by: str


@dataclass
class Placement:
    subscription: str
    display_name: str
    group: str  # lower-cased group name


class ManagementGroups:
    """One tenant's management groups and where its subscriptions are."""

    def __init__(self, tenant_id: str) -> None:
        self._lock = threading.RLock()
        self._tenant_id = tenant_id
        self._groups: dict[str, Group] = {}
        self._subscriptions: dict[str, Placement] = {}  # by lower-cased subscription id, in order
        self.reset()

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def root(self) -> str:
        """The root group's name: the tenant's id."""
        return self._tenant_id

    def reset(self) -> None:
        """Only the root group, no subscription placed."""
        with self._lock:
            self._groups = {
                self.root.lower(): Group(self.root, ROOT_DISPLAY_NAME, None, 1, utc_now_iso(), "")
            }
            self._subscriptions.clear()

    # ------------------------------------------------------------------ changes

    def create(self, name: str, parent: str | None = None, display_name: str | None = None) -> Group:
        """Create a group under `parent` (the root group if None), or move and rename an existing one.

        ValueError for a name Azure refuses, a parent that does not exist, or a move that would put a
        group under itself or its descendants; the root group cannot be moved.
        """
        if not _NAME.match(name):
            raise ValueError(f"management group name {name!r}: 1-90 letters, digits, '-', '_', '(', ')', '.'")
        with self._lock:
            parent_key = (parent or self.root).lower()
            if parent_key not in self._groups:
                raise ValueError(f"no management group {parent!r}")
            key = name.lower()
            existing = self._groups.get(key)
            if existing is not None and existing.parent is None:
                raise ValueError("the tenant root group cannot be moved")
            if existing is not None and key in self._chain(parent_key):
                raise ValueError(f"{name!r} cannot be moved under itself or one of its descendants")
            version = existing.version + 1 if existing else 1
            group = Group(
                existing.name if existing else name,
                display_name or (existing.display_name if existing else name),
                parent_key,
                version,
                utc_now_iso(),
                "",
            )
            self._groups[key] = group
            return group

    def place(self, subscription: str, group: str, display_name: str | None = None) -> None:
        """Put a subscription in `group` (moving it from wherever it was); ValueError if no such group."""
        with self._lock:
            if group.lower() not in self._groups:
                raise ValueError(f"no management group {group!r}")
            existing = self._subscriptions.get(subscription.lower())
            name = display_name or (existing.display_name if existing else subscription)
            self._subscriptions[subscription.lower()] = Placement(
                existing.subscription if existing else subscription, name, group.lower()
            )

    def remove(self, subscription: str) -> None:
        """Take a subscription out of its group: it goes back to the root group, as in Azure."""
        with self._lock:
            existing = self._subscriptions.get(subscription.lower())
            if existing is not None:
                existing.group = self.root.lower()

    # ------------------------------------------------------------------ reads

    def group(self, name: str) -> Group | None:
        with self._lock:
            return self._groups.get(name.lower())

    def groups(self) -> list[Group]:
        with self._lock:
            return list(self._groups.values())

    def parent_of(self, subscription: str) -> Group:
        """The group a subscription is in (the root group unless placed elsewhere)."""
        with self._lock:
            placed = self._subscriptions.get(subscription.lower())
            return self._groups[placed.group if placed else self.root.lower()]

    def placement(self, subscription: str) -> Placement:
        with self._lock:
            placed = self._subscriptions.get(subscription.lower())
            if placed is not None:
                return Placement(placed.subscription, placed.display_name, placed.group)
            return Placement(subscription, subscription, self.root.lower())

    def ancestors(self, name: str) -> list[Group]:
        """A group's ancestors, from its parent up to the root group."""
        with self._lock:
            return [self._groups[key] for key in self._chain(name.lower())[1:]]

    def children(self, name: str) -> tuple[list[Group], list[Placement]]:
        """A group's child groups and the subscriptions directly in it, each in order of creation."""
        key = name.lower()
        with self._lock:
            groups = [g for g in self._groups.values() if g.parent == key]
            subscriptions = [
                Placement(p.subscription, p.display_name, p.group)
                for p in self._subscriptions.values()
                if p.group == key
            ]
            return groups, subscriptions

    def descendants(self, name: str) -> list[Group | Placement]:
        """Every group and subscription beneath a group, depth first: each group before what it holds."""
        found: list[Group | Placement] = []
        groups, subscriptions = self.children(name)
        for child in groups:
            found.append(child)
            found.extend(self.descendants(child.name))
        found.extend(subscriptions)
        return found

    def is_under(self, subscription: str, groups: Iterable[str]) -> bool:
        """Whether a subscription is in one of `groups` or anywhere beneath one of them."""
        wanted = {g.lower() for g in groups}
        with self._lock:
            return any(key in wanted for key in self._chain(self.parent_of(subscription).name.lower()))

    def scope_ancestors(self, scope: str) -> list[str]:
        """The group scopes (`/providers/Microsoft.Management/managementGroups/{name}`) a scope sits
        under without being inside their path: a subscription's or resource's groups, a group's
        ancestors. What RBAC adds to a scope's path prefixes when it looks for applying assignments."""
        sub = _SUBSCRIPTION_SCOPE.match(scope)
        with self._lock:
            if sub is not None:
                chain = self._chain(self.parent_of(sub["sub"]).name.lower())
            else:
                group = _GROUP_SCOPE.match(scope)
                if group is None or group["group"].lower() not in self._groups:
                    return []
                chain = self._chain(group["group"].lower())[1:]
            return [group_id(self._groups[key].name) for key in chain]

    def _chain(self, key: str) -> list[str]:
        """`key` and its ancestors' keys up to the root group (empty if there is no such group)."""
        chain: list[str] = []
        current: str | None = key
        while current is not None and current in self._groups and current not in chain:
            chain.append(current)
            current = self._groups[current].parent
        return chain
