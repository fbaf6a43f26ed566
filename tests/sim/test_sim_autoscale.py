"""Autoscale settings over HTTP, and the autoscale service acting as its own principal."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import CONVENIENT, LOCATION, RG, Clients, flex_body, make_clients, owned, rid, uniform_body

from sim import ArmSimulator, AutoscaleRefused

AUTOSCALE = "Microsoft.Insights/autoscalesettings"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
API = "?api-version=2022-10-01"


def _setting(target: str, *, enabled: bool, low: int = 0, high: int = 5) -> dict[str, Any]:
    return {
        "location": LOCATION,
        "properties": {
            "enabled": enabled,
            "targetResourceUri": target,
            "profiles": [
                {
                    "name": "default",
                    "capacity": {"minimum": str(low), "maximum": str(high), "default": str(low)},
                    "rules": [],
                }
            ],
        },
    }


def _send(clients: Clients, method: str, path: str, body: Any = None) -> Any:
    return clients.compute.send_request(HttpRequest(method, f"{path}{API}", json=body))


def test_settings_are_written_synchronously_and_listed(sim: ArmSimulator, clients: Clients) -> None:
    target = rid(VMSS, "web")
    created = _send(clients, "PUT", rid(AUTOSCALE, "web-scale"), _setting(target, enabled=True))
    assert created.status_code == 201 and "Azure-AsyncOperation" not in created.headers
    body = created.json()
    assert body["properties"]["targetResourceUri"] == target and body["properties"]["name"] == "web-scale"
    assert body["type"] == AUTOSCALE
    assert (
        _send(clients, "PUT", rid(AUTOSCALE, "web-scale"), _setting(target, enabled=False)).status_code == 200
    )
    listed = _send(
        clients,
        "GET",
        f"/subscriptions/{rid(AUTOSCALE, 'x').split('/')[2]}/resourceGroups/{RG}/providers/{AUTOSCALE}",
    ).json()
    assert [s["name"] for s in listed["value"]] == ["web-scale"]
    assert listed["value"][0]["properties"]["enabled"] is False
    bad = _setting(target, enabled=True, low=4, high=2)
    assert _send(clients, "PUT", rid(AUTOSCALE, "bad"), bad).status_code == 400
    assert _send(clients, "DELETE", rid(AUTOSCALE, "web-scale")).status_code == 200
    assert _send(clients, "GET", rid(AUTOSCALE, "web-scale")).status_code == 404


def test_autoscale_changes_capacity_as_its_own_principal(
    events: list[dict[str, Any]], sim: ArmSimulator, clients: Clients
) -> None:
    target = rid(VMSS, "web")
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", flex_body(0)).result()
    _send(clients, "PUT", rid(AUTOSCALE, "web-scale"), _setting(target, enabled=True))
    sim.wait_idle(2)
    events.clear()
    sim.autoscale_to(target, 2)
    sim.wait_idle(2)
    vmss = clients.compute.virtual_machine_scale_sets.get(RG, "web")
    assert vmss.sku is not None and vmss.sku.capacity == 2
    vms = list(clients.compute.virtual_machines.list(RG, filter=f"'virtualMachineScaleSet/id' eq '{target}'"))
    assert len(vms) == 2
    [event] = events
    assert event["data"]["operationName"] == f"{VMSS}/write"
    assert event["data"]["claims"]["appid"] == "Microsoft.Insights/autoscaleSettings"
    assert event["data"]["httpRequest"]["method"] == "PATCH"
    patches = [r for r in sim.requests() if r.method == "PATCH"]
    assert [r.principal for r in patches] == ["Microsoft.Insights/autoscaleSettings"]


def test_autoscale_refuses_when_disabled_absent_or_out_of_bounds(sim: ArmSimulator, clients: Clients) -> None:
    target = rid(VMSS, "uni")
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(1)).result()
    with pytest.raises(AutoscaleRefused, match="no autoscale setting"):
        sim.autoscale_to(target, 2)
    _send(clients, "PUT", rid(AUTOSCALE, "uni-scale"), _setting(target, enabled=False))
    with pytest.raises(AutoscaleRefused, match="disabled"):
        sim.autoscale_to(target, 2)
    _send(clients, "PUT", rid(AUTOSCALE, "uni-scale"), _setting(target, enabled=True, high=3))
    with pytest.raises(AutoscaleRefused, match="outside"):
        sim.autoscale_to(target, 4)
    sim.autoscale_to(target, 3)
    sim.wait_idle(2)
    assert [vm.instance_id for vm in clients.compute.virtual_machine_scale_set_vms.list(RG, "uni")] == [
        "0",
        "1",
        "2",
    ]


def test_a_patch_without_profiles_is_refused_unless_switched_off(sim: ArmSimulator, clients: Clients) -> None:
    target = rid(VMSS, "web")
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", flex_body(0)).result()
    setting = _setting(target, enabled=True)
    _send(clients, "PUT", rid(AUTOSCALE, "web-scale"), setting)
    bare = _send(clients, "PATCH", rid(AUTOSCALE, "web-scale"), {"properties": {"enabled": False}})
    assert bare.status_code == 400 and bare.json()["error"]["target"] == "profiles"
    whole = {"properties": {"enabled": False, "profiles": setting["properties"]["profiles"]}}
    assert _send(clients, "PATCH", rid(AUTOSCALE, "web-scale"), whole).status_code == 200

    with owned(
        ArmSimulator(**CONVENIENT, lro_duration_s=0.0, autoscale_patch_needs_profiles=False)
    ) as lenient:
        other = make_clients(lenient)
        other.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", flex_body(0)).result()
        _send(other, "PUT", rid(AUTOSCALE, "web-scale"), setting)
        merged = _send(other, "PATCH", rid(AUTOSCALE, "web-scale"), {"properties": {"enabled": False}})
        assert merged.status_code == 200 and merged.json()["properties"]["profiles"]
