"""CRUD, concurrency and protocol behaviour of the simulator, through the real SDK clients."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from sim_helpers import (
    CONVENIENT,
    LOCATION,
    RG,
    SUB,
    Clients,
    StaticCredential,
    make_clients,
    nic_body,
    owned,
    pip_body,
    rid,
    vm_body,
)

from sim import ArmSimulator

NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"
VM = "Microsoft.Compute/virtualMachines"


def test_public_ip_round_trip(sim: ArmSimulator, clients: Clients) -> None:
    created = clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-a", pip_body()).result()
    assert created.id == rid(PIP, "pip-a")
    assert created.type == PIP
    assert created.location == LOCATION
    assert created.etag is not None and created.etag.startswith('W/"')
    assert created.properties is not None
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.resource_guid
    assert created.properties.ip_address is not None and created.properties.ip_address.startswith("20.")

    fetched = clients.network.public_ip_addresses.get(RG, "pip-a")
    assert fetched.etag == created.etag
    assert [p.name for p in clients.network.public_ip_addresses.list(RG)] == ["pip-a"]

    clients.network.public_ip_addresses.begin_delete(RG, "pip-a").result()
    with pytest.raises(ResourceNotFoundError) as caught:
        clients.network.public_ip_addresses.get(RG, "pip-a")
    assert caught.value.error is not None and caught.value.error.code == "ResourceNotFound"


def test_nic_put_fills_server_fields_and_update_keeps_them(sim: ArmSimulator, clients: Clients) -> None:
    created = clients.network.network_interfaces.begin_create_or_update(RG, "nic-a", nic_body()).result()
    assert created.properties is not None and created.properties.ip_configurations
    config = created.properties.ip_configurations[0]
    assert config.id == f"{rid(NIC, 'nic-a')}/ipConfigurations/ipconfig1"
    assert config.type == "Microsoft.Network/networkInterfaces/ipConfigurations"
    assert config.etag == created.etag
    guid = created.properties.resource_guid

    body = nic_body()
    body["tags"] = {"owner": "team-a"}
    updated = clients.network.network_interfaces.begin_create_or_update(RG, "nic-a", body).result()
    assert updated.tags == {"owner": "team-a"}
    assert updated.etag != created.etag
    assert updated.properties is not None and updated.properties.resource_guid == guid
    assert updated.properties.ip_configurations is not None
    assert updated.properties.ip_configurations[0].properties is not None
    assert (
        updated.properties.ip_configurations[0].properties.private_ip_address
        == config.properties.private_ip_address  # type: ignore[union-attr]
    )


def test_vm_round_trip_keeps_vm_id_and_time_created(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.network_interfaces.begin_create_or_update(RG, "nic-vm", nic_body()).result()
    created = clients.compute.virtual_machines.begin_create_or_update(
        RG, "vm-a", vm_body([rid(NIC, "nic-vm")])
    ).result()
    assert created.properties is not None
    assert created.properties.vm_id and created.properties.time_created
    assert created.etag is not None and created.etag.startswith('W/"')
    updated = clients.compute.virtual_machines.begin_create_or_update(
        RG, "vm-a", vm_body([rid(NIC, "nic-vm")])
    ).result()
    assert updated.properties is not None
    assert updated.properties.vm_id == created.properties.vm_id
    assert updated.properties.time_created == created.properties.time_created
    nic = clients.network.network_interfaces.get(RG, "nic-vm")
    assert nic.properties is not None and nic.properties.virtual_machine is not None
    assert nic.properties.virtual_machine.id == rid(VM, "vm-a")

    clients.compute.virtual_machines.begin_delete(RG, "vm-a").result()
    with pytest.raises(ResourceNotFoundError) as caught:
        clients.compute.virtual_machines.get(RG, "vm-a")
    assert caught.value.error is not None and caught.value.error.code == "ResourceNotFound"
    # deleteOption defaults to Detach for a NIC attached by reference: it stays, detached.
    nic = clients.network.network_interfaces.get(RG, "nic-vm")
    assert nic.properties is not None and nic.properties.virtual_machine is None


def test_ids_are_case_insensitive_and_keep_creation_casing(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "Pip-Mixed", pip_body()).result()
    fetched = clients.network.public_ip_addresses.get(RG.upper(), "PIP-MIXED")
    assert fetched.name == "Pip-Mixed"
    assert fetched.id == rid(PIP, "Pip-Mixed")
    assert sim.get_resource(rid(PIP, "pip-mixed").replace("resourceGroups", "resourcegroups")) is not None


def test_if_match_mismatch_is_412_and_match_succeeds(sim: ArmSimulator, clients: Clients) -> None:
    nic = clients.network.network_interfaces.begin_create_or_update(RG, "nic-etag", nic_body()).result()
    stale = 'W/"00000000-0000-0000-0000-000000000000"'
    with pytest.raises(HttpResponseError) as caught:
        clients.network.network_interfaces.begin_create_or_update(
            RG, "nic-etag", nic_body(), headers={"If-Match": stale}
        )
    assert caught.value.status_code == 412
    assert caught.value.error is not None and caught.value.error.code == "PreconditionFailed"
    ok = clients.network.network_interfaces.begin_create_or_update(
        RG, "nic-etag", nic_body(), headers={"If-Match": nic.etag}
    ).result()
    assert ok.etag != nic.etag
    with pytest.raises(HttpResponseError) as on_delete:
        clients.network.network_interfaces.begin_delete(RG, "nic-etag", headers={"If-Match": nic.etag})
    assert on_delete.value.status_code == 412


def test_compute_etag_conditions_map_to_sdk_errors(sim: ArmSimulator, clients: Clients) -> None:
    from azure.core import MatchConditions

    clients.network.network_interfaces.begin_create_or_update(RG, "nic-c", nic_body()).result()
    vm = clients.compute.virtual_machines.begin_create_or_update(
        RG, "vm-c", vm_body([rid(NIC, "nic-c")])
    ).result()
    with pytest.raises(ResourceModifiedError):
        clients.compute.virtual_machines.begin_create_or_update(
            RG,
            "vm-c",
            vm_body([rid(NIC, "nic-c")]),
            etag='W/"stale"',
            match_condition=MatchConditions.IfNotModified,
        )
    with pytest.raises(HttpResponseError) as caught:
        clients.compute.virtual_machines.begin_create_or_update(
            RG, "vm-c", vm_body([rid(NIC, "nic-c")]), headers={"If-None-Match": "*"}
        )
    assert caught.value.status_code == 412
    assert vm.etag is not None


def test_if_match_star_on_missing_resource_is_412(sim: ArmSimulator, clients: Clients) -> None:
    with pytest.raises(HttpResponseError) as caught:
        clients.network.public_ip_addresses.begin_create_or_update(
            RG, "pip-none", pip_body(), headers={"If-Match": "*"}
        )
    assert caught.value.status_code == 412


def test_write_during_running_operation_is_429_with_retry_after() -> None:
    # A slow simulator of its own, so the first operation is surely still running.
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=5.0)) as slow:
        clients = make_clients(slow)
        clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-busy", pip_body(), polling=False)
        with pytest.raises(HttpResponseError) as caught:
            clients.network.public_ip_addresses.begin_create_or_update(
                RG, "pip-busy", pip_body(), retry_total=0
            )
        assert caught.value.status_code == 429
        assert caught.value.error is not None
        assert caught.value.error.code == "RetryableErrorDueToAnotherOperation"
        response: Any = caught.value.response
        assert response.headers["Retry-After"] == "1"
        with pytest.raises(HttpResponseError) as on_delete:
            clients.network.public_ip_addresses.begin_delete(RG, "pip-busy", retry_total=0)
        assert on_delete.value.status_code == 429


def test_lro_responses_and_states() -> None:
    # Operations of a simulator of its own last 1 s, so the first poll surely finds them running.
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=1.0)) as slow:
        _lro_responses_and_states(slow, make_clients(slow))


def _lro_responses_and_states(sim: ArmSimulator, clients: Clients) -> None:
    created = clients.network.send_request(
        HttpRequest(
            "PUT",
            f"{rid(PIP, 'pip-raw')}?api-version=2026-03-01",
            json=pip_body().as_dict(),
        )
    )
    assert created.status_code == 201
    assert "Retry-After" not in created.headers
    assert created.json()["properties"]["provisioningState"] == "Updating"
    operation_url = created.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.Network/locations/westeurope/operations/" in operation_url
    # Network's status body is its status alone, as recorded from Azure (Compute's names it and its times).
    status = clients.network.send_request(HttpRequest("GET", operation_url)).json()
    assert status == {"status": "InProgress"}
    sim.wait_idle(5)
    status = clients.network.send_request(HttpRequest("GET", operation_url)).json()
    assert status == {"status": "Succeeded"}

    deleted = clients.network.send_request(HttpRequest("DELETE", f"{rid(PIP, 'pip-raw')}?api-version=x"))
    assert deleted.status_code == 202
    result_url = deleted.headers["Location"]
    assert "/operationResults/" in result_url
    assert clients.network.send_request(HttpRequest("GET", result_url)).status_code == 202
    sim.wait_idle(5)
    assert clients.network.send_request(HttpRequest("GET", result_url)).status_code == 204
    again = clients.network.send_request(HttpRequest("DELETE", f"{rid(PIP, 'pip-raw')}?api-version=x"))
    assert again.status_code == 204


def test_failed_operation_surfaces_through_the_poller(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-f", pip_body()).result()
    sim.fail_next_operation(rid(PIP, "pip-f"), "InternalServerError", "Injected by the test.")
    with pytest.raises(HttpResponseError) as caught:
        clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-f", pip_body()).result()
    assert "Injected by the test." in str(caught.value)
    assert clients.network.public_ip_addresses.get(RG, "pip-f").properties.provisioning_state == "Failed"  # type: ignore[union-attr]


def test_patch_merges_into_the_stored_resource(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-p", pip_body()).result()
    tagged = clients.network.public_ip_addresses.update_tags(RG, "pip-p", {"tags": {"env": "test"}})
    assert tagged.tags == {"env": "test"}
    assert tagged.properties is not None and tagged.properties.ip_address


def test_protocol_errors_have_arm_bodies(sim: ArmSimulator, clients: Clients) -> None:
    path = rid(PIP, "whatever")
    no_version = clients.network.send_request(HttpRequest("GET", path))
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = clients.network.send_request(
        HttpRequest("GET", rid("Microsoft.Network/routeTables", "rt") + "?api-version=1")
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "InvalidResourceType"
    nowhere = clients.network.send_request(HttpRequest("GET", f"/subscriptions/{SUB}/nowhere?api-version=1"))
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "NotFound"
    bad_json = clients.network.send_request(
        HttpRequest(
            "PUT", path + "?api-version=1", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "InvalidRequestContent"


def test_missing_token_is_401_and_ids_are_echoed(sim: ArmSimulator) -> None:
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=sim.ca_bundle)
    port = int(sim.endpoint.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request(
            "GET",
            rid(PIP, "x") + "?api-version=2026-03-01",
            headers={"x-ms-client-request-id": "client-1", "x-ms-correlation-request-id": "corr-1"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 401
        assert body["error"]["code"] == "AuthenticationFailed"
        assert response.getheader("x-ms-request-id")
        assert response.getheader("x-ms-correlation-request-id") == "corr-1"
        assert response.getheader("x-ms-client-request-id") == "client-1"
        # Keep-alive: the same connection serves a second request.
        token = StaticCredential().token  # the Owner's: a missing api-version, not a 403
        connection.request("GET", rid(PIP, "x"), headers={"Authorization": f"Bearer {token}"})
        second = connection.getresponse()
        assert second.status == 400
        second.read()
    finally:
        connection.close()


def test_localhost_name_verifies_too(sim: ArmSimulator) -> None:
    clients = make_clients(sim, StaticCredential())
    assert list(clients.network.public_ip_addresses.list(RG)) == []
    localhost = sim.endpoint.replace("127.0.0.1", "localhost")
    from azure.mgmt.network import NetworkManagementClient

    network = NetworkManagementClient(
        StaticCredential(), SUB, base_url=localhost, connection_verify=sim.ca_bundle
    )
    assert list(network.public_ip_addresses.list(RG)) == []


def test_requests_are_recorded_and_writes_counted(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-count", pip_body()).result()
    clients.network.public_ip_addresses.get(RG, "pip-count")
    records = sim.requests()
    assert records[0].method == "PUT"
    assert records[0].resource_type == PIP
    assert records[0].operation == f"{PIP}/write"
    assert records[0].status == 201
    assert any(r.operation == "Microsoft.Network/locations/operations/read" for r in records)
    assert sim.write_count() == 1
    assert sim.write_count(PIP.lower()) == 1
    assert sim.write_count(NIC) == 0
