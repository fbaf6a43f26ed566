"""Flexible scale sets: instances created and deleted by the platform, and hand-attached VMs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from sim_helpers import (
    CONVENIENT,
    RG,
    SUBNET_ID,
    Clients,
    flex_body,
    make_clients,
    nic_body,
    owned,
    rid,
    vm_body,
)

from sim import ArmSimulator

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
VM = "Microsoft.Compute/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"


def _set_filter(name: str) -> str:
    return f"'virtualMachineScaleSet/id' eq '{rid(VMSS, name)}'"


def _members(clients: Clients, name: str) -> list[Any]:
    return list(clients.compute.virtual_machines.list(RG, filter=_set_filter(name)))


def _hand_attached_vm(clients: Clients, set_name: str, vm_name: str) -> None:
    clients.network.network_interfaces.begin_create_or_update(RG, f"{vm_name}-nic", nic_body()).result()
    clients.compute.virtual_machines.begin_create_or_update(
        RG, vm_name, vm_body([rid(NIC, f"{vm_name}-nic")], scale_set_id=rid(VMSS, set_name))
    ).result()


def test_scale_out_creates_instances_shaped_like_flex_ones(sim: ArmSimulator, clients: Clients) -> None:
    vmss = clients.compute.virtual_machine_scale_sets.begin_create_or_update(
        RG, "webSet", flex_body(2)
    ).result()
    assert vmss.properties is not None and vmss.properties.provisioning_state == "Succeeded"
    assert vmss.properties.unique_id and vmss.properties.time_created

    vms = _members(clients, "webSet")
    assert len(vms) == 2
    for vm in vms:
        assert re.fullmatch(r"webSet_[0-9a-f]{8}", vm.name)
        props = vm.properties
        assert props.virtual_machine_scale_set.id == rid(VMSS, "webSet")
        assert props.hardware_profile.vm_size == "Standard_A8m_v2"
        assert re.fullmatch(r"web[a-z0-9]{6}", props.os_profile.computer_name)
        assert props.network_profile.network_api_version == "2020-11-01"
        assert props.network_profile.network_interface_configurations[0].name == "{vmss-name}"
        assert props.time_created and props.vm_id
        [nic_ref] = props.network_profile.network_interfaces
        assert nic_ref.properties.delete_option == "Delete"

        nic_name = nic_ref.id.rsplit("/", 1)[1]
        assert re.fullmatch(r"webse\d{4}Nic-[0-9a-f]{8}", nic_name)
        assert not nic_name.startswith(vm.name)
        nic: Any = clients.network.network_interfaces.get(RG, nic_name)
        assert nic.properties.virtual_machine.id == vm.id
        [ipconfig] = nic.properties.ip_configurations
        assert ipconfig.properties.subnet.id == SUBNET_ID
        assert ipconfig.properties.primary is True

        pip_name = ipconfig.properties.public_ip_address.id.rsplit("/", 1)[1]
        pip: Any = clients.network.public_ip_addresses.get(RG, pip_name)
        assert pip.sku.name == "Standard"
        assert pip.properties.public_ip_allocation_method == "Static"
        assert pip.properties.ip_address.startswith("20.")
        assert pip.properties.idle_timeout_in_minutes == 15
        assert pip.properties.ip_configuration.id == ipconfig.id
    assert len(list(clients.network.network_interfaces.list(RG))) == 2
    assert len(list(clients.network.public_ip_addresses.list(RG))) == 2


def test_set_stays_updating_until_its_instances_exist() -> None:
    # Instances of a simulator of its own take 1 s, so the set is surely still creating them.
    with owned(ArmSimulator(**CONVENIENT, provision_delay_s=1.0, lro_duration_s=0.01)) as sim:
        clients = make_clients(sim)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "slowSet", flex_body(1), polling=False
        )
        early = sim.get_resource(rid(VMSS, "slowSet"))
        assert early is not None and early["properties"]["provisioningState"] == "Creating"
        assert _members(clients, "slowSet") == []
        sim.wait_idle(5)
        done = sim.get_resource(rid(VMSS, "slowSet"))
        assert done is not None and done["properties"]["provisioningState"] == "Succeeded"
        assert len(_members(clients, "slowSet")) == 1


def test_filter_returns_exactly_the_sets_vms_hand_attached_included(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "setA", flex_body(2)).result()
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "setB", flex_body(1)).result()
    _hand_attached_vm(clients, "setA", "manual-1")
    clients.network.network_interfaces.begin_create_or_update(RG, "loose-nic", nic_body()).result()
    clients.compute.virtual_machines.begin_create_or_update(
        RG, "loose", vm_body([rid(NIC, "loose-nic")])
    ).result()

    names = sorted(vm.name for vm in _members(clients, "setA"))
    assert len(names) == 3 and "manual-1" in names
    assert all(n.startswith("setA_") for n in names if n != "manual-1")
    # The id in the filter is compared case-insensitively.
    upper = list(clients.compute.virtual_machines.list(RG, filter=_set_filter("setB").upper()))
    assert len(upper) == 1
    assert len(list(clients.compute.virtual_machines.list(RG))) == 5


def test_unsupported_filter_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    with pytest.raises(HttpResponseError) as caught:
        list(clients.compute.virtual_machines.list(RG, filter="name eq 'x'"))
    assert caught.value.status_code == 400
    assert caught.value.error is not None and "name eq 'x'" in str(caught.value.error.message)


def test_scale_in_deletes_newest_created_instances_with_their_network(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "shrink", flex_body(3)).result()
    _hand_attached_vm(clients, "shrink", "manual-1")
    oldest = min(_members(clients, "shrink"), key=lambda vm: vm.properties.time_created)
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "shrink", flex_body(1)).result()
    names = sorted(vm.name for vm in _members(clients, "shrink"))
    assert names == sorted([oldest.name, "manual-1"])
    # deleteOption Delete (the Flex default): the NICs and public IPs went with their VMs.
    assert len(list(clients.network.public_ip_addresses.list(RG))) == 1
    assert len(list(clients.network.network_interfaces.list(RG))) == 2


def test_hand_attached_vms_count_only_when_switched_on() -> None:
    with owned(
        ArmSimulator(
            **CONVENIENT, provision_delay_s=0.05, lro_duration_s=0.01, manual_vms_count_in_capacity=True
        )
    ) as counting:
        clients = make_clients(counting)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "mixed", flex_body(0)).result()
        _hand_attached_vm(clients, "mixed", "manual-1")
        vmss = clients.compute.virtual_machine_scale_sets.get(RG, "mixed")
        assert vmss.sku is not None and vmss.sku.capacity == 1
        body = flex_body(2)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "mixed", body).result()
        assert len(_members(clients, "mixed")) == 2
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "mixed", flex_body(0)).result()
        assert _members(clients, "mixed") == []


def test_attaching_to_a_missing_or_uniform_set_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.network_interfaces.begin_create_or_update(RG, "n1", nic_body()).result()
    with pytest.raises(HttpResponseError) as missing:
        clients.compute.virtual_machines.begin_create_or_update(
            RG, "vm1", vm_body([rid(NIC, "n1")], scale_set_id=rid(VMSS, "nope"))
        )
    assert missing.value.status_code == 400
    uniform = flex_body(0)
    uniform["properties"]["orchestrationMode"] = "Uniform"
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform).result()
    with pytest.raises(HttpResponseError) as not_flex:
        clients.compute.virtual_machines.begin_create_or_update(
            RG, "vm1", vm_body([rid(NIC, "n1")], scale_set_id=rid(VMSS, "uni"))
        )
    assert not_flex.value.status_code == 400
    assert "Flexible" in str(not_flex.value.error.message)  # type: ignore[union-attr]


def test_deleting_an_instance_takes_its_network_and_lowers_capacity(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "evict", flex_body(2)).result()
    victim, survivor = _members(clients, "evict")
    clients.compute.virtual_machines.begin_delete(RG, victim.name).result()
    assert [vm.name for vm in _members(clients, "evict")] == [survivor.name]
    assert len(list(clients.network.public_ip_addresses.list(RG))) == 1
    vmss = clients.compute.virtual_machine_scale_sets.get(RG, "evict")
    assert vmss.sku is not None and vmss.sku.capacity == 1


def test_deleting_the_set_deletes_its_instances_but_not_hand_attached(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "gone", flex_body(2)).result()
    _hand_attached_vm(clients, "gone", "manual-1")
    clients.compute.virtual_machine_scale_sets.begin_delete(RG, "gone").result()
    assert [vm.name for vm in clients.compute.virtual_machines.list(RG)] == ["manual-1"]
    assert list(clients.network.public_ip_addresses.list(RG)) == []


def test_child_events_are_switchable(
    events: list[dict[str, Any]], sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "quiet", flex_body(2)).result()
    sim.wait_idle(2)
    assert [e["data"]["operationName"] for e in events] == [f"{VMSS}/write"]

    with owned(
        ArmSimulator(**CONVENIENT, provision_delay_s=0.05, lro_duration_s=0.01, child_events=True)
    ) as chatty:
        loud: list[dict[str, Any]] = []
        chatty.add_event_sink(loud.append)
        make_clients(chatty).compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "loud", flex_body(1)
        ).result()
        chatty.wait_idle(2)
    operations = sorted(e["data"]["operationName"] for e in loud)
    assert operations == sorted([f"{PIP}/write", f"{NIC}/write", f"{VM}/write", f"{VMSS}/write"])
    child = next(e for e in loud if e["data"]["operationName"] == f"{VM}/write")
    assert child["data"]["claims"] == {}
    assert "httpRequest" not in child["data"]


def test_invalid_flex_bodies_are_refused(sim: ArmSimulator, clients: Clients) -> None:
    body = flex_body(1)
    del body["properties"]["virtualMachineProfile"]
    with pytest.raises(HttpResponseError) as caught:
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "bad", body)
    assert caught.value.status_code == 400
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
    uniform = flex_body(0)
    uniform["properties"]["orchestrationMode"] = "Uniform"
    with pytest.raises(HttpResponseError) as change:
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", uniform)
    assert change.value.error is not None and change.value.error.code == "PropertyChangeNotAllowed"


def test_vmss_collection_lists_and_404s(sim: ArmSimulator, clients: Clients) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "one", flex_body(0)).result()
    assert [s.name for s in clients.compute.virtual_machine_scale_sets.list(RG)] == ["one"]
    response = clients.compute.send_request(HttpRequest("GET", rid(VMSS, "two") + "?api-version=2026-04-01"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"
