"""Resource Graph at management-group scope: the rows of every subscription under the groups named,
recursively, that the caller may read, paged past 1,000 with $skipToken as subscription scope is."""

from __future__ import annotations

import json
from typing import Any

from azure.core.rest import HttpRequest
from sim_access_helpers import caller
from sim_helpers import LOCATION, Clients

from sim import ArmSimulator

GRAPH = "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01"
QUERY = "resources | where type =~ 'microsoft.network/publicipaddresses' | project id, subscriptionId"
PIPS_PER_SUBSCRIPTION = 60


def subscription(group: int, index: int) -> str:
    return f"{group:08d}-0000-0000-0000-{index:012d}"


def pip_id(sub: str, index: int) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip-{index}"


def estate(sim: ArmSimulator) -> dict[str, set[str]]:
    """Groups a (with a child a-child), b and c, 12 subscriptions each of 60 public IPs; the ids by group."""
    sim.create_management_group("a")
    sim.create_management_group("a-child", "a")
    sim.create_management_group("b")
    sim.create_management_group("c")
    placed = {"a": 1, "a-child": 2, "b": 3, "c": 4}
    ids: dict[str, set[str]] = {}
    docs: list[dict[str, Any]] = []
    for group, number in placed.items():
        ids[group] = set()
        for index in range(12):
            sub = subscription(number, index)
            sim.place_subscription(sub, group)
            for pip in range(PIPS_PER_SUBSCRIPTION):
                ids[group].add(pip_id(sub, pip))
                docs.append({"id": pip_id(sub, pip), "location": LOCATION})
    sim.seed({"value": docs})
    return ids


def query(clients: Clients, **body: Any) -> Any:
    answer = clients.network.send_request(HttpRequest("POST", GRAPH, json={"query": QUERY, **body}))
    assert answer.status_code == 200, answer.text()
    return answer.json()


def all_pages(clients: Clients, groups: list[str]) -> tuple[list[str], list[int]]:
    """Every row's id, following $skipToken; and each page's count."""
    rows: list[str] = []
    counts: list[int] = []
    options: dict[str, Any] = {"$top": 1000}
    while True:
        page = query(clients, managementGroups=groups, options=options)
        rows.extend(row["id"] for row in page["data"])
        counts.append(page["count"])
        if "$skipToken" not in page:
            return rows, counts
        options = {"$top": 1000, "$skipToken": page["$skipToken"]}


def test_two_groups_answer_exactly_their_subscriptions_rows_recursively_paged_past_1000(
    sim: ArmSimulator, clients: Clients
) -> None:
    ids = estate(sim)
    rows, counts = all_pages(clients, ["a", "b"])
    expected = ids["a"] | ids["a-child"] | ids["b"]
    assert len(expected) == 2160
    assert counts == [1000, 1000, 160]
    assert len(rows) == len(set(rows)) and set(rows) == expected


def test_the_request_log_keeps_each_query_s_scope_and_the_page_it_asked_for(
    sim: ArmSimulator, clients: Clients
) -> None:
    estate(sim)
    before = len(sim.requests())
    all_pages(clients, ["a", "b"])
    sent = [
        json.loads(r.body)
        for r in sim.requests()[before:]
        if r.resource_type == "Microsoft.ResourceGraph/resources"
    ]
    assert [body["managementGroups"] for body in sent] == [["a", "b"]] * 3
    tokens = [body["options"].get("$skipToken") for body in sent]
    assert tokens[0] is None and None not in tokens[1:] and len(set(tokens)) == 3


def test_the_first_page_counts_every_row_under_the_groups(sim: ArmSimulator, clients: Clients) -> None:
    estate(sim)
    page = query(clients, managementGroups=["a-child"], options={"$top": 10})
    assert page["totalRecords"] == 12 * PIPS_PER_SUBSCRIPTION and page["count"] == 10
    assert {row["subscriptionId"] for row in page["data"]} <= {subscription(2, i) for i in range(12)}


def test_the_tenant_root_group_holds_every_subscription_placed_or_not(
    sim: ArmSimulator, clients: Clients
) -> None:
    ids = estate(sim)
    unplaced = pip_id("99999999-0000-0000-0000-000000000000", 0)
    sim.seed({"id": unplaced, "location": LOCATION})
    page = query(clients, managementGroups=[sim.tenant_root_group], options={"$top": 1})
    assert page["totalRecords"] == sum(len(v) for v in ids.values()) + 1


def test_only_rows_the_caller_may_read_are_answered(sim: ArmSimulator) -> None:
    ids = estate(sim)
    reader = caller(sim, "a-child-reader")
    sim.grant(reader.oid, "Reader", "/providers/Microsoft.Management/managementGroups/a-child")
    rows, _ = all_pages(reader.clients, ["a"])
    assert set(rows) == ids["a-child"]


def test_a_subscription_moved_out_of_the_group_leaves_its_rows(sim: ArmSimulator, clients: Clients) -> None:
    estate(sim)
    sim.place_subscription(subscription(2, 0), "c")
    page = query(clients, managementGroups=["a"], options={"$top": 1})
    assert page["totalRecords"] == 23 * PIPS_PER_SUBSCRIPTION


def test_a_missing_group_or_both_scopes_at_once_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    estate(sim)
    for body in (
        {"managementGroups": ["nowhere"]},
        {"managementGroups": ["a"], "subscriptions": [subscription(1, 0)]},
    ):
        answer = clients.network.send_request(HttpRequest("POST", GRAPH, json={"query": QUERY, **body}))
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "BadRequest"
