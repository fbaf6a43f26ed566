"""Shared pieces of the simulator tests: a credential, clients, ids and fixture loading.

Kept out of conftest.py so tests can import them by name (pytest puts this
directory on sys.path; the file name is unique in the test tree on purpose).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachine, VirtualMachineScaleSet
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    ApplicationSecurityGroup,
    LoadBalancer,
    NetworkInterface,
    PublicIPAddress,
    VirtualNetwork,
)

from sim import ArmSimulator

# The convenient readings of Azure, for the simulator's tests that are not about them (the only
# place they may be used): lists and Resource Graph current, events when operations complete.
# The tests of the adversarial defaults build simulators without them (test_sim_consistency.py).
CONVENIENT: dict[str, Any] = {
    "list_lag_s": 0.0,
    "graph_lag_s": 0.0,
    "events_at": "completion",
    "principal_rate_headers": True,  # these tests read the caller's bucket from its header
}

SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-sim"
LOCATION = "westeurope"
SUBNET_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
)
POLL_S = 0.02
SHARED = Path(__file__).resolve().parents[3] / "shared"  # ARM's JSON Schemas (specs/), beside the clone
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # published payloads, in the repo


def rid(resource_type: str, name: str, *, group: str = RG) -> str:
    """The id of a resource of `resource_type` (e.g. Microsoft.Network/networkInterfaces)."""
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/{resource_type}/{name}"


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT carrying `claims` (the simulator reads claims, it never verifies)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.signature"


class StaticCredential:
    """A TokenCredential that hands out one fixed token (opaque or a JWT)."""

    def __init__(self, token: str = "opaque-test-token") -> None:
        self.token = token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


def principal(claims: dict[str, Any]) -> str:
    """The object id the simulator authorizes a JWT with these claims as (its oid, else appid)."""
    return ArmSimulator.principal_of(make_jwt(claims))


# The object id of the tests' default credential (an opaque token: the simulator names it by a digest).
TEST_PRINCIPAL = ArmSimulator.principal_of(StaticCredential().token)


def owned(sim: ArmSimulator, *principals: str) -> ArmSimulator:
    """`sim` (not yet started) with each principal, by default the tests' own credential, made Owner
    at the root scope "/"; its request log starts empty again, so a test counts only its own requests."""
    assert sim.authorization, "the simulator's tests run with authorization on (tests/sim fixtures)"
    for each in principals or (TEST_PRINCIPAL,):
        sim.grant(each, "Owner", "/")
    sim.reset()
    return sim


@dataclass(frozen=True)
class Clients:
    compute: ComputeManagementClient
    network: NetworkManagementClient


def make_clients(sim: ArmSimulator, credential: StaticCredential | None = None) -> Clients:
    """The real SDK clients, changed only in base URL, credential, CA bundle and polling interval."""
    cred = credential or StaticCredential()
    return Clients(
        compute=ComputeManagementClient(
            cred, SUB, base_url=sim.endpoint, connection_verify=sim.ca_bundle, polling_interval=POLL_S
        ),
        network=NetworkManagementClient(
            cred, SUB, base_url=sim.endpoint, connection_verify=sim.ca_bundle, polling_interval=POLL_S
        ),
    )


def arm_example(name: str) -> dict[str, Any]:
    """One of the REST API examples in tests/fixtures/arm-examples."""
    data: dict[str, Any] = json.loads((FIXTURES / "arm-examples" / name).read_text())
    return data


def flex_body(capacity: int, *, public_ip: bool = True, prefix: str = "web") -> VirtualMachineScaleSet:
    """A Flexible scale set body like `--public-ip-per-vm`, built on the REST example's profile.

    SDK models wrap the raw JSON (and stay mutable mappings), as callers of the SDK would pass them.
    """
    body: dict[str, Any] = arm_example("VirtualMachineScaleSet_Create_WithPriorityMixPolicy.json")[
        "parameters"
    ]["parameters"]
    body["location"] = LOCATION
    body["sku"]["capacity"] = capacity
    profile = body["properties"]["virtualMachineProfile"]
    profile["osProfile"]["computerNamePrefix"] = prefix
    ipconfig = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"][
        "ipConfigurations"
    ][0]
    ipconfig["properties"]["subnet"]["id"] = SUBNET_ID
    if not public_ip:
        del ipconfig["properties"]["publicIPAddressConfiguration"]
    return VirtualMachineScaleSet(body)


def nic_body(pip_id: str | None = None, *, ipconfig: str = "ipconfig1") -> NetworkInterface:
    props: dict[str, Any] = {"subnet": {"id": SUBNET_ID}}
    if pip_id is not None:
        props["publicIPAddress"] = {"id": pip_id}
    return NetworkInterface(
        {"location": LOCATION, "properties": {"ipConfigurations": [{"name": ipconfig, "properties": props}]}}
    )


def pip_body() -> PublicIPAddress:
    return PublicIPAddress(
        {
            "location": LOCATION,
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static"},
        }
    )


def vm_body(nic_ids: list[str], *, scale_set_id: str | None = None) -> VirtualMachine:
    props: dict[str, Any] = {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "osProfile": {"computerName": "handmade", "adminUsername": "azureuser"},
        "networkProfile": {
            "networkInterfaces": [
                {"id": nic_id, "properties": {"primary": i == 0}} for i, nic_id in enumerate(nic_ids)
            ]
        },
    }
    if scale_set_id is not None:
        props["virtualMachineScaleSet"] = {"id": scale_set_id}
    return VirtualMachine({"location": LOCATION, "properties": props})


def uniform_body(
    capacity: int, *, public_ip: bool = True, mode: str | None = "Uniform"
) -> VirtualMachineScaleSet:
    """A Uniform scale set on the same profile as `flex_body` (orchestrationMode absent if mode=None)."""
    body = flex_body(capacity, public_ip=public_ip)
    props = body["properties"]
    if mode is None:
        del props["orchestrationMode"]
    else:
        props["orchestrationMode"] = mode
    props["upgradePolicy"] = {"mode": "Manual"}
    for flex_only in ("priorityMixPolicy", "platformFaultDomainCount"):
        props.pop(flex_only, None)
    network = props["virtualMachineProfile"]["networkProfile"]
    del network["networkApiVersion"]  # a Flexible-only property
    [config] = network["networkInterfaceConfigurations"]
    config["name"] = "nic"
    [ipconfig] = config["properties"]["ipConfigurations"]
    ipconfig["name"] = "ipconfig"
    if public_ip:
        ipconfig["properties"]["publicIPAddressConfiguration"]["name"] = "pip"
    return body


def vnet_body(*subnets: dict[str, Any]) -> VirtualNetwork:
    """A virtual network 10.0.0.0/16 with the given subnets (each `{"name", "properties"}`)."""
    return VirtualNetwork(
        {
            "location": LOCATION,
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": list(subnets)},
        }
    )


def subnet(name: str, prefix: str, **references: str) -> dict[str, Any]:
    """A subnet body; references such as natGateway=<id> or routeTable=<id> become `{"id": ...}`."""
    props: dict[str, Any] = {"addressPrefix": prefix}
    props.update({key: {"id": value} for key, value in references.items()})
    return {"name": name, "properties": props}


def lb_body(
    *, public_ip: str | None = None, pools: tuple[str, ...] = ("pool",), nat_pools: bool = False
) -> LoadBalancer:
    """A Standard load balancer: frontend `front` (on `public_ip` if given, else the subnet),
    backend pools, a TCP probe and rule on port 80, and with `nat_pools` an SSH NAT pool
    50000-50119 -> 22 (the architecture scale-set guides start from)."""
    lb = rid("Microsoft.Network/loadBalancers", "lb")
    front: dict[str, Any] = (
        {"publicIPAddress": {"id": public_ip}} if public_ip else {"subnet": {"id": SUBNET_ID}}
    )
    props: dict[str, Any] = {
        "frontendIPConfigurations": [{"name": "front", "properties": front}],
        "backendAddressPools": [{"name": name} for name in pools],
        "probes": [{"name": "http", "properties": {"protocol": "Tcp", "port": 80}}],
        "loadBalancingRules": [
            {
                "name": "http",
                "properties": {
                    "frontendIPConfiguration": {"id": f"{lb}/frontendIPConfigurations/front"},
                    "backendAddressPool": {"id": f"{lb}/backendAddressPools/{pools[0]}"},
                    "probe": {"id": f"{lb}/probes/http"},
                    "protocol": "Tcp",
                    "frontendPort": 80,
                    "backendPort": 80,
                },
            }
        ],
    }
    if nat_pools:
        props["inboundNatPools"] = [
            {
                "name": "ssh",
                "properties": {
                    "frontendIPConfiguration": {"id": f"{lb}/frontendIPConfigurations/front"},
                    "protocol": "Tcp",
                    "frontendPortRangeStart": 50000,
                    "frontendPortRangeEnd": 50119,
                    "backendPort": 22,
                },
            }
        ]
    return LoadBalancer({"location": LOCATION, "sku": {"name": "Standard"}, "properties": props})


def asg_body() -> ApplicationSecurityGroup:
    return ApplicationSecurityGroup({"location": LOCATION})
