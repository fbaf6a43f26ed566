"""Specification of the policy: which sets are restricted, in which mode, and what is exempt."""

from __future__ import annotations

import json
import re
from datetime import date

import arm_docs as docs
import pytest

from remediation.exemptions import Exemption, exemption
from remediation.model import Mode, Origin
from remediation.policy import Policy, PolicyError, Scope, load_policy, restriction_for
from remediation.resource_ids import ResourceId
from remediation.resources import ScaleSet
from remediation.settings import Settings, SettingsError

SUB_SCOPE = f"/subscriptions/{docs.SUB}"
GROUP_SCOPE = f"{SUB_SCOPE}/resourceGroups/{docs.GROUP}"


def scale_set(tags: dict[str, str] | None = None) -> ScaleSet:
    return ScaleSet.from_arm(docs.scale_set("web", tags=tags))


def test_the_most_specific_scope_wins() -> None:
    policy = load_policy(
        json.dumps(
            {"scopes": [{"scope": SUB_SCOPE, "mode": "audit"}, {"scope": GROUP_SCOPE, "mode": "strip"}]}
        )
    )
    verdict = restriction_for(scale_set(), policy)
    assert verdict.mode is Mode.STRIP and verdict.reason == f"configured scope {GROUP_SCOPE.lower()} is strip"


def test_a_tag_can_only_make_its_scope_stricter_unless_the_policy_lets_tags_relax() -> None:
    scopes = [{"scope": GROUP_SCOPE, "mode": "strip"}]
    default = load_policy(json.dumps({"scopes": scopes}))
    held = restriction_for(scale_set({"remediation.mode": "audit"}), default)
    assert held.mode is Mode.STRIP and held.reason.endswith("tag remediation.mode=audit may not relax it")
    assert restriction_for(scale_set({"remediation.mode": "evict"}), default).mode is Mode.EVICT
    relaxing = load_policy(json.dumps({"scopes": scopes, "tags_may_relax": True}))
    assert restriction_for(scale_set({"remediation.mode": "audit"}), relaxing).mode is Mode.AUDIT


@pytest.mark.parametrize("tags_may_relax", [False, True])
def test_an_unreadable_tag_never_relaxes_a_scope_and_the_reason_says_it_was_ignored(
    tags_may_relax: bool,
) -> None:
    scopes = [{"scope": GROUP_SCOPE, "mode": "evict"}]
    policy = load_policy(json.dumps({"scopes": scopes, "tags_may_relax": tags_may_relax}))
    verdict = restriction_for(scale_set({"remediation.mode": "strp"}), policy)
    assert verdict.mode is Mode.EVICT
    assert verdict.reason == (
        f"configured scope {GROUP_SCOPE.lower()} is evict; tag remediation.mode='strp' is not one of "
        "audit, strip, evict, scale-to-zero: ignored, it never relaxes a scope"
    )
    # In no scope, an owner's typo still restricts the set, as audit (record, never write).
    assert restriction_for(scale_set({"remediation.mode": "strp"}), Policy()).mode is Mode.AUDIT


def test_a_scope_names_the_set_itself() -> None:
    policy = load_policy(json.dumps({"scopes": [{"scope": docs.set_id("web").upper(), "mode": "evict"}]}))
    assert restriction_for(scale_set(), policy).mode is Mode.EVICT
    other = load_policy(json.dumps({"scopes": [{"scope": docs.set_id("web2"), "mode": "evict"}]}))
    assert restriction_for(scale_set(), other).mode is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"scope": []}, "policy: unknown key 'scope'"),
        ({"scopes": {}}, "scopes: expected a list"),
        ({"scopes": [{"scope": "/subs/x", "mode": "strip"}]}, "scopes[0].scope: expected /subscriptions/"),
        ({"scopes": [{"scope": SUB_SCOPE, "mode": "strip", "extra": 1}]}, "scopes[0]: unknown key 'extra'"),
        (
            {
                "scopes": [
                    {
                        "scope": f"{GROUP_SCOPE}/providers/Microsoft.Network/networkInterfaces/n",
                        "mode": "strip",
                    }
                ]
            },
            "is not a scale set",
        ),
        ({"remediate_origins": ["scale-set", "aliens"]}, "remediate_origins[1]: 'aliens' is not one of"),
        ({"keep_detached_public_ips": "yes"}, 'keep_detached_public_ips: expected true or false, got "yes"'),
        ({"scale_to_zero": {"disable": True}}, "scale_to_zero: unknown key 'disable'"),
        ({"monitored_subscriptions": [1]}, "monitored_subscriptions: expected a list of subscription ids"),
    ],
)
def test_configuration_errors_name_the_key(document: object, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(json.dumps(document), source="policy.json")
    assert message in str(error.value) and str(error.value).startswith("policy.json: ")


def test_settings_carry_the_policy_and_name_bad_keys() -> None:
    base = {"RemediationStorage": "UseDevelopmentStorage=true"}
    settings = Settings.from_env(
        {**base, "REMEDIATION_POLICY": json.dumps({"remediate_origins": ["scale-set", "unknown"]})}
    )
    assert settings.policy.remediate_origins == {Origin.SCALE_SET, Origin.UNKNOWN}
    with pytest.raises(SettingsError, match=re.escape("REMEDIATION_POLICY: not valid JSON")):
        Settings.from_env({**base, "REMEDIATION_POLICY": "{"})
    with pytest.raises(SettingsError, match=re.escape("REMEDIATION_POLICY_FILE='/nope.json' cannot be read")):
        Settings.from_env({**base, "REMEDIATION_POLICY_FILE": "/nope.json"})
    with pytest.raises(SettingsError, match=re.escape("ARM_ENDPOINT='http://x' must be an https:// URL")):
        Settings.from_env({**base, "ARM_ENDPOINT": "http://x"})
    with pytest.raises(SettingsError, match=re.escape("only allowed with a loopback ARM_ENDPOINT")):
        Settings.from_env({**base, "ARM_CREDENTIAL": "loopback"})
    with pytest.raises(SettingsError, match=re.escape("RemediationStorage__tableServiceUri=''")):
        Settings.from_env({})
    with pytest.raises(SettingsError, match=re.escape("RECHECK_DELAYS_SECONDS='15,x'")):
        Settings.from_env({**base, "RECHECK_DELAYS_SECONDS": "15,x"})


TODAY = date(2026, 11, 21)
SET = ResourceId.parse(docs.set_id("web"))
IN_A_SCOPE = Policy(scopes=(Scope(GROUP_SCOPE.lower(), Mode.STRIP),))


def exempt(
    tags: dict[str, str], policy: Policy | None = None, created: date | None = None
) -> Exemption | None:
    return exemption(policy or Policy(), SET, [("VM", tags)], TODAY, created)


@pytest.mark.parametrize(
    ("value", "holds"),
    [("2026-11-21", True), ("2026-12-31T00:00:00Z", True), ("2026-11-20", False), ("someday", False)],
)
def test_an_exemption_holds_through_its_date_and_never_when_unreadable(value: str, holds: bool) -> None:
    verdict = exempt({"Remediation.Exempt-Until": value})
    assert verdict is not None and verdict.applies is holds


def test_an_exemption_lasts_at_most_exemption_max_days_after_the_instance_was_created() -> None:
    forever = {"remediation.exempt-until": "9999-12-31", "remediation.exempt-reason": "CHG-42 debugging"}
    verdict = exempt(forever, created=date(2026, 11, 1))
    assert verdict == Exemption(
        True,
        "exempt until 2026-12-01 by tag remediation.exempt-until='9999-12-31' on the VM (held to "
        "2026-12-01: exemption_max_days 30 after the instance was created); reason 'CHG-42 debugging'",
    )
    expired = exempt(forever, created=date(2026, 10, 1))
    assert expired is not None and not expired.applies
    assert expired.reason.endswith(
        "ignored: expired on 2026-10-31 (held to 2026-10-31: exemption_max_days 30 after the "
        "instance was created)"
    )
    week = exemption(Policy(exemption_max_days=7), SET, [("NIC", forever)], TODAY, date(2026, 11, 20))
    assert week is not None and week.applies and "exempt until 2026-11-27" in week.reason


def test_an_exemption_without_a_reason_says_none_was_given() -> None:
    verdict = exempt({"remediation.exempt-until": "2026-11-30"})
    assert verdict is not None and verdict.reason.endswith("no reason given (tag remediation.exempt-reason)")


def test_in_a_configured_scope_only_exemptions_allowed_in_lets_an_exemption_hold() -> None:
    tags = {"remediation.exempt-until": "2026-11-30"}
    refused = exempt(tags, IN_A_SCOPE)
    assert refused is not None and not refused.applies
    assert refused.reason.endswith("ignored: the policy allows no exemptions here (exemptions_allowed_in)")
    allowing = load_policy(
        json.dumps(
            {
                "scopes": [{"scope": GROUP_SCOPE, "mode": "strip"}],
                "exemptions_allowed_in": [docs.set_id("web")],
            }
        )
    )
    allowed = exempt(tags, allowing)
    assert allowed is not None and allowed.applies
    # A set in no configured scope is restricted by its owners' own tag: they may exempt in it.
    assert (exempt(tags) or Exemption(False, "")).applies


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"exemption_max_days": -1}, "exemption_max_days: expected a number of days from 0 to 3650, got -1"),
        ({"exemption_max_days": True}, "exemption_max_days: expected a number of days"),
        ({"exemptions_allowed_in": ["/subs/x"]}, "exemptions_allowed_in[0]: expected /subscriptions/"),
        ({"evict": {"disable": True}}, "evict: unknown key 'disable'"),
    ],
)
def test_exemption_and_evict_settings_are_validated(document: object, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(json.dumps(document))


def test_a_monitored_subscription_that_is_no_guid_is_named() -> None:
    with pytest.raises(PolicyError, match=r"monitored_subscriptions\[1\]: subscription 'prod' is not a GUID"):
        load_policy(json.dumps({"monitored_subscriptions": ["6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10", "prod"]}))
