"""Specification of a Uniform set's model in strip mode: its instances are made from it, so a
model that gives each instance a public IP loses it whenever the set is reconciled, whether or not
an instance carries one yet; otherwise the next upgrade or scale-out brings the public IPs back.
"""

from __future__ import annotations

from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
VMSS = "Microsoft.Compute/virtualMachineScaleSets"


def model_public_ips(estate: Estate, name: str) -> list[Any]:
    """The public IP configurations the set's model gives each instance, as ARM serves the set."""
    doc = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
    network = doc["properties"]["virtualMachineProfile"]["networkProfile"]
    return [
        ip["properties"]["publicIPAddressConfiguration"]
        for nic in network["networkInterfaceConfigurations"]
        for ip in nic["properties"]["ipConfigurations"]
        if ip["properties"].get("publicIPAddressConfiguration")
    ]


def instances_public_ips(estate: Estate, name: str) -> dict[str, list[str]]:
    """Each instance's public IPs, once the lists show the last writes (they lag: list_lag_s)."""
    estate.sim.advance_clock(estate.sim.settings.list_lag_s)
    return estate.uniform_public_ips(name)


def redeploy_with_a_public_ip_per_instance(estate: Estate, name: str, capacity: int) -> None:
    """The owner's template, deployed again: the model gives each instance a public IP again
    (upgrade policy Manual: the instances keep what they have until upgraded)."""
    body = docs.uniform_set(name, capacity, STRIP)
    for server_field in ("id", "name", "type", "etag"):
        body.pop(server_field)
    del body["properties"]["virtualMachineProfile"]["networkProfile"]["networkApiVersion"]
    del body["properties"]["platformFaultDomainCount"]
    estate.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
    estate.sim.wait_idle(30)


def deliver_all(estate: Estate) -> None:
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)


def test_a_restricted_uniform_set_with_no_instances_loses_the_public_ip_from_its_model(
    estate: Estate,
) -> None:
    estate.create_uniform_set("uni", tags=STRIP)
    assert model_public_ips(estate, "uni")

    deliver_all(estate)

    assert model_public_ips(estate, "uni") == []
    assert estate.successful("PATCH", VMSS) == [docs.set_id("uni")]
    intents = [r for r in estate.audit() if r.kind is RecordKind.INTENT]
    assert [r.action for r in intents] == ["remove-public-ip-from-model"]
    outcomes = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME]
    assert [(r.intent_id, r.result) for r in outcomes] == [(intents[0].record_id, "succeeded")]

    estate.scale("uni", 2)  # the set's own scale-out, from the stripped model
    assert instances_public_ips(estate, "uni") == {"0": [], "1": []}


def test_a_template_redeployed_with_public_ips_is_stripped_from_the_model_before_any_upgrade(
    estate: Estate,
) -> None:
    estate.create_uniform_set("uni", capacity=3, tags=STRIP)
    deliver_all(estate)
    assert instances_public_ips(estate, "uni") == {"0": [], "1": [], "2": []}
    writes = estate.arm_writes()

    redeploy_with_a_public_ip_per_instance(estate, "uni", 3)
    assert model_public_ips(estate, "uni")
    assert instances_public_ips(estate, "uni") == {"0": [], "1": [], "2": []}
    deliver_all(estate)

    assert model_public_ips(estate, "uni") == []
    assert estate.arm_writes() - writes == 2, "the owner's PUT, then our PATCH of the model: no upgrade"
    decisions = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any(r.startswith("remove the public IP from the model") for r in decisions)

    estate.compute.virtual_machine_scale_sets.begin_update_instances(
        docs.GROUP, "uni", {"instanceIds": ["0", "1", "2"]}
    ).result()  # the owner's next upgrade brings no public IP
    estate.sim.wait_idle(30)
    assert instances_public_ips(estate, "uni") == {"0": [], "1": [], "2": []}


def test_a_dry_run_records_the_model_change_it_would_make(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_DRY_RUN", "true")
    estate.create_uniform_set("uni", tags=STRIP)

    deliver_all(estate)

    assert model_public_ips(estate, "uni")
    assert estate.successful("PATCH", VMSS) == []
    decisions = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any(r.startswith("dry run: would remove the public IP from the model") for r in decisions)
