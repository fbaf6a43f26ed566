"""The simulator's bodies validate against ARM's contract (shared/specs, from the REST API swagger).

Every NIC, public IP, VM and scale set body it generates (by PUT, by a Flexible or a Uniform
scale-out, single and in lists) and its error bodies (400, 404, 412, 429). A Uniform instance body
(VirtualMachineScaleSetVM) has no schema in shared/specs, so it is not checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import (
    CONVENIENT,
    RG,
    SHARED,
    SUB,
    Clients,
    StaticCredential,
    flex_body,
    make_clients,
    make_jwt,
    nic_body,
    owned,
    pip_body,
    principal,
    rid,
    subnet,
    uniform_body,
    vm_body,
    vnet_body,
)

from sim import ArmSimulator

VALIDATOR = SHARED / "specs" / "validate.py"
BASE = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"


def _validate(schema: str, body: Any, tmp_path: Path) -> None:
    if not VALIDATOR.is_file():
        pytest.skip(f"ARM contract validator not found at {VALIDATOR}")
    path = tmp_path / f"{schema}.json"
    path.write_text(json.dumps(body))
    result = subprocess.run(
        [sys.executable, str(VALIDATOR), schema, str(path), "--fail-on-unknown"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _get(clients: Clients, path: str, *, network: bool) -> tuple[int, Any]:
    client = clients.network if network else clients.compute
    version = "2024-05-01" if network else "2024-11-01"
    response = client.send_request(HttpRequest("GET", f"{path}?api-version={version}"))
    return response.status_code, response.json()


@pytest.fixture
def estate(sim: ArmSimulator, clients: Clients) -> Clients:
    """A Flex and a Uniform set with two public-IP instances each, and a hand-made VM, NIC and public IP."""
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "webSet", flex_body(2)).result()
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uniSet", uniform_body(2)).result()
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-h", pip_body()).result()
    clients.network.network_interfaces.begin_create_or_update(
        RG, "nic-h", nic_body(rid("Microsoft.Network/publicIPAddresses", "pip-h"))
    ).result()
    clients.network.network_interfaces.begin_create_or_update(RG, "nic-vm", nic_body()).result()
    clients.compute.virtual_machines.begin_create_or_update(
        RG, "handmade", vm_body([rid("Microsoft.Network/networkInterfaces", "nic-vm")])
    ).result()
    return clients


@pytest.mark.parametrize(
    ("schema", "collection", "network"),
    [
        ("NetworkInterface", "Microsoft.Network/networkInterfaces", True),
        ("PublicIPAddress", "Microsoft.Network/publicIPAddresses", True),
        ("VirtualMachine", "Microsoft.Compute/virtualMachines", False),
        ("VirtualMachineScaleSet", "Microsoft.Compute/virtualMachineScaleSets", False),
    ],
)
def test_single_and_list_bodies_validate(
    estate: Clients, tmp_path: Path, schema: str, collection: str, network: bool
) -> None:
    status, listing = _get(estate, f"{BASE}/{collection}", network=network)
    assert status == 200 and listing["value"]
    _validate(schema, listing, tmp_path)
    for item in listing["value"]:
        status, single = _get(estate, item["id"], network=network)
        assert status == 200
        _validate(schema, single, tmp_path)


UNIFORM = f"{BASE}/Microsoft.Compute/virtualMachineScaleSets/uniSet"


@pytest.mark.parametrize(
    ("schema", "listing"),
    [
        ("NetworkInterface", f"{UNIFORM}/networkInterfaces"),
        ("NetworkInterface", f"{UNIFORM}/virtualMachines/0/networkInterfaces"),
        ("PublicIPAddress", f"{UNIFORM}/publicipaddresses"),
        (
            "PublicIPAddress",
            f"{UNIFORM}/virtualMachines/1/networkInterfaces/nic/ipconfigurations/ipconfig/publicipaddresses",
        ),
    ],
)
def test_uniform_network_views_validate(estate: Clients, tmp_path: Path, schema: str, listing: str) -> None:
    status, body = _get(estate, listing, network=True)
    assert status == 200 and body["value"]
    _validate(schema, body, tmp_path)
    for item in body["value"]:
        status, single = _get(estate, item["id"], network=True)
        assert status == 200 and single["id"] == item["id"]
        _validate(schema, single, tmp_path)


def test_refusals_of_new_rules_validate(estate: Clients, tmp_path: Path, sim: ArmSimulator) -> None:
    estate.network.virtual_networks.begin_create_or_update(
        RG, "v", vnet_body(subnet("closed", "10.0.0.0/24"))
    ).result()
    body = flex_body(0, public_ip=False).as_dict()
    ipconfig = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ][0]["properties"]["ipConfigurations"][0]
    ipconfig["properties"]["subnet"]["id"] = f"{rid('Microsoft.Network/virtualNetworks', 'v')}/subnets/closed"
    outbound = estate.compute.send_request(
        HttpRequest(
            "PUT",
            f"{rid('Microsoft.Compute/virtualMachineScaleSets', 'closed')}?api-version=2024-11-01",
            json=body,
        )
    )
    assert outbound.status_code == 400
    assert outbound.json()["error"]["code"] == "OutboundConnectivityNotEnabledOnVM"
    _validate("ComputeCloudError", outbound.json(), tmp_path)

    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001), principal({"appid": "contract"})
    ) as throttled:
        clients = make_clients(throttled, StaticCredential(make_jwt({"appid": "contract"})))
        path = f"{rid('Microsoft.Network/publicIPAddresses', 'none')}?api-version=2024-05-01"
        answers = [clients.network.send_request(HttpRequest("GET", path), retry_total=0) for _ in range(251)]
    assert answers[-1].status_code == 429
    _validate("CloudError", answers[-1].json(), tmp_path)
    _validate("NetworkCloudError", answers[-1].json(), tmp_path)
    _validate("ComputeCloudError", answers[-1].json(), tmp_path)


def test_error_bodies_validate(estate: Clients, tmp_path: Path) -> None:
    pip_id = rid("Microsoft.Network/publicIPAddresses", "pip-h")
    refused = estate.network.send_request(HttpRequest("DELETE", f"{pip_id}?api-version=2024-05-01"))
    assert refused.status_code == 400
    _validate("NetworkCloudError", refused.json(), tmp_path)
    stale = estate.network.send_request(
        HttpRequest(
            "PUT",
            f"{rid('Microsoft.Network/networkInterfaces', 'nic-h')}?api-version=2024-05-01",
            json=nic_body().as_dict(),
            headers={"If-Match": 'W/"stale"'},
        )
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "PreconditionFailed"
    _validate("NetworkCloudError", stale.json(), tmp_path)
    status, missing = _get(estate, f"{BASE}/Microsoft.Compute/virtualMachines/none", network=False)
    assert status == 404
    _validate("ComputeCloudError", missing, tmp_path)
