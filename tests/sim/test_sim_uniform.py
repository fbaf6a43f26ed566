"""Uniform scale sets: instances as children of the set, NRP's scale-set views, model upgrades."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from sim_helpers import CONVENIENT, RG, SUB, SUBNET_ID, Clients, flex_body, owned, rid, uniform_body

from sim import ArmSimulator

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
INSTANCE = f"{VMSS}/virtualMachines"


def _instances(clients: Clients, name: str) -> list[Any]:
    return list(clients.compute.virtual_machine_scale_set_vms.list(RG, name))


def test_capacity_creates_numbered_instances_with_network_under_the_set(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(2)).result()
    set_id = rid(VMSS, "uni")
    instances = _instances(clients, "uni")
    assert [(vm.instance_id, vm.name) for vm in instances] == [("0", "uni_0"), ("1", "uni_1")]
    first = clients.compute.virtual_machine_scale_set_vms.get(RG, "uni", "1")
    assert first.id == f"{set_id}/virtualMachines/1" and first.type == INSTANCE
    props: Any = first.properties
    assert props.latest_model_applied is True
    assert props.os_profile.computer_name == "web000001"
    [nic_ref] = props.network_profile.network_interfaces
    assert nic_ref.id == f"{set_id}/virtualMachines/1/networkInterfaces/nic"

    network = clients.network
    nics = list(network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(RG, "uni"))
    assert sorted(str(n.id) for n in nics) == [
        f"{set_id}/virtualMachines/{i}/networkInterfaces/nic" for i in "01"
    ]
    [nic0] = network.network_interfaces.list_virtual_machine_scale_set_vm_network_interfaces(RG, "uni", "0")
    nic: Any = network.network_interfaces.get_virtual_machine_scale_set_network_interface(
        RG, "uni", "0", "nic"
    )
    assert nic.id == nic0.id and nic.properties.virtual_machine.id == f"{set_id}/virtualMachines/0"
    [ipconfig] = nic.properties.ip_configurations
    assert ipconfig.properties.subnet.id == SUBNET_ID
    pip_id = ipconfig.properties.public_ip_address.id
    assert pip_id == f"{nic.id}/ipConfigurations/ipconfig/publicIPAddresses/pip"

    pips = list(network.public_ip_addresses.list_virtual_machine_scale_set_public_ip_addresses(RG, "uni"))
    assert len(pips) == 2
    [listed] = network.public_ip_addresses.list_virtual_machine_scale_set_vm_public_ip_addresses(
        RG, "uni", "0", "nic", "ipconfig"
    )
    pip: Any = network.public_ip_addresses.get_virtual_machine_scale_set_public_ip_address(
        RG, "uni", "0", "nic", "ipconfig", "pip"
    )
    assert listed.id == pip.id == pip_id
    assert pip.properties.ip_configuration.id == ipconfig.id and pip.properties.ip_address.startswith("20.")
    # Uniform NICs and public IPs are not top-level resources of the group.
    assert list(network.network_interfaces.list(RG)) == []
    assert list(network.public_ip_addresses.list(RG)) == []


def test_scaling_out_continues_ids_and_scaling_in_deletes_the_highest(
    sim: ArmSimulator, clients: Clients
) -> None:
    sets = clients.compute.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "uni", uniform_body(2, mode=None)).result()
    sets.begin_create_or_update(RG, "uni", uniform_body(4, mode=None)).result()
    assert [vm.instance_id for vm in _instances(clients, "uni")] == ["0", "1", "2", "3"]
    clients.compute.virtual_machine_scale_set_vms.begin_delete(RG, "uni", "1").result()
    vmss = sets.get(RG, "uni")
    assert vmss.sku is not None and vmss.sku.capacity == 3
    sets.begin_create_or_update(RG, "uni", uniform_body(1, mode=None)).result()
    assert [vm.instance_id for vm in _instances(clients, "uni")] == ["0"]
    assert (
        len(
            list(
                clients.network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
                    RG, "uni"
                )
            )
        )
        == 1
    )
    sets.begin_create_or_update(RG, "uni", uniform_body(2, mode=None)).result()
    assert [vm.instance_id for vm in _instances(clients, "uni")] == ["0", "4"]


def test_model_change_then_manual_upgrade_removes_public_ips(
    events: list[dict[str, Any]], sim: ArmSimulator, clients: Clients
) -> None:
    sets = clients.compute.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "uni", uniform_body(2)).result()
    sets.begin_create_or_update(RG, "uni", uniform_body(2, public_ip=False)).result()
    stale = _instances(clients, "uni")
    assert [vm.properties.latest_model_applied for vm in stale] == [False, False]
    pips = clients.network.public_ip_addresses.list_virtual_machine_scale_set_public_ip_addresses
    assert len(list(pips(RG, "uni"))) == 2  # the old model still holds

    sim.wait_idle(2)
    events.clear()
    sets.begin_update_instances(RG, "uni", {"instanceIds": ["0"]}).result()
    sim.wait_idle(2)
    fresh = {vm.instance_id: vm.properties.latest_model_applied for vm in _instances(clients, "uni")}
    assert fresh == {"0": True, "1": False}
    assert [str(p.id).split("/virtualMachines/")[1][0] for p in pips(RG, "uni")] == ["1"]
    nic: Any = clients.network.network_interfaces.get_virtual_machine_scale_set_network_interface(
        RG, "uni", "0", "nic"
    )
    assert nic.properties.ip_configurations[0].properties.public_ip_address is None
    [event] = events  # ARM raises an action event for a POST, not a write event
    assert event["eventType"] == "Microsoft.Resources.ResourceActionSuccess"
    assert event["data"]["operationName"] == f"{VMSS}/manualUpgrade/action"
    assert event["data"]["authorization"]["action"] == f"{VMSS}/manualUpgrade/action"
    assert event["data"]["httpRequest"]["method"] == "POST"
    assert event["subject"].lower() == event["data"]["resourceUri"].lower() == rid(VMSS, "uni").lower()


def test_instance_errors(sim: ArmSimulator, clients: Clients) -> None:
    vms = clients.compute.virtual_machine_scale_set_vms
    with pytest.raises(HttpResponseError) as missing_set:
        vms.get(RG, "nope", "0")
    assert missing_set.value.status_code == 404
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(1)).result()
    with pytest.raises(HttpResponseError) as missing:
        vms.get(RG, "uni", "7")
    assert missing.value.status_code == 404
    with pytest.raises(HttpResponseError) as bad_upgrade:
        clients.compute.virtual_machine_scale_sets.begin_update_instances(RG, "uni", {"instanceIds": ["9"]})
    assert bad_upgrade.value.status_code == 400
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(1)).result()
    with pytest.raises(HttpResponseError) as flex:
        list(vms.list(RG, "flex"))
    assert flex.value.status_code == 400 and flex.value.error is not None
    assert flex.value.error.code == "OperationNotAllowed"


def test_uniform_state_exports_and_seeds_back(sim: ArmSimulator, clients: Clients) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(2)).result()
    exported = sim.export()
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.01, provision_delay_s=0.01)) as other:
        assert other.seed(exported) == len(exported["value"])
        instance = other.get_resource(
            f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{VMSS}/uni/virtualMachines/1"
        )
        assert instance is not None and instance["instanceId"] == "1"
        from sim_helpers import make_clients

        again = make_clients(other)
        again.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(3)).result()
        assert [vm.instance_id for vm in _instances(again, "uni")] == ["0", "1", "2"]
