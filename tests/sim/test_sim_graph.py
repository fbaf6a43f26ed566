"""Resource Graph: the sweep's query answered in Resource Graph's shape, paged; others refused."""

from __future__ import annotations

from typing import Any

from azure.core.rest import HttpRequest
from sim_helpers import RG, SUB, Clients, flex_body, pip_body, rid, uniform_body

from sim import ArmSimulator

SWEEP = "resources | where type =~ 'microsoft.compute/virtualmachinescalesets' | project id, name, type, tags"


def _query(clients: Clients, query: str, **options: Any) -> Any:
    body = {
        "subscriptions": [SUB],
        "query": query,
        "options": {"resultFormat": "objectArray", **options},
    }
    request = HttpRequest(
        "POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01", json=body
    )
    return clients.compute.send_request(request)


def test_the_sweep_query_finds_every_scale_set_with_its_tags(sim: ArmSimulator, clients: Clients) -> None:
    tagged = flex_body(0)
    tagged["tags"] = {"remediation.mode": "strip"}
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", tagged).result()
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(1)).result()
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    liberal = "  resources\n| where   type =~ 'Microsoft.Compute/virtualMachineScaleSets'\n"
    answer = _query(clients, liberal + "|project id,name, type,tags ")
    assert answer.status_code == 200
    body = answer.json()
    assert body["totalRecords"] == 2 and body["count"] == 2
    assert body["facets"] == [] and body["resultTruncated"] == "false" and "$skipToken" not in body
    rows = {row["name"]: row for row in body["data"]}
    assert rows["flex"] == {
        "id": rid("Microsoft.Compute/virtualMachineScaleSets", "flex"),
        "name": "flex",
        "type": "microsoft.compute/virtualmachinescalesets",
        "tags": {"remediation.mode": "strip"},
    }
    assert rows["uni"]["tags"] == {}
    # Another subscription sees nothing.
    other = dict(
        clients.compute.send_request(
            HttpRequest(
                "POST",
                "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
                json={"subscriptions": ["00000000-0000-0000-0000-000000000001"], "query": SWEEP},
            )
        ).json()
    )
    assert other["totalRecords"] == 0


def test_results_are_paged_with_a_skip_token(sim: ArmSimulator, clients: Clients) -> None:
    for name in ("a", "b", "c"):
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, name, flex_body(0)).result()
    names: list[str] = []
    token: str | None = None
    for _ in range(5):
        options: dict[str, Any] = {"$top": 2}
        if token:
            options["$skipToken"] = token
        body = _query(clients, SWEEP, **options).json()
        names += [row["name"] for row in body["data"]]
        token = body.get("$skipToken")
        if not token:
            break
    assert names == ["a", "b", "c"]


def test_unsupported_queries_are_refused_naming_what(sim: ArmSimulator, clients: Clients) -> None:
    for query, named in [
        ("resources | summarize count() by type", "summarize"),
        ("resourcecontainers | project id", "resourcecontainers"),
        ("resources | where type =~ 'x' | project id, secretSauce", "secretSauce"),
        ("resources | where type contains 'x'", "where"),
    ]:
        answer = _query(clients, query)
        assert answer.status_code == 400, query
        error = answer.json()["error"]
        assert named in error["message"], (query, error)
