"""Providers - Get, answered natively: registered, with the types the simulator serves; recorded,
throttled and authorized like every other read."""

from __future__ import annotations

from azure.core.rest import HttpRequest
from sim_access_helpers import caller
from sim_helpers import SUB, Clients

from sim import ArmSimulator


def _get(clients: Clients, path: str) -> tuple[int, dict[str, object]]:
    answer = clients.compute.send_request(HttpRequest("GET", path))
    return answer.status_code, answer.json() if answer.content else {}


def test_a_served_namespace_is_registered_with_its_types(sim: ArmSimulator, clients: Clients) -> None:
    status, body = _get(clients, f"/subscriptions/{SUB}/providers/microsoft.compute?api-version=2021-04-01")
    assert status == 200
    assert body["namespace"] == "Microsoft.Compute" and body["registrationState"] == "Registered"
    assert body["id"] == f"/subscriptions/{SUB}/providers/Microsoft.Compute"
    types = {t["resourceType"]: t for t in body["resourceTypes"]}  # type: ignore[attr-defined]
    assert set(types) == {
        "virtualMachineScaleSets",
        "virtualMachines",
        "virtualMachineScaleSets/virtualMachines",
    }
    assert "2024-11-01" in types["virtualMachines"]["apiVersions"]
    [record] = [r for r in sim.requests() if r.path.endswith("/providers/microsoft.compute")]
    assert record.operation == "Microsoft.Resources/subscriptions/providers/read" and record.status == 200


def test_an_unknown_namespace_or_a_missing_api_version_is_refused(
    sim: ArmSimulator, clients: Clients
) -> None:
    status, body = _get(clients, f"/subscriptions/{SUB}/providers/Microsoft.Storage?api-version=2021-04-01")
    assert status == 404 and body["error"]["code"] == "InvalidResourceNamespace"  # type: ignore[index]
    status, body = _get(clients, f"/subscriptions/{SUB}/providers/Microsoft.Network")
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"  # type: ignore[index]


def test_a_caller_without_any_role_is_refused(sim: ArmSimulator) -> None:
    stranger = caller(sim, "stranger").clients
    status, body = _get(stranger, f"/subscriptions/{SUB}/providers/Microsoft.Network?api-version=2021-04-01")
    assert status == 403 and body["error"]["code"] == "AuthorizationFailed"  # type: ignore[index]
