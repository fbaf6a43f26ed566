"""The simulator's bodies validate against ARM's contract (shared/specs, from the REST API swagger)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import RG, SHARED, SUB, Clients, flex_body, nic_body, pip_body, rid

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
    """A Flex set with two public-IP instances and a hand-made NIC with a public IP."""
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "webSet", flex_body(2)).result()
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-h", pip_body()).result()
    clients.network.network_interfaces.begin_create_or_update(
        RG, "nic-h", nic_body(rid("Microsoft.Network/publicIPAddresses", "pip-h"))
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
