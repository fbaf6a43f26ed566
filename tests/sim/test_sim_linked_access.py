"""Linked access, through the real SDK clients: a PUT or PATCH needs, on every resource its body
references, the action ARM demands for that reference (403 LinkedAuthorizationFailed otherwise),
checked at the referenced resource's own scope; and the remediator's own role (infra/) allows every
call the remediator makes, no more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azure.mgmt.compute.models import VirtualMachineScaleSetUpdate
from azure.mgmt.network.models import NetworkInterface
from sim_access_helpers import authorization_failure, caller, linked_failure, refused, scope_of, send
from sim_helpers import (
    CONVENIENT,
    LOCATION,
    RG,
    SUB,
    SUBNET_ID,
    Clients,
    asg_body,
    flex_body,
    lb_body,
    pip_body,
    rid,
    uniform_body,
)

from sim import ArmSimulator
from sim.linked_access import LINKED_ACCESS, linked_action, linked_references

NIC = "Microsoft.Network/networkInterfaces"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
NET = "rg-net"
SUBNET = rid("Microsoft.Network/virtualNetworks", "hub", group=NET) + "/subnets/default"
NSG = rid("Microsoft.Network/networkSecurityGroups", "nsg")
ASG = rid("Microsoft.Network/applicationSecurityGroups", "web")
POOL = rid("Microsoft.Network/loadBalancers", "lb") + "/backendAddressPools/pool"
IDENTITY = rid("Microsoft.ManagedIdentity/userAssignedIdentities", "app-identity", group="rg-identities")
JOIN_SUBNET = "Microsoft.Network/virtualNetworks/subnets/join/action"
JOIN_NSG = "Microsoft.Network/networkSecurityGroups/join/action"
JOIN_ASG = "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action"
JOIN_POOL = "Microsoft.Network/loadBalancers/backendAddressPools/join/action"
ASSIGN_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
NETWORK_POLLS = [
    "Microsoft.Network/locations/operations/read",
    "Microsoft.Network/locations/operationResults/read",
]
ROLE_FILE = Path(__file__).resolve().parents[2] / "infra" / "app" / "remediator-role-actions.json"


def _nic(subnet: str = SUBNET, **references: Any) -> NetworkInterface:
    """A NIC body whose ipConfiguration (it names itself, as a GET gives it back) references `subnet`."""
    ipconfig: dict[str, Any] = {
        "name": "ipconfig1",
        "id": f"{rid(NIC, 'nic')}/ipConfigurations/ipconfig1",
        "properties": {"subnet": {"id": subnet}},
    }
    nic: dict[str, Any] = {
        "location": LOCATION,
        "id": rid(NIC, "nic"),
        "properties": {"ipConfigurations": [ipconfig]},
    }
    for name, value in references.items():
        (nic["properties"] if name == "networkSecurityGroup" else ipconfig["properties"])[name] = value
    return NetworkInterface(nic)


def test_a_nic_put_needs_each_linked_action_at_the_linked_resources_scope(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.network.load_balancers.begin_create_or_update(RG, "lb", lb_body()).result()
    clients.network.application_security_groups.begin_create_or_update(RG, "web", asg_body()).result()
    app = caller(sim, "nic-writer")
    writes_nics = sim.define_role("nic writer", [f"{NIC}/read", f"{NIC}/write", *NETWORK_POLLS])
    sim.grant(app.oid, writes_nics, scope_of(RG))
    body = _nic(
        networkSecurityGroup={"id": NSG},
        loadBalancerBackendAddressPools=[{"id": POOL}],
        applicationSecurityGroups=[{"id": ASG}],
    )
    put = app.clients.network.network_interfaces.begin_create_or_update
    failure = linked_failure(refused(lambda: put(RG, "nic", body)))
    assert (failure["client"], failure["oid"]) == ("app-nic-writer", "oid-nic-writer")
    assert (failure["action"], failure["scope"]) == (f"{NIC}/write", rid(NIC, "nic"))
    assert failure["links"] == {(JOIN_SUBNET, SUBNET), (JOIN_NSG, NSG), (JOIN_POOL, POOL), (JOIN_ASG, ASG)}

    # Virtual Machine Contributor joins NSGs and load balancer pools, not application security groups,
    # and a role in the NIC's group says nothing about a subnet in another group.
    sim.grant(app.oid, "Virtual Machine Contributor", scope_of(RG))
    assert linked_failure(refused(lambda: put(RG, "nic", body)))["links"] == {
        (JOIN_SUBNET, SUBNET),
        (JOIN_ASG, ASG),
    }
    sim.grant(app.oid, sim.define_role("subnet joiner", [JOIN_SUBNET]), scope_of(NET))
    sim.grant(app.oid, sim.define_role("asg joiner", [JOIN_ASG]), ASG)
    assert put(RG, "nic", body).result().name == "nic"  # its own id and ipConfiguration ids are no links


def test_a_scale_set_put_needs_subnet_join_and_identity_assign(sim: ArmSimulator) -> None:
    app = caller(sim, "set-writer")
    sim.grant(app.oid, "Virtual Machine Contributor", scope_of(RG))
    body = flex_body(0)
    body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}
    put = app.clients.compute.virtual_machine_scale_sets.begin_create_or_update
    failure = linked_failure(refused(lambda: put(RG, "set", body)))
    assert (failure["action"], failure["scope"]) == (f"{VMSS}/write", rid(VMSS, "set"))
    assert failure["links"] == {(ASSIGN_IDENTITY, IDENTITY)}  # the subnet (SUBNET_ID, in RG) it may join
    sim.grant(app.oid, "Managed Identity Operator", IDENTITY)
    assert put(RG, "set", body).result().name == "set"
    outside = flex_body(0)
    outside["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0][
        "properties"
    ]["ipConfigurations"][0]["properties"]["subnet"]["id"] = SUBNET
    assert linked_failure(refused(lambda: put(RG, "other", outside)))["links"] == {(JOIN_SUBNET, SUBNET)}


def test_a_patch_is_checked_on_what_it_sends(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.network_interfaces.begin_create_or_update(
        RG, "nic", _nic(SUBNET_ID, networkSecurityGroup={"id": NSG})
    ).result()
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", flex_body(0)).result()
    app = caller(sim, "tagger")
    role = [f"{NIC}/read", f"{NIC}/write", f"{VMSS}/read", f"{VMSS}/write", "Microsoft.Compute/locations/*"]
    sim.grant(app.oid, sim.define_role("tagger", role), scope_of(RG))

    tagged = app.clients.network.network_interfaces.update_tags(RG, "nic", {"tags": {"a": "b"}})
    capacity = app.clients.compute.virtual_machine_scale_sets.begin_update
    capacity(RG, "set", VirtualMachineScaleSetUpdate({"sku": {"capacity": 0}})).result()

    assert tagged.tags == {"a": "b"}, "the NSG and subnet the stored NIC carries are not in the PATCH"


def test_a_patch_is_checked_on_the_merged_body_when_switched_to_merged() -> None:
    with ArmSimulator(**CONVENIENT, lro_duration_s=0.0, linked_access_on_patch="merged") as merged:
        owner, app = caller(merged, "owner"), caller(merged, "tagger")
        merged.grant(owner.oid, "Owner", "/")
        owner.clients.network.network_interfaces.begin_create_or_update(
            RG, "nic", _nic(SUBNET_ID, networkSecurityGroup={"id": NSG})
        ).result()
        owner.clients.compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "set", flex_body(0)
        ).result()
        role = merged.define_role(
            "tagger",
            [f"{NIC}/read", f"{NIC}/write", JOIN_SUBNET, f"{VMSS}/write", "Microsoft.Compute/locations/*"],
        )
        tagging = merged.grant(app.oid, role, scope_of(RG))
        tags = refused(
            lambda: app.clients.network.network_interfaces.update_tags(RG, "nic", {"tags": {"a": "b"}})
        )
        assert linked_failure(tags)["links"] == {(JOIN_NSG, NSG)}  # the NSG is only in the stored NIC
        # As scale-to-zero sends it: the capacity alone, yet the merged set joins its subnet.
        merged.revoke(tagging)
        capacity_role = merged.define_role("capacity", [f"{VMSS}/write", "Microsoft.Compute/locations/*"])
        merged.grant(app.oid, capacity_role, scope_of(RG))
        capacity = app.clients.compute.virtual_machine_scale_sets.begin_update
        assert linked_failure(
            refused(lambda: capacity(RG, "set", VirtualMachineScaleSetUpdate({"sku": {"capacity": 0}})))
        )["links"] == {(JOIN_SUBNET, SUBNET_ID)}


def test_the_table_is_one_row_per_type_and_finds_references() -> None:
    assert len({row.resource_type.lower() for row in LINKED_ACCESS}) == len(LINKED_ACCESS)
    for row in LINKED_ACCESS:
        assert row.action.startswith(row.resource_type.split("/", 1)[0] + "/") and row.source
    assert linked_action("microsoft.network/VIRTUALNETWORKS/subnets") == JOIN_SUBNET
    assert linked_action("Microsoft.Compute/virtualMachines") is None
    body = {
        "id": rid(VMSS, "set"),
        "identity": {"userAssignedIdentities": {IDENTITY: {}}},
        "properties": {
            "a": [{"id": SUBNET}, {"id": SUBNET}, {"id": f"{rid(VMSS, 'set')}/virtualMachines/0"}]
        },
        "other": {"id": rid("Microsoft.Compute/virtualMachines", "vm")},
    }
    assert linked_references(body, rid(VMSS, "set")) == [(ASSIGN_IDENTITY, IDENTITY), (JOIN_SUBNET, SUBNET)]


def test_the_remediators_role_allows_every_call_the_remediator_makes(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
    clients.compute.virtual_machine_scale_sets.begin_update(
        RG, "flex", VirtualMachineScaleSetUpdate({"sku": {"capacity": 1}})
    ).result()
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(1)).result()
    setting = rid("Microsoft.Insights/autoscalesettings", "flex-scale")
    send(clients, "PUT", setting, _autoscale(rid(VMSS, "flex")), api="api-version=2022-10-01")
    sim.wait_idle(10)
    actions = json.loads(ROLE_FILE.read_text(encoding="utf-8"))["actions"]
    remediator = caller(sim, "remediator")
    sim.grant(remediator.oid, sim.define_role("VMSS public IP remediator", actions), f"/subscriptions/{SUB}")
    compute, network = remediator.clients.compute, remediator.clients.network

    assert compute.virtual_machine_scale_sets.get(RG, "flex").name == "flex"
    assert {s.name for s in compute.virtual_machine_scale_sets.list_all()} == {"flex", "uni"}
    [vm] = compute.virtual_machines.list(RG, filter=f"'virtualMachineScaleSet/id' eq '{rid(VMSS, 'flex')}'")
    assert compute.virtual_machines.get(RG, str(vm.name)).name == vm.name
    [instance] = compute.virtual_machine_scale_set_vms.list(RG, "uni")
    assert (
        compute.virtual_machine_scale_set_vms.get(RG, "uni", str(instance.instance_id)).name == instance.name
    )
    assert list(network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(RG, "uni"))
    nic = next(
        n for n in network.network_interfaces.list(RG) if n.virtual_machine and n.virtual_machine.id == vm.id
    )
    doc = network.network_interfaces.get(RG, str(nic.name)).as_dict()
    pip_id = doc["properties"]["ipConfigurations"][0]["properties"].pop("publicIPAddress")["id"]
    assert network.public_ip_addresses.get(RG, pip_id.rsplit("/", 1)[1]).id == pip_id
    assert (
        network.network_interfaces.begin_create_or_update(RG, str(nic.name), NetworkInterface(doc))
        .result()
        .name
        == nic.name
    )
    network.public_ip_addresses.begin_delete(RG, pip_id.rsplit("/", 1)[1], polling=False)
    sim.wait_idle(5)  # accepted, not polled (as the remediator does); a list confirms it
    assert pip_id not in {p.id for p in network.public_ip_addresses.list(RG)}
    model = {
        "properties": {
            "virtualMachineProfile": {
                "networkProfile": uniform_body(1)["properties"]["virtualMachineProfile"]["networkProfile"]
            }
        }
    }
    compute.virtual_machine_scale_sets.begin_update(RG, "uni", VirtualMachineScaleSetUpdate(model)).result()
    compute.virtual_machine_scale_sets.begin_update_instances(RG, "uni", {"instanceIds": ["0"]}).result()
    compute.virtual_machine_scale_set_vms.begin_delete(RG, "uni", "0").result()
    compute.virtual_machines.begin_delete(RG, str(vm.name)).result()
    graph = {
        "subscriptions": [SUB],
        "query": "resources | where type =~ 'microsoft.compute/virtualmachinescalesets'",
    }
    answer = send(
        remediator.clients,
        "POST",
        "/providers/Microsoft.ResourceGraph/resources",
        graph,
        api="api-version=2022-10-01",
    )
    assert answer.json()["totalRecords"] == 2
    group_settings = f"{scope_of(RG)}/providers/Microsoft.Insights/autoscalesettings"
    assert send(remediator.clients, "GET", group_settings, api="api-version=2022-10-01").status_code == 200
    assert send(remediator.clients, "GET", setting, api="api-version=2022-10-01").status_code == 200
    disabled = {
        "properties": {"enabled": False, "profiles": _autoscale(rid(VMSS, "flex"))["properties"]["profiles"]}
    }
    patched = send(remediator.clients, "PATCH", setting, disabled, api="api-version=2022-10-01")
    assert patched.status_code == 200
    assert not [r for r in sim.requests() if r.status == 403], "the role lacks nothing the remediator does"
    assert all("/operationResults/" not in r.path for r in sim.requests() if "Microsoft.Compute" in r.path)
    # Nothing more: it may not create what it only strips.
    creating = refused(lambda: network.public_ip_addresses.begin_create_or_update(RG, "new", pip_body()))
    assert authorization_failure(creating)["action"] == "Microsoft.Network/publicIPAddresses/write"
    linked = {
        linked_action(t)
        for t in ("Microsoft.Network/virtualNetworks/subnets", "Microsoft.Network/networkSecurityGroups")
    }
    assert linked <= set(actions)


def _autoscale(target: str) -> dict[str, Any]:
    capacity = {"minimum": "0", "maximum": "3", "default": "1"}
    return {
        "location": LOCATION,
        "properties": {
            "enabled": True,
            "targetResourceUri": target,
            "profiles": [{"name": "default", "capacity": capacity, "rules": []}],
        },
    }
