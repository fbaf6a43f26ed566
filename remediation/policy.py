"""Which scale sets are restricted, in which mode, and what is exempt. Pure: no I/O.

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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from remediation.model import (
    SCALE_SET_TYPE,
    InvalidResourceId,
    Mode,
    Origin,
    ResourceId,
    ScaleSet,
    tag_value,
)

MODE_TAG = "remediation.mode"
EXEMPT_TAG = "remediation.exempt-until"

# How far each mode goes; a tag may not go below its scope's mode when tags may not relax.
_SEVERITY = {Mode.AUDIT: 0, Mode.STRIP: 1, Mode.EVICT: 2, Mode.SCALE_TO_ZERO: 3}


class PolicyError(ValueError):
    """The policy configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class Scope:
    """A configured scope: a subscription, a resource group or one scale set, and its mode."""

    path: str  # lower case, no trailing slash: /subscriptions/x[/resourcegroups/y[/providers/...]]
    mode: Mode

    def contains(self, set_id: ResourceId) -> bool:
        return set_id.key == self.path or set_id.key.startswith(self.path + "/")

    @property
    def depth(self) -> int:
        return self.path.count("/")


@dataclass(frozen=True)
class Policy:
    scopes: tuple[Scope, ...] = ()
    tags_may_relax: bool = False
    remediate_origins: frozenset[Origin] = frozenset({Origin.SCALE_SET})
    keep_detached_public_ips: bool = False
    disable_autoscale: bool = True
    allow_deleting_hand_added: bool = False
    monitored_subscriptions: frozenset[str] = field(default_factory=frozenset)  # empty: any

    def monitors(self, subscription: str) -> bool:
        return not self.monitored_subscriptions or subscription.lower() in self.monitored_subscriptions


@dataclass(frozen=True)
class Restriction:
    """The policy's verdict on one set: restricted or not, the mode, and why."""

    mode: Mode | None  # None: not restricted
    reason: str

    @property
    def restricted(self) -> bool:
        return self.mode is not None


def _scope_for(policy: Policy, set_id: ResourceId) -> Scope | None:
    matching = [scope for scope in policy.scopes if scope.contains(set_id)]
    return max(matching, key=lambda scope: scope.depth) if matching else None


def restriction_for(scale_set: ScaleSet, policy: Policy | None = None) -> Restriction:
    policy = policy or Policy()
    scope = _scope_for(policy, scale_set.id)
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


def exemption(tags: Mapping[str, str], today: date) -> str | None:
    """Why a VM or NIC is exempt today (tag ``remediation.exempt-until=YYYY-MM-DD``), or None.

    The date is inclusive. An expired or unreadable date exempts nothing: an exemption must be
    explicit and current, never an accident of formatting.
    """
    raw = tag_value(tags, EXEMPT_TAG)
    if raw is None:
        return None
    try:
        until = date.fromisoformat(raw.strip()[:10])
    except ValueError:
        return None
    return f"exempt until {until.isoformat()} by tag {EXEMPT_TAG}" if until >= today else None


def today_utc() -> date:
    return datetime.now(UTC).date()


# -- configuration -------------------------------------------------------------------------

_KEYS = {
    "scopes",
    "tags_may_relax",
    "remediate_origins",
    "keep_detached_public_ips",
    "scale_to_zero",
    "monitored_subscriptions",
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
    if not isinstance(path, str) or not path.lower().startswith("/subscriptions/"):
        raise PolicyError(
            f"{key}.scope: expected /subscriptions/<id>[/resourceGroups/<name>[/providers/...]]"
        )
    parts = path.strip("/").split("/")
    if len(parts) > 4:
        try:
            resource = ResourceId.parse(path)
        except InvalidResourceId as error:
            raise PolicyError(f"{key}.scope: {error}") from None
        if not resource.is_type(SCALE_SET_TYPE):
            raise PolicyError(f"{key}.scope: {resource.type} is not a scale set")
    elif len(parts) not in (2, 4) or (len(parts) == 4 and parts[2].lower() != "resourcegroups"):
        raise PolicyError(f"{key}.scope: {path!r} is not a subscription, resource group or scale set")
    try:
        mode = Mode(str(entry.get("mode")))
    except ValueError:
        modes = ", ".join(m.value for m in Mode)
        raise PolicyError(f"{key}.mode: {entry.get('mode')!r} is not one of {modes}") from None
    return Scope(path.lower().rstrip("/"), mode)


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

    scale_to_zero: Any = document.get("scale_to_zero", {})
    if not isinstance(scale_to_zero, Mapping):
        raise PolicyError("scale_to_zero: expected an object")
    unknown = set(scale_to_zero) - {"disable_autoscale", "allow_deleting_hand_added"}
    if unknown:
        raise PolicyError(f"scale_to_zero: unknown key {sorted(unknown)[0]!r}")

    subscriptions = document.get("monitored_subscriptions", [])
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) and s for s in subscriptions):
        raise PolicyError("monitored_subscriptions: expected a list of subscription ids")

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
        monitored_subscriptions=frozenset(s.lower() for s in subscriptions),
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
