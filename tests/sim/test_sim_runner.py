"""Counters over HTTP, the standalone runner (`python -m sim serve`), and seeding from files."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from azure.core.rest import HttpRequest
from sim_helpers import (
    CONVENIENT,
    RG,
    SUB,
    TEST_PRINCIPAL,
    Clients,
    StaticCredential,
    flex_body,
    owned,
    pip_body,
    rid,
)

from sim import ArmSimulator

ROOT = Path(__file__).resolve().parents[2]
PIP = "Microsoft.Network/publicIPAddresses"


def _get_json(sim: ArmSimulator, path: str) -> Any:
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    with urllib.request.urlopen(f"{sim.endpoint}{path}", context=context, timeout=5) as answer:
        return json.loads(answer.read())


def test_counters_and_request_log_over_http(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    clients.network.public_ip_addresses.get(RG, "pip")
    counted = _get_json(sim, "/_sim/counters")
    assert counted == sim.counters()
    assert counted["byMethod"]["PUT"] == 1 and counted["byMethod"]["GET"] >= 1
    assert counted["byOperation"][f"{PIP}/write"] == 1
    assert counted["byResourceType"][PIP] >= 2
    log = _get_json(sim, "/_sim/requests")["value"]
    assert log[0]["method"] == "PUT" and log[0]["path"] == rid(PIP, "pip") and log[0]["status"] == 201
    assert len(log) == counted["total"]  # the /_sim/ reads themselves are not counted


def _read_line(process: subprocess.Popen[str], prefix: str, deadline: float) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line.split(" ", 1)[1].strip()
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} line from the runner")


def test_standalone_runner_serves_a_seeded_estate_until_interrupted(tmp_path: Path) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    seed = tmp_path / "estate.json"
    vmss = flex_body(0).as_dict()
    vmss.update({"id": rid("Microsoft.Compute/virtualMachineScaleSets", "seeded"), "name": "seeded"})
    seed.write_text(json.dumps([vmss]))
    process = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "sim",
                "serve",
                "--seed",
                str(seed),
                "--throttling",
                "--time-scale",
                "10",
            ),
            *("--authorization", "--owner", TEST_PRINCIPAL),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        endpoint = _read_line(process, "endpoint ", deadline)
        bundle = _read_line(process, "ca_bundle ", deadline)
        assert _read_line(process, "seeded ", deadline) == "1"
        assert endpoint.startswith("https://127.0.0.1:")
        compute = ComputeManagementClient(
            StaticCredential(), SUB, base_url=endpoint, connection_verify=bundle
        )
        assert [s.name for s in compute.virtual_machine_scale_sets.list(RG)] == ["seeded"]
        answer = compute.send_request(
            HttpRequest(
                "GET", f"{rid('Microsoft.Compute/virtualMachineScaleSets', 'seeded')}?api-version=2024-11-01"
            )
        )
        assert "x-ms-ratelimit-remaining-subscription-global-reads" in answer.headers
        assert "x-ms-ratelimit-remaining-subscription-reads" not in answer.headers, "as recorded: global only"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def test_the_runners_switches_default_as_the_simulator_does() -> None:
    from sim.cli import _parser

    defaults = _parser().parse_args([])
    assert defaults.throttling and not defaults.nic_update_long_running  # ArmSimulator's defaults
    changed = _parser().parse_args(["--no-throttling", "--nic-update-long-running"])
    assert not changed.throttling and changed.nic_update_long_running
    assert _parser().parse_args(["--throttling"]).throttling  # the flag of old still parses
    settings = ArmSimulator().settings
    assert (defaults.list_lag, defaults.graph_lag, defaults.events_at) == (
        settings.list_lag_s,
        settings.graph_lag_s,
        settings.events_at,
    )
    convenient = _parser().parse_args(["--list-lag", "0", "--graph-lag", "0", "--events-at", "completion"])
    assert (convenient.list_lag, convenient.graph_lag, convenient.events_at) == (0, 0, "completion")


SUBNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
SUBNET = rid("Microsoft.Network/virtualNetworks", "v") + "/subnets/s"
AZ_VMSS_LIST = [
    {
        "id": rid("Microsoft.Compute/virtualMachineScaleSets", "fromCli"),
        "name": "fromCli",
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": "westeurope",
        "resourceGroup": RG,
        "tags": {"remediation.mode": "strip"},
        "sku": {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 0},
        "orchestrationMode": "Flexible",
        "provisioningState": "Succeeded",
        "uniqueId": "8f0b6d2a-0000-4000-8000-000000000001",
        "platformFaultDomainCount": 1,
        "virtualMachineProfile": {
            "osProfile": {"computerNamePrefix": "cli", "adminUsername": "azureuser"},
            "networkProfile": {
                "networkApiVersion": "2020-11-01",
                "networkInterfaceConfigurations": [
                    {
                        "name": "nic",
                        "primary": True,
                        "ipConfigurations": [
                            {
                                "name": "ipconfig",
                                "primary": True,
                                "subnet": {
                                    "id": SUBNET,
                                    "resourceGroup": RG,
                                },
                                "publicIPAddressConfiguration": {"name": "pip", "idleTimeoutInMinutes": 15},
                            }
                        ],
                    }
                ],
            },
        },
    }
]
AZ_NIC_LIST = [
    {
        "id": rid("Microsoft.Network/networkInterfaces", "cli-nic"),
        "name": "cli-nic",
        "type": "Microsoft.Network/networkInterfaces",
        "location": "westeurope",
        "resourceGroup": RG,
        "etag": 'W/"abc"',
        "provisioningState": "Succeeded",
        "ipConfigurations": [
            {
                "name": "ipconfig1",
                "id": rid("Microsoft.Network/networkInterfaces", "cli-nic") + "/ipConfigurations/ipconfig1",
                "etag": 'W/"abc"',
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "privateIPAddress": "10.0.0.4",
                "privateIPAllocationMethod": "Dynamic",
                "primary": True,
                "resourceGroup": RG,
            }
        ],
    }
]


def test_seed_file_takes_az_list_output_and_exports_round_trip(
    tmp_path: Path, sim: ArmSimulator, clients: Clients
) -> None:
    (tmp_path / "vmss.json").write_text(json.dumps(AZ_VMSS_LIST))
    (tmp_path / "nics.json").write_text(json.dumps(AZ_NIC_LIST))
    assert sim.seed_file(tmp_path / "vmss.json") == 1
    assert sim.seed_file(tmp_path / "nics.json") == 1
    vmss: Any = clients.compute.virtual_machine_scale_sets.get(RG, "fromCli")
    assert vmss.tags == {"remediation.mode": "strip"} and vmss.properties.orchestration_mode == "Flexible"
    ipconfig = vmss.properties.virtual_machine_profile.network_profile.network_interface_configurations[
        0
    ].properties.ip_configurations[0]
    assert ipconfig.properties.public_ip_address_configuration.properties.idle_timeout_in_minutes == 15
    nic: Any = clients.network.network_interfaces.get(RG, "cli-nic")
    assert nic.properties.ip_configurations[0].properties.private_ip_address == "10.0.0.4"
    exported = tmp_path / "export.json"
    sim.export_file(exported)
    with owned(ArmSimulator(**CONVENIENT)) as other:
        assert other.seed_file(exported) == 2
        assert other.get_resource(nic.id) == sim.get_resource(nic.id)
