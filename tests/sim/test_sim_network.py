"""NRP rules the remediator meets when it strips a public IP from a NIC."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from sim_helpers import CONVENIENT, RG, Clients, make_clients, nic_body, owned, pip_body, rid, vm_body

from sim import ArmSimulator

NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"


def _attached_pair(clients: Clients, nic: str = "nic-1", pip: str = "pip-1") -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, pip, pip_body()).result()
    clients.network.network_interfaces.begin_create_or_update(RG, nic, nic_body(rid(PIP, pip))).result()


def test_nic_put_sets_the_public_ip_back_reference(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    pip = clients.network.public_ip_addresses.get(RG, "pip-1")
    assert pip.properties is not None and pip.properties.ip_configuration is not None
    assert pip.properties.ip_configuration.id == f"{rid(NIC, 'nic-1')}/ipConfigurations/ipconfig1"


def test_deleting_an_attached_public_ip_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    with pytest.raises(HttpResponseError) as caught:
        clients.network.public_ip_addresses.begin_delete(RG, "pip-1").result()
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "PublicIPAddressCannotBeDeleted"
    message = str(caught.value.error.message)
    assert message.startswith(f"Public IP address {rid(PIP, 'pip-1')} can not be deleted since it is still")
    assert f"{rid(NIC, 'nic-1')}/ipConfigurations/ipconfig1" in message
    assert "disassociate/detach the Public IP address" in message


def test_strip_then_delete_once_the_nic_update_has_completed(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    nic = clients.network.network_interfaces.get(RG, "nic-1")
    stripped = clients.network.network_interfaces.begin_create_or_update(
        RG, "nic-1", nic_body(None), headers={"If-Match": nic.etag}
    ).result()
    assert stripped.properties is not None and stripped.properties.ip_configurations is not None
    assert stripped.properties.ip_configurations[0].properties is not None
    assert stripped.properties.ip_configurations[0].properties.public_ip_address is None
    pip = clients.network.public_ip_addresses.get(RG, "pip-1")
    assert pip.properties is not None and pip.properties.ip_configuration is None
    clients.network.public_ip_addresses.begin_delete(RG, "pip-1").result()
    assert sim.get_resource(rid(PIP, "pip-1")) is None


def test_public_ip_is_held_until_the_nic_update_completes() -> None:
    # A simulator of its own whose operations outlast the test, NIC updates long-running: the detach
    # is surely pending. (Answered as recorded from Azure, synchronously, it is done at once.)
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=5.0, nic_update_long_running=True)) as slow:
        nic_doc = {"id": rid(NIC, "nic-1"), **nic_body(rid(PIP, "pip-1")).as_dict()}
        slow.seed([{"id": rid(PIP, "pip-1"), "location": "westeurope", "properties": {}}, nic_doc])
        clients = make_clients(slow)
        clients.network.network_interfaces.begin_create_or_update(RG, "nic-1", nic_body(None), polling=False)
        with pytest.raises(HttpResponseError) as early:
            clients.network.public_ip_addresses.begin_delete(RG, "pip-1")
        assert early.value.error is not None
        assert early.value.error.code == "PublicIPAddressCannotBeDeleted"


def test_a_synchronous_nic_update_frees_its_public_ip_in_the_request(
    sim: ArmSimulator, clients: Clients
) -> None:
    # As recorded from Azure (the default): the update answers 200 Succeeded, nothing to poll, so the
    # public IP is free when the answer comes, even while no operation may complete.
    _attached_pair(clients)
    with sim.operations_held():
        update = HttpRequest("PUT", f"{rid(NIC, 'nic-1')}?api-version=2024-05-01", json=nic_body().as_dict())
        answer = clients.network.send_request(update)
        assert answer.status_code == 200 and "Azure-AsyncOperation" not in answer.headers
        assert answer.json()["properties"]["provisioningState"] == "Succeeded"
        pip = clients.network.public_ip_addresses.get(RG, "pip-1")
        assert pip.properties is not None and pip.properties.ip_configuration is None
        deleted = clients.network.send_request(
            HttpRequest("DELETE", f"{rid(PIP, 'pip-1')}?api-version=2024-05-01")
        )
        assert deleted.status_code == 202


def test_referencing_a_missing_public_ip_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    with pytest.raises(HttpResponseError) as caught:
        clients.network.network_interfaces.begin_create_or_update(RG, "nic-x", nic_body(rid(PIP, "ghost")))
    assert caught.value.error is not None and caught.value.error.code == "InvalidResourceReference"
    assert sim.get_resource(rid(NIC, "nic-x")) is None


def test_a_public_ip_can_be_held_by_one_nic_only(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    with pytest.raises(HttpResponseError) as caught:
        clients.network.network_interfaces.begin_create_or_update(RG, "nic-2", nic_body(rid(PIP, "pip-1")))
    assert caught.value.error is not None and caught.value.error.code == "PublicIPAddressInUse"


def test_deleting_a_nic_detaches_its_public_ip(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    clients.network.network_interfaces.begin_delete(RG, "nic-1").result()
    pip = clients.network.public_ip_addresses.get(RG, "pip-1")
    assert pip.properties is not None and pip.properties.ip_configuration is None


def test_deleting_a_nic_used_by_a_vm_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    clients.compute.virtual_machines.begin_create_or_update(RG, "vm-1", vm_body([rid(NIC, "nic-1")])).result()
    with pytest.raises(HttpResponseError) as caught:
        clients.network.network_interfaces.begin_delete(RG, "nic-1")
    assert caught.value.error is not None and caught.value.error.code == "NicInUse"


def test_nic_put_cannot_forge_server_owned_fields(sim: ArmSimulator, clients: Clients) -> None:
    _attached_pair(clients)
    body = nic_body(rid(PIP, "pip-1")).as_dict()
    body["properties"]["virtualMachine"] = {"id": rid("Microsoft.Compute/virtualMachines", "forged")}
    # Sent raw: the SDK itself would drop the read-only field before it reached the simulator.
    response = clients.network.send_request(
        HttpRequest("PUT", f"{rid(NIC, 'nic-1')}?api-version=2026-03-01", json=body)
    )
    assert response.status_code == 200
    assert "virtualMachine" not in response.json()["properties"]
