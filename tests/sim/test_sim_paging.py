"""Lists page with an absolute nextLink, and the SDK follows it."""

from __future__ import annotations

from azure.core.rest import HttpRequest
from sim_helpers import LOCATION, RG, SUB, Clients, rid

from sim import ArmSimulator

NIC = "Microsoft.Network/networkInterfaces"


def _seed_nics(sim: ArmSimulator, count: int, group: str = RG) -> None:
    sim.seed(
        {
            "value": [
                {
                    "id": rid(NIC, f"nic-{i:03d}", group=group),
                    "location": LOCATION,
                    "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {}}]},
                }
                for i in range(count)
            ]
        }
    )


def test_sdk_pages_through_more_than_a_page(sim: ArmSimulator, clients: Clients) -> None:
    _seed_nics(sim, 45)
    _seed_nics(sim, 3, group="other-rg")
    names = [nic.name for nic in clients.network.network_interfaces.list(RG)]
    assert names == [f"nic-{i:03d}" for i in range(45)]
    list_requests = [r for r in sim.requests() if r.method == "GET" and r.path.endswith("/networkInterfaces")]
    assert len(list_requests) == 3  # 20 + 20 + 5
    assert len(list(clients.network.network_interfaces.list_all())) == 48


def test_next_link_is_absolute_and_carries_skiptoken_and_api_version(
    sim: ArmSimulator, clients: Clients
) -> None:
    _seed_nics(sim, 21)
    first = clients.network.send_request(
        HttpRequest("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{NIC}?api-version=2026-03-01")
    ).json()
    assert len(first["value"]) == 20
    link = first["nextLink"]
    assert link.startswith(sim.endpoint)
    assert "%24skiptoken=20" in link or "$skiptoken=20" in link
    assert "api-version=2026-03-01" in link
    second = clients.network.send_request(HttpRequest("GET", link)).json()
    assert [n["name"] for n in second["value"]] == ["nic-020"]
    assert "nextLink" not in second
