"""Virtual networks and subnets, and the explicit-outbound rule for Flexible scale sets."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network.models import Subnet
from sim_helpers import (
    CONVENIENT,
    RG,
    Clients,
    flex_body,
    make_clients,
    nic_body,
    owned,
    rid,
    subnet,
    uniform_body,
    vnet_body,
)

from sim import ArmSimulator

VNET = "Microsoft.Network/virtualNetworks"
NAT = rid("Microsoft.Network/natGateways", "nat")
ROUTES = rid("Microsoft.Network/routeTables", "to-firewall")


def _on_subnet(body: Any, subnet_id: str) -> Any:
    ipconfig = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ][0]["properties"]["ipConfigurations"][0]
    ipconfig["properties"]["subnet"]["id"] = subnet_id
    return body


def test_subnets_inline_and_as_child_resources(sim: ArmSimulator, clients: Clients) -> None:
    network = clients.network
    vnet: Any = network.virtual_networks.begin_create_or_update(
        RG, "v", vnet_body(subnet("s", "10.0.0.0/24", natGateway=NAT))
    ).result()
    [inline] = vnet.properties.subnets
    assert inline.id == f"{rid(VNET, 'v')}/subnets/s" and inline.properties.nat_gateway.id == NAT
    body = Subnet({"properties": {"addressPrefix": "10.0.1.0/24", "routeTable": {"id": ROUTES}}})
    added: Any = network.subnets.begin_create_or_update(RG, "v", "t", body).result()
    assert added.id == f"{rid(VNET, 'v')}/subnets/t" and added.properties.route_table.id == ROUTES
    assert sorted(str(s.name) for s in network.subnets.list(RG, "v")) == ["s", "t"]
    got: Any = network.subnets.get(RG, "v", "t")
    assert got.properties.address_prefix == "10.0.1.0/24" and got.etag
    network.subnets.begin_delete(RG, "v", "t").result()
    assert [s.name for s in network.subnets.list(RG, "v")] == ["s"]


def test_a_subnet_in_use_cannot_be_deleted(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.virtual_networks.begin_create_or_update(
        RG, "v", vnet_body(subnet("s", "10.0.0.0/24"))
    ).result()
    clients.network.network_interfaces.begin_create_or_update(RG, "n", nic_body()).result()
    with pytest.raises(HttpResponseError) as caught:
        clients.network.subnets.begin_delete(RG, "v", "s")
    assert caught.value.status_code == 400 and caught.value.error is not None
    assert caught.value.error.code == "InUseSubnetCannotBeDeleted"


@pytest.mark.parametrize(
    ("references", "public_ip", "refused"),
    [
        ({}, False, True),
        ({}, True, False),
        ({"natGateway": NAT}, False, False),
        ({"routeTable": ROUTES}, False, False),
    ],
)
def test_flexible_sets_need_explicit_outbound(
    sim: ArmSimulator, clients: Clients, references: dict[str, str], public_ip: bool, refused: bool
) -> None:
    clients.network.virtual_networks.begin_create_or_update(
        RG, "v", vnet_body(subnet("s", "10.0.0.0/24", **references))
    ).result()
    body = _on_subnet(flex_body(0, public_ip=public_ip), f"{rid(VNET, 'v')}/subnets/s")
    sets = clients.compute.virtual_machine_scale_sets
    if not refused:
        sets.begin_create_or_update(RG, "flex", body).result()
        return
    with pytest.raises(HttpResponseError) as caught:
        sets.begin_create_or_update(RG, "flex", body)
    assert caught.value.status_code == 400 and caught.value.error is not None
    assert caught.value.error.code == "OutboundConnectivityNotEnabledOnVM"
    assert "No outbound connectivity configured for virtual machine" in str(caught.value.error.message)
    # Uniform sets and subnets the simulator does not hold are not judged.
    sets.begin_create_or_update(
        RG, "uni", _on_subnet(uniform_body(0, public_ip=False), f"{rid(VNET, 'v')}/subnets/s")
    ).result()
    unknown = f"{rid(VNET, 'not-simulated')}/subnets/x"
    sets.begin_create_or_update(RG, "elsewhere", _on_subnet(flex_body(0, public_ip=False), unknown)).result()


def test_updating_a_flexible_set_to_no_outbound_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.virtual_networks.begin_create_or_update(
        RG, "v", vnet_body(subnet("s", "10.0.0.0/24"))
    ).result()
    subnet_id = f"{rid(VNET, 'v')}/subnets/s"
    sets = clients.compute.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "flex", _on_subnet(flex_body(0), subnet_id)).result()
    with pytest.raises(HttpResponseError) as caught:
        sets.begin_create_or_update(RG, "flex", _on_subnet(flex_body(0, public_ip=False), subnet_id))
    assert caught.value.error is not None and caught.value.error.code == "OutboundConnectivityNotEnabledOnVM"


def test_unknown_subnets_are_refused_when_switched_on() -> None:
    with owned(
        ArmSimulator(**CONVENIENT, lro_duration_s=0.01, provision_delay_s=0.01, require_known_subnets=True)
    ) as strict:
        clients = make_clients(strict)
        with pytest.raises(HttpResponseError) as nic:
            clients.network.network_interfaces.begin_create_or_update(RG, "n", nic_body())
        assert nic.value.error is not None and nic.value.error.code == "InvalidResourceReference"
        with pytest.raises(HttpResponseError) as vmss:
            clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "f", flex_body(0))
        assert vmss.value.error is not None and vmss.value.error.code == "InvalidResourceReference"
