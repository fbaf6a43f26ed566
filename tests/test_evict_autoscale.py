"""Specification of eviction beside autoscale: a set whose autoscale minimum brings evicted
instances straight back (from the same model, so with public IPs) is said so in the record, and
with ``evict.disable_autoscale`` the setting is disabled before any instance is deleted."""

from __future__ import annotations

import json

import arm_docs as docs
import pytest
from estate import Estate

from remediation.model import RecordKind

EVICT = {"remediation.mode": "evict"}
AUTOSCALE = "Microsoft.Insights/autoscalesettings"
VM = "Microsoft.Compute/virtualMachines"


def test_evicting_below_the_autoscale_minimum_is_recorded_with_what_autoscale_will_do(estate: Estate) -> None:
    estate.create_set("web", tags=EVICT)
    estate.scale("web", 2)
    estate.create_autoscale_setting("web", minimum=2)
    for event in estate.events():
        estate.deliver(event)

    assert estate.vms("web") == [], "both instances evicted"
    notes = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION and "autoscale" in r.reason]
    assert notes == [
        "autoscale setting web-autoscale keeps at least 2 instances: evicting 2 of 2 leaves 0, so "
        "autoscale will create 2 again from the same model (set evict.disable_autoscale to disable it first)"
    ]
    assert estate.successful("PATCH", AUTOSCALE) == [], "not disabled unless the policy says so"


def test_with_evict_disable_autoscale_the_setting_is_disabled_before_any_instance_goes(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"evict": {"disable_autoscale": True}}))
    estate.create_set("web", tags=EVICT)
    estate.scale("web", 3)
    setting = estate.create_autoscale_setting("web", minimum=3)
    built = len(estate.sim.requests())
    for event in estate.events():
        estate.deliver(event)

    writes = [
        (r.method, r.resource_type)
        for r in estate.sim.requests()[built:]
        if r.method in ("PATCH", "DELETE") and r.status < 300
    ]
    assert writes[0] == ("PATCH", AUTOSCALE) and writes.count(("DELETE", VM)) == 3, writes
    assert writes.count(("PATCH", AUTOSCALE)) == 1
    (disabled,) = estate.resources(AUTOSCALE)
    assert disabled["properties"]["enabled"] is False
    assert disabled["properties"]["profiles"] == setting["properties"]["profiles"], "sent back as read"
    assert estate.vms("web") == []
    sets = [s["id"].lower() for s in estate.resources("Microsoft.Compute/virtualMachineScaleSets")]
    assert docs.set_id("web").lower() in sets, "eviction deletes instances, never the set"


def test_a_look_that_finds_no_public_ip_reads_no_autoscale_setting(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    estate.create_set("web", tags=EVICT)
    estate.scale("web", 2)
    estate.create_autoscale_setting("web", minimum=2)
    for event in estate.events():
        estate.deliver(event)
    assert estate.vms("web") == []
    looked = len(estate.sim.requests())

    estate.sweep(past_due=True)  # a look at the set again, as a growing set's watch makes
    assert estate.pump_rechecks() == 1
    again = estate.sim.requests()[looked:]
    assert any(r.resource_type == "Microsoft.Compute/virtualMachineScaleSets" for r in again), "looked at"
    assert [r.path for r in again if r.resource_type == AUTOSCALE] == []
