"""Specification of what the remediator's writes carry on the wire, read from the simulator's
request log: each PATCH sends only what must change, and every write ARM takes an etag for is
conditional on the etag the remediator read (If-Match)."""

from __future__ import annotations

import json
from typing import Any

import arm_docs as docs
from estate import Estate

from remediation.credentials import LoopbackCredential
from sim.store import RequestRecord

REMEDIATOR = LoopbackCredential.APP_ID
VMSS = "Microsoft.Compute/virtualMachineScaleSets"


def remediator_writes(estate: Estate, after: int) -> list[RequestRecord]:
    return [
        r
        for r in estate.sim.requests()[after:]
        if r.principal.lower() == REMEDIATOR.lower()
        and r.method in ("PUT", "PATCH")
        and 200 <= r.status < 300
    ]


def sent(record: RequestRecord) -> Any:
    return json.loads(record.body)


def test_scale_to_zero_patches_the_capacity_alone_and_the_autoscale_setting_with_its_profiles(
    estate: Estate,
) -> None:
    estate.create_set("web", tags={"remediation.mode": "scale-to-zero"})
    profiles = estate.create_autoscale_setting("web")["properties"]["profiles"]
    estate.sim.autoscale_to(docs.set_id("web"), 2)
    estate.sim.wait_idle(30)
    etag = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "web").etag
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    autoscale, capacity = remediator_writes(estate, built)
    assert (autoscale.method, autoscale.resource_type) == ("PATCH", "Microsoft.Insights/autoscalesettings")
    assert sent(autoscale) == {"properties": {"enabled": False, "profiles": profiles}}
    assert (capacity.method, capacity.resource_type) == ("PATCH", VMSS)
    assert sent(capacity) == {"sku": {"capacity": 0}}
    assert capacity.if_match == etag


def test_the_uniform_model_change_patches_the_nic_configurations_alone_if_unchanged(estate: Estate) -> None:
    estate.create_uniform_set("uni", tags={"remediation.mode": "strip"})
    estate.scale("uni", 2)
    model = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "uni")
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    (patch,) = [r for r in remediator_writes(estate, built) if r.method == "PATCH"]
    body = sent(patch)
    assert list(body) == ["properties"] and list(body["properties"]) == ["virtualMachineProfile"]
    profile = body["properties"]["virtualMachineProfile"]
    assert list(profile) == ["networkProfile"]
    assert list(profile["networkProfile"]) == ["networkInterfaceConfigurations"]
    [config] = profile["networkProfile"]["networkInterfaceConfigurations"]
    assert "publicIPAddressConfiguration" not in config["properties"]["ipConfigurations"][0]["properties"]
    assert patch.if_match == model.etag


def test_a_nic_is_put_back_only_if_it_still_carries_the_etag_read(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 2)
    nics = estate.resources("Microsoft.Network/networkInterfaces")
    etags = {nic["id"].lower(): nic["etag"] for nic in nics}
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    puts = remediator_writes(estate, built)
    assert len(puts) == 2
    assert {r.path.lower(): r.if_match for r in puts} == etags
