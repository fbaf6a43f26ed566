"""Load balancers and application security groups as the simulator serves them: shapes and status
codes checked against ARM traffic recorded from Azure (shared/fixtures/recorded-arm), the
memberships NRP derives (backend pools, per-instance NAT rules of a Uniform set's NAT pool), and
the references and in-use rules a write meets."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from recordings import Interaction, interactions
from sim_helpers import (
    LOCATION,
    RG,
    Clients,
    asg_body,
    flex_body,
    lb_body,
    nic_body,
    pip_body,
    rid,
    uniform_body,
)

from sim import ArmSimulator

LB = "Microsoft.Network/loadBalancers"
PIP = "Microsoft.Network/publicIPAddresses"
ASG = "Microsoft.Network/applicationSecurityGroups"
VERSION = "api-version=2024-05-01"


def _recorded(cassette: str, part: str) -> list[Interaction]:
    return [i for i in interactions(cassette) if part in i.path]


def _shape(value: Any) -> Any:
    """A body with its values blanked: what must match a recording is keys, nesting and types."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("etag", "id", "resourceGuid")}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _code(caught: pytest.ExceptionInfo[HttpResponseError]) -> str:
    return str(caught.value.error.code) if caught.value.error is not None else ""


def _pip_holder(clients: Clients, name: str) -> str | None:
    """The id of what holds a public IP (its `ipConfiguration`), as ARM serves it."""
    pip = _send(clients, "GET", rid(PIP, name)).json()["properties"]
    return pip["ipConfiguration"]["id"] if "ipConfiguration" in pip else None


def _send(clients: Clients, method: str, path: str, body: Any = None, **headers: str) -> Any:
    request = HttpRequest(method, f"{path}?{VERSION}", json=body, headers=headers)
    return clients.network.send_request(request)


def _lb_put_as_recorded(clients: Clients) -> Any:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip1", pip_body()).result()
    front = {"publicIPAddress": {"id": rid(PIP, "pip1")}}
    body = {
        "location": LOCATION,
        "properties": {"frontendIPConfigurations": [{"name": "frontendConfig1", "properties": front}]},
        "sku": {"name": "Standard"},
    }
    return _send(clients, "PUT", rid(LB, "testResource"), body)


def test_a_load_balancer_reads_back_as_azure_serves_it(sim: ArmSimulator, clients: Clients) -> None:
    recorded = _recorded("loadbalancerclient.yaml", "/loadBalancers")
    created = _lb_put_as_recorded(clients)
    [put] = [r for r in recorded if r.method == "PUT" and r.status == 201]
    assert created.status_code == 201 and "azure-asyncoperation" in put.headers
    assert "azure-asyncoperation" in {k.lower() for k in created.headers}
    sim.wait_idle(10)
    got = _send(clients, "GET", rid(LB, "testResource")).json()
    [read, *_] = [r for r in recorded if r.method == "GET" and r.status == 200 and r.body]
    assert _shape(got) == _shape(read.body)
    frontend = got["properties"]["frontendIPConfigurations"][0]
    assert frontend["id"] == f"{rid(LB, 'testResource')}/frontendIPConfigurations/frontendConfig1"
    assert frontend["etag"] == got["etag"], "children carry their load balancer's etag"
    assert _pip_holder(clients, "pip1") == frontend["id"], "the frontend holds its public IP"

    # An update answers 200; a stale If-Match 412 with NRP's detail; a missing one ARM's 404.
    again = _lb_put_as_recorded(clients)
    assert again.status_code == 200
    sim.wait_idle(10)
    stale = _send(clients, "PUT", rid(LB, "testResource"), got, **{"If-Match": 'W/"invalid"'})
    [recorded_stale] = [r for r in recorded if r.status == 412]
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == recorded_stale.body["error"]["code"] == "PreconditionFailed"
    missing = _send(clients, "GET", rid(LB, "testResourcenotfound")).json()["error"]
    [recorded_missing] = [r for r in recorded if r.status == 404 and r.path.endswith("notfound")]
    assert missing["code"] == recorded_missing.body["error"]["code"] == "ResourceNotFound"
    assert missing["message"].startswith(
        "The Resource 'Microsoft.Network/loadBalancers/testResourcenotfound'"
    )

    deleted = _send(clients, "DELETE", rid(LB, "testResource"))
    [recorded_delete] = [r for r in recorded if r.method == "DELETE"]
    assert deleted.status_code == recorded_delete.status == 202
    assert {"azure-asyncoperation", "location"} <= {k.lower() for k in deleted.headers}
    sim.wait_idle(10)
    assert _pip_holder(clients, "pip1") is None


def test_a_backend_pool_is_served_and_written_at_its_own_path(sim: ArmSimulator, clients: Clients) -> None:
    recorded = _recorded("backendaddresspoolclient.yaml", "/backendAddressPools")
    _lb_put_as_recorded(clients)
    sim.wait_idle(10)
    pool_path = f"{rid(LB, 'testResource')}/backendAddressPools/testResource"

    created = _send(clients, "PUT", pool_path, {"name": "testResource", "properties": {}})
    updated = _send(clients, "PUT", pool_path, {"name": "testResource", "properties": {}})
    sim.wait_idle(10)
    got = _send(clients, "GET", pool_path)
    listed = _send(clients, "GET", f"{rid(LB, 'testResource')}/backendAddressPools")
    missing = _send(clients, "GET", pool_path + "notfound")
    deleted = _send(clients, "DELETE", pool_path)

    recorded_puts = [r.status for r in recorded if r.method == "PUT"]
    assert [created.status_code, updated.status_code] == recorded_puts == [201, 200]
    [recorded_get, *_] = [r for r in recorded if r.method == "GET" and r.status == 200]
    assert _shape(got.json()) == _shape(recorded_get.body)
    assert got.json()["id"] == pool_path
    assert [p["name"] for p in listed.json()["value"]] == ["testResource"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    assert deleted.status_code == 202 and "azure-asyncoperation" in {k.lower() for k in deleted.headers}


def _uniform_behind_lb(clients: Clients, capacity: int) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "lb-ip", pip_body()).result()
    clients.network.load_balancers.begin_create_or_update(
        RG, "lb", lb_body(public_ip=rid(PIP, "lb-ip"), nat_pools=True)
    ).result()
    body = uniform_body(capacity)
    ipconfig = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ][0]["properties"]["ipConfigurations"][0]["properties"]
    ipconfig["loadBalancerBackendAddressPools"] = [{"id": f"{rid(LB, 'lb')}/backendAddressPools/pool"}]
    ipconfig["loadBalancerInboundNatPools"] = [{"id": f"{rid(LB, 'lb')}/inboundNatPools/ssh"}]
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", body).result()


def test_a_uniform_set_behind_a_load_balancer_is_in_its_pool_with_a_nat_port_per_instance(
    sim: ArmSimulator, clients: Clients
) -> None:
    _uniform_behind_lb(clients, 2)
    sim.wait_idle(10)
    lb = _send(clients, "GET", rid(LB, "lb")).json()["properties"]
    nics = {
        nic.id: nic
        for nic in clients.network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
            RG, "set"
        )
    }
    ipconfigs = sorted(f"{nic_id}/ipConfigurations/ipconfig" for nic_id in nics)
    [pool] = lb["backendAddressPools"]
    assert sorted(c["id"] for c in pool["properties"]["backendIPConfigurations"]) == ipconfigs
    rules = {r["name"]: r["properties"] for r in lb["inboundNatRules"]}
    assert {n: (r["frontendPort"], r["backendPort"]) for n, r in rules.items()} == {
        "ssh.0": (50000, 22),
        "ssh.1": (50001, 22),
    }
    assert sorted(r["backendIPConfiguration"]["id"] for r in rules.values()) == ipconfigs
    for nic in nics.values():
        [rule] = nic.ip_configurations[0].load_balancer_inbound_nat_rules
        assert rule.id.startswith(f"{rid(LB, 'lb')}/inboundNatRules/ssh.")
    front = lb["frontendIPConfigurations"][0]["properties"]
    assert [r["id"].rsplit("/", 1)[1] for r in front["loadBalancingRules"]] == ["http"]
    assert [r["id"].rsplit("/", 1)[1] for r in front["inboundNatPools"]] == ["ssh"]

    with pytest.raises(HttpResponseError) as in_use:
        clients.network.load_balancers.begin_delete(RG, "lb").result()
    assert _code(in_use) == "LoadBalancerInUseByVirtualMachineScaleSet"
    without_pool = lb_body(public_ip=rid(PIP, "lb-ip"), pools=("other",), nat_pools=True)
    without_pool["properties"]["loadBalancingRules"] = []
    with pytest.raises(HttpResponseError) as pool_in_use:
        clients.network.load_balancers.begin_create_or_update(RG, "lb", without_pool).result()
    assert "Cannot remove backend address pool pool from load balancer" in str(pool_in_use.value.message)
    with pytest.raises(HttpResponseError) as held:
        clients.network.public_ip_addresses.begin_delete(RG, "lb-ip").result()
    assert _code(held) == "PublicIPAddressCannotBeDeleted"


def test_references_to_what_does_not_exist_are_refused(sim: ArmSimulator, clients: Clients) -> None:
    def refused(write: Any) -> str:
        with pytest.raises(HttpResponseError) as caught:
            write().result()
        return _code(caught)

    pool = {"id": f"{rid(LB, 'lb')}/backendAddressPools/pool"}
    nic = nic_body()
    nic["properties"]["ipConfigurations"][0]["properties"]["loadBalancerBackendAddressPools"] = [pool]
    put_nic = clients.network.network_interfaces.begin_create_or_update
    assert refused(lambda: put_nic(RG, "nic", nic)) == "InvalidResourceReference"
    uniform = uniform_body(0)
    uniform["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0][
        "properties"
    ]["ipConfigurations"][0]["properties"]["loadBalancerInboundNatPools"] = [
        {"id": f"{rid(LB, 'lb')}/inboundNatPools/ssh"}
    ]
    put_set = clients.compute.virtual_machine_scale_sets.begin_create_or_update
    assert refused(lambda: put_set(RG, "set", uniform)) == "InvalidResourceReference"
    dangling_probe = lb_body()
    dangling_probe["properties"]["probes"] = []
    put_lb = clients.network.load_balancers.begin_create_or_update
    assert refused(lambda: put_lb(RG, "lb", dangling_probe)) == "InvalidResourceReference"

    put_lb(RG, "lb", lb_body()).result()
    assert put_nic(RG, "nic", nic).result().name == "nic", "once the pool exists the NIC joins it"
    asg = {"id": rid(ASG, "web")}
    nic["properties"]["ipConfigurations"][0]["properties"]["applicationSecurityGroups"] = [asg]
    assert refused(lambda: put_nic(RG, "nic", nic)) == "InvalidResourceReference"


def test_a_flexible_sets_instances_carry_its_groups_and_pools(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.load_balancers.begin_create_or_update(RG, "lb", lb_body()).result()
    clients.network.application_security_groups.begin_create_or_update(RG, "web", asg_body()).result()
    body = flex_body(2)
    ipconfig = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ][0]["properties"]["ipConfigurations"][0]["properties"]
    ipconfig["loadBalancerBackendAddressPools"] = [{"id": f"{rid(LB, 'lb')}/backendAddressPools/pool"}]
    ipconfig["applicationSecurityGroups"] = [{"id": rid(ASG, "web")}]
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", body).result()
    sim.wait_idle(10)

    nics = list(clients.network.network_interfaces.list(RG))
    assert len(nics) == 2
    for nic in nics:
        [config] = nic.ip_configurations
        assert [g.id for g in config.application_security_groups] == [rid(ASG, "web")]
        assert [p.id for p in config.load_balancer_backend_address_pools] == [
            ipconfig["loadBalancerBackendAddressPools"][0]["id"]
        ]
    members = clients.network.load_balancers.get(RG, "lb").backend_address_pools[0].backend_ip_configurations
    assert sorted(m.id for m in members) == sorted(n.ip_configurations[0].id for n in nics)
    with pytest.raises(HttpResponseError) as in_use:
        clients.network.application_security_groups.begin_delete(RG, "web").result()
    assert in_use.value.status_code == 400
