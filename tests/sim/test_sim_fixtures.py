"""Seeding from ARM JSON (the REST API examples), and reading it back through the SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sim_helpers import FIXTURES, StaticCredential

from sim import ArmSimulator

EXAMPLES = FIXTURES / "arm-examples"


def _example_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / name).read_text())["responses"]["200"]["body"]
    return body


def _clients_for(sim: ArmSimulator, subscription: str) -> tuple[Any, Any]:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    common: dict[str, Any] = {
        "base_url": sim.endpoint,
        "connection_verify": sim.ca_bundle,
        "polling_interval": 0.02,
    }
    return (
        ComputeManagementClient(StaticCredential(), subscription, **common),
        NetworkManagementClient(StaticCredential(), subscription, **common),
    )


def _subset(expected: Any, actual: Any, path: str = "$") -> None:
    """Every field of `expected` is in `actual`, unchanged."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            _subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            _subset(want, got, f"{path}[{index}]")
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


@pytest.mark.parametrize(
    "example",
    [
        "NetworkInterfaceGet.json",
        "NetworkInterfaceCreate.json",
        "PublicIpAddressGet.json",
    ],
)
def test_network_examples_seed_and_read_back_intact(sim: ArmSimulator, example: str) -> None:
    body = _example_body(example)
    sim.seed(body)
    _, network = _clients_for(sim, "subid")
    if body["type"] == "Microsoft.Network/networkInterfaces":
        fetched = network.network_interfaces.get("rg1", body["name"])
    else:
        fetched = network.public_ip_addresses.get("rg1", body["name"])
    _subset(body, fetched.as_dict() if hasattr(fetched, "as_dict") else dict(fetched))
    assert fetched.etag is not None


@pytest.mark.parametrize(
    "example",
    [
        "VirtualMachineScaleSet_Create_WithPriorityMixPolicy.json",
        "VirtualMachine_Create_WithNetworkInterfaceConfiguration.json",
    ],
)
def test_compute_examples_seed_and_read_back_intact(sim: ArmSimulator, example: str) -> None:
    body = _example_body(example)
    sim.seed(body)
    compute, _ = _clients_for(sim, "{subscription-id}")
    if body["type"] == "Microsoft.Compute/virtualMachineScaleSets":
        fetched = compute.virtual_machine_scale_sets.get("myResourceGroup", body["name"])
    else:
        fetched = compute.virtual_machines.get("myResourceGroup", body["name"])
    raw = sim.get_resource(body["id"])
    assert raw is not None
    _subset(body, raw)
    assert fetched.name == body["name"] and fetched.location == body["location"]
    assert fetched.etag == raw["etag"]


def test_seed_makes_back_references_consistent(sim: ArmSimulator) -> None:
    nic = _example_body("NetworkInterfaceGet.json")
    pip_id = nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"]
    pip = {
        "id": pip_id,
        "location": "eastus",
        "type": "Microsoft.Network/publicIPAddresses",
        "properties": {},
    }
    vm = {
        "id": nic["properties"]["virtualMachine"]["id"],
        "location": "eastus",
        "properties": {"networkProfile": {"networkInterfaces": [{"id": nic["id"]}]}},
    }
    assert sim.seed({"value": [pip, nic, vm]}) == 3
    stored_pip = sim.get_resource(pip_id)
    assert stored_pip is not None
    assert stored_pip["properties"]["ipConfiguration"]["id"] == nic["properties"]["ipConfigurations"][0]["id"]
    assert stored_pip["properties"]["provisioningState"] == "Succeeded"
    assert stored_pip["properties"]["resourceGuid"] and stored_pip["etag"]
    exported = sim.export()["value"]
    assert {doc["id"] for doc in exported} == {pip_id, nic["id"], vm["id"]}


def test_seed_rejects_unknown_types(sim: ArmSimulator) -> None:
    with pytest.raises(ValueError, match="not a resource id"):
        sim.seed({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/x"})
    assert sim.export() == {"value": []}
