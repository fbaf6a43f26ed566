"""Which scale sets are restricted, in which mode, and where exemptions may hold (their tags:
``exemptions``). Pure: no I/O.

Two sources decide, and the most specific wins:
- the tag ``remediation.mode`` on the scale set itself, so owners opt a set in where they create it;
- the policy configuration (a JSON file or app setting, see ``load_policy``) naming scale sets,
  resource groups or subscriptions with a mode, so a platform team restricts whole scopes.
Within a configured scope a set's tag can only make the set stricter (audit < strip < evict <
scale-to-zero), never looser, unless the configuration says ``"tags_may_relax": true``: owners
cannot tag their way out of a platform rule.

A tag value that is not a mode never relaxes anything: in a configured scope the scope's mode
applies and the decision record says the tag was ignored and why; on a set in no scope, owners
who meant to restrict it with a typo get ``audit`` (record, never write).

Configuration is validated when it is loaded, and each error names the key that is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from remediation.model import Mode, Origin
from remediation.resource_ids import (
    MANAGEMENT_GROUP_PREFIX,
    SCALE_SET_TYPE,
    InvalidResourceId,
    ResourceId,
    management_group_name,
    subscription_id,
)
from remediation.resources import ScaleSet, tag_value

MODE_TAG = "remediation.mode"

# How far each mode goes; a tag may not go below its scope's mode when tags may not relax.
_SEVERITY = {Mode.AUDIT: 0, Mode.STRIP: 1, Mode.EVICT: 2, Mode.SCALE_TO_ZERO: 3}


# A scope naming a management group: every subscription under it, at any depth, as ARM shows it.
GROUP_SCOPE_PREFIX = MANAGEMENT_GROUP_PREFIX.lower()


class PolicyError(ValueError):
    """The policy configuration is invalid; the message names the key."""


class UnplacedPolicy(RuntimeError):
    """A policy with management-group scopes was asked about a set before it was told which
    subscriptions are under those groups (``Policy.placed``), or a group the set depends on could
    not be read: it cannot judge, and must not guess that the set is in none of them."""


def _covers(path: str, set_id: ResourceId) -> bool:
    """Whether a scope path (lower case: a subscription, resource group or set) covers the set."""
    return set_id.key == path or set_id.key.startswith(path + "/")


@dataclass(frozen=True)
class Scope:
    """A configured scope, and its mode: a subscription, a resource group or one scale set, or a
    management group (every subscription under it: which ones, ARM says, ``Policy.placed``)."""

    # Lower case, no trailing slash: /subscriptions/x[/resourcegroups/y[/providers/...]], or
    # /providers/microsoft.management/managementgroups/<name>.
    path: str
    mode: Mode

    @property
    def group(self) -> str:
        """The management group's name (lower case) for a group's scope, else ``""``."""
        return self.path[len(GROUP_SCOPE_PREFIX) :] if self.path.startswith(GROUP_SCOPE_PREFIX) else ""

    def contains(self, set_id: ResourceId, placed: Mapping[str, frozenset[str]] | None = None) -> bool:
        """Whether the scope covers the set; a group's scope by ``placed`` (group -> the
        subscriptions under it, lower case), covering nothing without it."""
        if self.group:
            return set_id.subscription.lower() in (placed or {}).get(self.group, frozenset())
        return _covers(self.path, set_id)

    @property
    def depth(self) -> int:
        """How specific the scope is: a set's scope beats its group's, which beats its
        subscription's, which beats any management group's (1: their nesting is not known here)."""
        return 1 if self.group else self.path.count("/")


@dataclass(frozen=True)
class Policy:
    scopes: tuple[Scope, ...] = ()
    tags_may_relax: bool = False
    remediate_origins: frozenset[Origin] = frozenset({Origin.SCALE_SET})
    keep_detached_public_ips: bool = False
    disable_autoscale: bool = True
    allow_deleting_hand_added: bool = False
    monitored_subscriptions: frozenset[str] = field(default_factory=frozenset)  # both empty: any
    # Names (lower case) of management groups: every subscription under one, at any depth.
    monitored_management_groups: frozenset[str] = field(default_factory=frozenset)
    evict_disable_autoscale: bool = False
    exemption_max_days: int = 30
    # Where exemption tags are honoured (paths as Scope.path), beside sets in no configured scope.
    exemptions_allowed_in: tuple[str, ...] = ()
    # The subscriptions (lower case) under each management group the scopes name, as ARM showed
    # them (``placed``); None until then. Not configuration: left out of comparisons.
    group_members: Mapping[str, frozenset[str]] | None = field(default=None, compare=False)
    # The groups among them that could not be read (``restriction_for``), and those of them ARM refused.
    unread_groups: frozenset[str] = field(default=frozenset(), compare=False)
    refused_groups: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def scope_groups(self) -> frozenset[str]:
        """The management groups (names, lower case) that scopes name."""
        return frozenset(scope.group for scope in self.scopes if scope.group)

    def placed(
        self,
        group_members: Mapping[str, frozenset[str]],
        *,
        unread: frozenset[str] = frozenset(),
        refused: frozenset[str] = frozenset(),
    ) -> Policy:
        """This policy, told which subscriptions are under the groups its scopes name (a group
        not given: none), which of them could not be read, and which of those ARM refused."""
        members = {g: group_members.get(g, frozenset()) for g in self.scope_groups}
        unread &= self.scope_groups
        return replace(self, group_members=members, unread_groups=unread, refused_groups=refused & unread)

    def needs_groups(self, set_id: ResourceId) -> bool:
        """Whether the set's verdict depends on which subscriptions are under the groups: scopes
        name groups, and no subscription's, resource group's or set's scope (each more specific
        than any group's) covers the set."""
        return bool(self.scope_groups) and not any(
            not scope.group and scope.contains(set_id) for scope in self.scopes
        )

    def monitors(self, subscription: str, under_groups: frozenset[str] = frozenset()) -> bool:
        """Whether events, looks and sweeps of a subscription are taken: it is listed, or it is one
        of ``under_groups`` (the subscriptions ARM shows under the monitored management groups:
        ``ancestry``), or nothing is listed at all."""
        if not self.monitored_subscriptions and not self.monitored_management_groups:
            return True
        key = subscription.lower()
        return key in self.monitored_subscriptions or key in under_groups

    def needs_ancestry(self, subscription: str) -> bool:
        """Whether ``monitors`` needs the subscriptions under the monitored groups to decide."""
        return bool(self.monitored_management_groups) and not self.monitors(subscription)

    def allows_exemptions(self, set_id: ResourceId) -> bool:
        """A set restricted by its own tag only may be exempted (its owners could untag it anyway);
        in a configured scope, only where ``exemptions_allowed_in`` says so."""
        try:
            if _scope_for(self, set_id) is None:
                return True
        except UnplacedPolicy:  # it may be in a group's scope that could not be read: as if it were
            pass
        return any(_covers(path, set_id) for path in self.exemptions_allowed_in)


@dataclass(frozen=True)
class Restriction:
    """The policy's verdict on one set: restricted or not, the mode, and why."""

    mode: Mode | None  # None: not restricted
    reason: str

    @property
    def restricted(self) -> bool:
        return self.mode is not None


def _scope_for(policy: Policy, set_id: ResourceId) -> Scope | None:
    """The most specific scope covering the set; of two management groups' (whose nesting is not
    known here), the stricter."""
    if policy.scope_groups and (policy.group_members is None or policy.unread_groups):
        if policy.group_members is None:
            raise UnplacedPolicy("the policy's group scopes need their subscriptions (Policy.placed)")
        if policy.needs_groups(set_id):
            unread = ", ".join(sorted(policy.unread_groups))
            raise UnplacedPolicy(f"management group {unread} could not be read")
    matching = [scope for scope in policy.scopes if scope.contains(set_id, policy.group_members)]
    return max(matching, key=lambda scope: (scope.depth, _SEVERITY[scope.mode])) if matching else None


def restriction_for(scale_set: ScaleSet, policy: Policy | None = None) -> Restriction:
    """The set's verdict. A management group the verdict depends on that could not be read
    (``Policy.unread_groups``): a set whose tag names a mode is judged without that group (the
    group could only make it stricter), and the reason says so; any other raises ``UnplacedPolicy``."""
    policy = policy or Policy()
    raw = tag_value(scale_set.tags, MODE_TAG)
    tag_mode: Mode | None = None
    tag_reason = ""
    unreadable = ""
    if raw is not None:
        try:
            tag_mode = Mode(raw.strip().lower())
            tag_reason = f"tag {MODE_TAG}={tag_mode.value}"
        except ValueError:
            modes = ", ".join(m.value for m in Mode)
            unreadable = f"tag {MODE_TAG}={raw!r} is not one of {modes}"
    try:
        scope = _scope_for(policy, scale_set.id)
    except UnplacedPolicy:
        if policy.group_members is None:
            raise
        return _without_unread(scale_set, policy)
    return _verdict(policy, scope, tag_mode, tag_reason, unreadable)


def _without_unread(scale_set: ScaleSet, policy: Policy) -> Restriction:
    """The verdict of a set that depends on groups that could not be read, from the others. A
    group's scope can only raise the mode to its own (every group's is less specific than any
    other scope, and of two groups the stricter wins): a verdict at least as strict as every unread
    group's scope (or a tag that may relax) is the verdict. Another is given as a lower bound only
    if ARM refused the group (a retry would meet the same): a read that may succeed is retried."""
    # The verdict as if the unread groups held no subscription.
    verdict = restriction_for(scale_set, policy.placed(dict(policy.group_members or {})))
    unread = ", ".join(sorted(policy.unread_groups))
    strictest = max((_SEVERITY[s.mode] for s in policy.scopes if s.group in policy.unread_groups), default=-1)
    tag = tag_value(scale_set.tags, MODE_TAG)
    relaxing = policy.tags_may_relax and tag is not None and tag.strip().lower() in {m.value for m in Mode}
    if verdict.mode is not None and (relaxing or _SEVERITY[verdict.mode] >= strictest):
        return Restriction(
            verdict.mode, f"{verdict.reason} (management group {unread} not read: it could not change this)"
        )
    if verdict.mode is not None and policy.unread_groups <= policy.refused_groups:
        return Restriction(
            verdict.mode,
            f"{verdict.reason} (at least: management group {unread} could not be read, ARM refused it)",
        )
    raise UnplacedPolicy(f"management group {unread} could not be read")


def _verdict(
    policy: Policy, scope: Scope | None, tag_mode: Mode | None, tag_reason: str, unreadable: str
) -> Restriction:
    """The verdict from the set's most specific scope and its tag (``restriction_for``)."""
    if scope is None:
        if unreadable:
            return Restriction(Mode.AUDIT, f"{unreadable}; treated as audit")
        if tag_mode is None:
            return Restriction(None, f"scale set has no {MODE_TAG!r} tag and is in no configured scope")
        return Restriction(tag_mode, tag_reason)
    scope_reason = f"configured scope {scope.path} is {scope.mode.value}"
    if unreadable:
        return Restriction(scope.mode, f"{scope_reason}; {unreadable}: ignored, it never relaxes a scope")
    if tag_mode is None:
        return Restriction(scope.mode, scope_reason)
    if policy.tags_may_relax or _SEVERITY[tag_mode] >= _SEVERITY[scope.mode]:
        return Restriction(tag_mode, f"{tag_reason} (overrides {scope_reason})")
    return Restriction(scope.mode, f"{scope_reason}; {tag_reason} may not relax it")


# -- configuration -------------------------------------------------------------------------

_KEYS = {
    "scopes",
    "tags_may_relax",
    "remediate_origins",
    "keep_detached_public_ips",
    "scale_to_zero",
    "evict",
    "monitored_subscriptions",
    "monitored_management_groups",
    "exemption_max_days",
    "exemptions_allowed_in",
}


def _boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{key}: expected true or false, got {json.dumps(value)}")
    return value


def _scope(entry: object, key: str) -> Scope:
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{key}: expected an object with 'scope' and 'mode'")
    unknown = set(entry) - {"scope", "mode"}
    if unknown:
        raise PolicyError(f"{key}: unknown key {sorted(unknown)[0]!r}")
    path = entry.get("scope")
    if isinstance(path, str) and path.lower().startswith(GROUP_SCOPE_PREFIX):
        try:
            path = GROUP_SCOPE_PREFIX + management_group_name(path).lower()
        except InvalidResourceId as error:
            raise PolicyError(f"{key}.scope: {error}") from None
    else:
        path = _scope_path(path, f"{key}.scope", groups=True)
    return Scope(path, _mode(entry.get("mode"), f"{key}.mode"))


def _scope_path(path: object, key: str, *, groups: bool = False) -> str:
    """A subscription, resource group or scale set id, lower case, no trailing slash."""
    if not isinstance(path, str) or not path.lower().startswith("/subscriptions/"):
        group = f", or {MANAGEMENT_GROUP_PREFIX}<name>" if groups else ""
        expected = "/subscriptions/<id>[/resourceGroups/<name>[/providers/...]]"
        raise PolicyError(f"{key}: expected {expected}{group}")
    parts = path.strip("/").split("/")
    if len(parts) > 4:
        try:
            resource = ResourceId.parse(path)
        except InvalidResourceId as error:
            raise PolicyError(f"{key}: {error}") from None
        if not resource.is_type(SCALE_SET_TYPE):
            raise PolicyError(f"{key}: {resource.type} is not a scale set")
    elif len(parts) not in (2, 4) or (len(parts) == 4 and parts[2].lower() != "resourcegroups"):
        raise PolicyError(f"{key}: {path!r} is not a subscription, resource group or scale set")
    return path.lower().rstrip("/")


def _mode(value: object, key: str) -> Mode:
    try:
        return Mode(str(value))
    except ValueError:
        modes = ", ".join(m.value for m in Mode)
        raise PolicyError(f"{key}: {value!r} is not one of {modes}") from None


def _options(document: Mapping[str, Any], key: str, known: set[str]) -> Mapping[str, Any]:
    value: Any = document.get(key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"{key}: expected an object")
    unknown = set(value) - known
    if unknown:
        raise PolicyError(f"{key}: unknown key {sorted(unknown)[0]!r}")
    return value


def _monitored(document: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The monitored subscriptions and management groups (names), lower case."""
    subscriptions = document.get("monitored_subscriptions", [])
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) and s for s in subscriptions):
        raise PolicyError("monitored_subscriptions: expected a list of subscription ids")
    for index, value in enumerate(subscriptions):
        try:
            subscription_id(value)
        except InvalidResourceId as error:  # a typo would monitor nothing and refuse everything
            raise PolicyError(f"monitored_subscriptions[{index}]: {error}") from None
    groups_raw = document.get("monitored_management_groups", [])
    if not isinstance(groups_raw, list):
        raise PolicyError("monitored_management_groups: expected a list of management group names or ids")
    groups = set()
    for index, value in enumerate(groups_raw):
        try:
            groups.add(management_group_name(value).lower())
        except InvalidResourceId as error:  # a typo would monitor nothing under it
            raise PolicyError(f"monitored_management_groups[{index}]: {error}") from None
    return frozenset(s.lower() for s in subscriptions), frozenset(groups)


def parse_policy(document: object) -> Policy:
    """Validate a policy document (already parsed JSON)."""
    if not isinstance(document, Mapping):
        raise PolicyError("policy: expected a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise PolicyError(f"policy: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(_KEYS))})")
    scopes_raw = document.get("scopes", [])
    if not isinstance(scopes_raw, list):
        raise PolicyError("scopes: expected a list")
    scopes = tuple(_scope(entry, f"scopes[{i}]") for i, entry in enumerate(scopes_raw))

    origins_raw = document.get("remediate_origins", [Origin.SCALE_SET.value])
    if not isinstance(origins_raw, list) or not origins_raw:
        raise PolicyError("remediate_origins: expected a non-empty list")
    origins = set()
    for i, value in enumerate(origins_raw):
        try:
            origins.add(Origin(value))
        except ValueError:
            known = ", ".join(o.value for o in Origin)
            raise PolicyError(f"remediate_origins[{i}]: {value!r} is not one of {known}") from None

    scale_to_zero = _options(document, "scale_to_zero", {"disable_autoscale", "allow_deleting_hand_added"})
    evict = _options(document, "evict", {"disable_autoscale"})
    max_days = document.get("exemption_max_days", 30)
    if not isinstance(max_days, int) or isinstance(max_days, bool) or not 0 <= max_days <= 3650:
        raise PolicyError(
            f"exemption_max_days: expected a number of days from 0 to 3650, got {json.dumps(max_days)}"
        )
    allowed_raw = document.get("exemptions_allowed_in", [])
    if not isinstance(allowed_raw, list):
        raise PolicyError("exemptions_allowed_in: expected a list of scopes")
    allowed = tuple(_scope_path(path, f"exemptions_allowed_in[{i}]") for i, path in enumerate(allowed_raw))

    subscriptions, groups = _monitored(document)
    return Policy(
        scopes=scopes,
        tags_may_relax=_boolean(document.get("tags_may_relax", False), "tags_may_relax"),
        remediate_origins=frozenset(origins),
        keep_detached_public_ips=_boolean(
            document.get("keep_detached_public_ips", False), "keep_detached_public_ips"
        ),
        disable_autoscale=_boolean(
            scale_to_zero.get("disable_autoscale", True), "scale_to_zero.disable_autoscale"
        ),
        allow_deleting_hand_added=_boolean(
            scale_to_zero.get("allow_deleting_hand_added", False), "scale_to_zero.allow_deleting_hand_added"
        ),
        monitored_subscriptions=subscriptions,
        monitored_management_groups=groups,
        evict_disable_autoscale=_boolean(evict.get("disable_autoscale", False), "evict.disable_autoscale"),
        exemption_max_days=max_days,
        exemptions_allowed_in=allowed,
    )


def load_policy(text: str, source: str = "policy") -> Policy:
    """Parse and validate policy JSON; errors name the source and the key."""
    if not text.strip():
        return Policy()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyError(f"{source}: not valid JSON: {error}") from None
    try:
        return parse_policy(document)
    except PolicyError as error:
        raise PolicyError(f"{source}: {error}") from None
