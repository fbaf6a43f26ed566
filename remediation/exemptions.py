"""Exemptions: what the tags ``remediation.exempt-until`` and ``remediation.exempt-reason`` on an
instance (its VM, its NIC, a public IP) amount to under the policy today. Pure: no I/O.

An exemption holds until its date (inclusive), at most ``exemption_max_days`` past the instance's
creation, and only where the policy allows exemptions (``Policy.allows_exemptions``); an expired or
unreadable date exempts nothing, and the decision record says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from remediation.policy import Policy
from remediation.resource_ids import ResourceId
from remediation.resources import tag_value

EXEMPT_TAG = "remediation.exempt-until"
EXEMPT_REASON_TAG = "remediation.exempt-reason"


@dataclass(frozen=True)
class Exemption:
    """What the exemption tags on an instance (its VM, its NIC, a public IP) amount to today:
    whether they exempt it, and why, or why they were ignored, for the decision record."""

    applies: bool
    reason: str


def exemption(
    policy: Policy,
    set_id: ResourceId,
    tagged: Sequence[tuple[str, Mapping[str, str]]],
    today: date,
    created: date | None = None,
) -> Exemption | None:
    """The exemption that holds for an instance of ``set_id`` (``tagged``: what carries tags, e.g.
    ``[("VM", tags), ("NIC", tags)]``), else why a tag found was not honoured; None if none is tagged.

    ``remediation.exempt-until=YYYY-MM-DD`` is inclusive, and at most ``exemption_max_days`` past
    the instance's creation (``created``; today when it is not known): a later date is held to that
    limit, and the record says so. An expired or unreadable date exempts nothing, nor does a tag on
    a set where the policy allows no exemptions. The reason tag ``remediation.exempt-reason`` is
    quoted in the record.
    """
    refused: Exemption | None = None
    for what, tags in tagged:
        raw = tag_value(tags, EXEMPT_TAG)
        if raw is None:
            continue
        verdict = _one_exemption(
            policy, set_id, what, raw, why=tag_value(tags, EXEMPT_REASON_TAG), today=today, created=created
        )
        if verdict.applies:
            return verdict
        refused = refused or verdict
    return refused


def _one_exemption(
    policy: Policy,
    set_id: ResourceId,
    what: str,
    raw: str,
    *,
    why: str | None,
    today: date,
    created: date | None,
) -> Exemption:
    tag = f"tag {EXEMPT_TAG}={raw.strip()!r} on the {what}"
    try:
        asked = date.fromisoformat(raw.strip()[:10])
    except ValueError:
        return Exemption(False, f"{tag} ignored: not a date (YYYY-MM-DD)")
    if not policy.allows_exemptions(set_id):
        return Exemption(
            False, f"{tag} ignored: the policy allows no exemptions here (exemptions_allowed_in)"
        )
    start = created or today
    limit = start + timedelta(days=policy.exemption_max_days)
    until = min(asked, limit)
    held = (
        f" (held to {limit.isoformat()}: exemption_max_days {policy.exemption_max_days} after "
        + ("the instance was created" if created else "today, the instance's creation not known")
        + ")"
        if asked > limit
        else ""
    )
    if until < today:
        return Exemption(False, f"{tag} ignored: expired on {until.isoformat()}{held}")
    given = f"reason {why.strip()!r}" if why and why.strip() else f"no reason given (tag {EXEMPT_REASON_TAG})"
    return Exemption(True, f"exempt until {until.isoformat()} by {tag}{held}; {given}")


def today_utc() -> date:
    return datetime.now(UTC).date()
