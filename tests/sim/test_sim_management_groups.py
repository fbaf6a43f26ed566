"""Management groups: Microsoft.Management's reads of the hierarchy, over HTTPS at ARM's paths, and
role assignments at a group inherited by the subscriptions and resources beneath it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.rest import HttpRequest
from sim_access_helpers import AUTHORIZATION_FAILED, caller, send
from sim_helpers import LOCATION, RG, SUB, Clients

from sim import ArmSimulator
from sim.errors import ArmError

API = "api-version=2023-04-01"
MG = "/providers/Microsoft.Management/managementGroups"
TENANT = "00000000-0000-0000-0000-000000000000"
OTHER_SUB = "22222222-3333-4444-5555-666666666666"
PIP = "Microsoft.Network/publicIPAddresses"


def get(clients: Clients, path: str) -> Any:
    separator = "&" if "?" in path else "?"
    url = path if path.startswith("https://") else f"{path}{separator}{API}"
    return clients.network.send_request(HttpRequest("GET", url))


@pytest.fixture
def platform(sim: ArmSimulator) -> ArmSimulator:
    """Root -> platform -> (prod with SUB, dev with OTHER_SUB)."""
    sim.create_management_group("platform", display_name="Platform")
    sim.create_management_group("prod", "platform", display_name="Production")
    sim.create_management_group("dev", "platform")
    sim.place_subscription(SUB, "prod", display_name="Prod 1")
    sim.place_subscription(OTHER_SUB, "dev")
    return sim


def test_a_group_with_expand_children_and_recurse_answers_its_whole_subtree(
    platform: ArmSimulator, clients: Clients
) -> None:
    answer = get(clients, f"{MG}/platform?$expand=children&$recurse=true")
    assert answer.status_code == 200, answer.text()
    body = answer.json()
    assert body["id"] == f"{MG}/platform" and body["type"] == "Microsoft.Management/managementGroups"
    assert body["name"] == "platform"
    props = body["properties"]
    assert props["tenantId"] == TENANT and props["displayName"] == "Platform"
    assert props["details"]["parent"] == {
        "id": f"{MG}/{TENANT}",
        "name": TENANT,
        "displayName": "Tenant Root Group",
    }
    assert props["children"] == [
        {
            "id": f"{MG}/prod",
            "type": "Microsoft.Management/managementGroups",
            "name": "prod",
            "displayName": "Production",
            "children": [
                {
                    "id": f"/subscriptions/{SUB}",
                    "type": "/subscriptions",
                    "name": SUB,
                    "displayName": "Prod 1",
                }
            ],
        },
        {
            "id": f"{MG}/dev",
            "type": "Microsoft.Management/managementGroups",
            "name": "dev",
            "displayName": "dev",
            "children": [
                {
                    "id": f"/subscriptions/{OTHER_SUB}",
                    "type": "/subscriptions",
                    "name": OTHER_SUB,
                    "displayName": OTHER_SUB,
                }
            ],
        },
    ]


def test_without_recurse_only_the_first_level_of_children_is_expanded(
    platform: ArmSimulator, clients: Clients
) -> None:
    children = get(clients, f"{MG}/platform?$expand=children").json()["properties"]["children"]
    assert [(c["name"], "children" in c) for c in children] == [("prod", False), ("dev", False)]
    assert "children" not in get(clients, f"{MG}/platform").json()["properties"]


def test_expand_ancestors_names_the_chain_from_the_parent_up_to_the_root(
    platform: ArmSimulator, clients: Clients
) -> None:
    details = get(clients, f"{MG}/prod?$expand=ancestors").json()["properties"]["details"]
    assert details["managementGroupAncestors"] == ["platform", TENANT]
    assert details["managementGroupAncestorsChain"] == [
        {"name": "platform", "displayName": "Platform"},
        {"name": TENANT, "displayName": "Tenant Root Group"},
    ]
    path = get(clients, f"{MG}/prod?$expand=path").json()["properties"]["details"]["path"]
    assert [p["name"] for p in path] == [TENANT, "platform", "prod"]


def test_descendants_list_every_group_and_subscription_beneath_depth_first_paged(
    platform: ArmSimulator, clients: Clients
) -> None:
    first = get(clients, f"{MG}/platform/descendants?$top=2").json()
    assert [d["id"] for d in first["value"]] == [f"{MG}/prod", f"/subscriptions/{SUB}"]
    assert first["value"][1] == {
        "id": f"/subscriptions/{SUB}",
        "type": "Microsoft.Management/managementGroups/subscriptions",
        "name": SUB,
        "properties": {"displayName": "Prod 1", "parent": {"id": f"{MG}/prod"}},
    }
    assert first["nextLink"].startswith(f"{platform.endpoint}{MG}/platform/descendants?")
    assert parse_qs(urlsplit(first["nextLink"]).query) == {
        "api-version": ["2023-04-01"],
        "$skiptoken": ["2"],
        "$top": ["2"],
    }
    second = get(clients, first["nextLink"]).json()
    assert [d["id"] for d in second["value"]] == [f"{MG}/dev", f"/subscriptions/{OTHER_SUB}"]
    assert second["nextLink"] is None


def test_a_subscription_is_read_under_the_group_it_is_directly_in_and_not_under_another(
    platform: ArmSimulator, clients: Clients
) -> None:
    answer = get(clients, f"{MG}/prod/subscriptions/{SUB}")
    assert answer.status_code == 200
    assert answer.json() == {
        "id": f"{MG}/prod/subscriptions/{SUB}",
        "type": "Microsoft.Management/managementGroups/subscriptions",
        "name": SUB,
        "properties": {
            "tenant": TENANT,
            "displayName": "Prod 1",
            "parent": {"id": f"{MG}/prod"},
            "state": "Active",
        },
    }
    elsewhere = get(clients, f"{MG}/platform/subscriptions/{SUB}")
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "NotFound"
    listed = get(clients, f"{MG}/dev/subscriptions").json()
    assert [s["name"] for s in listed["value"]] == [OTHER_SUB]


def test_a_removed_subscription_is_back_in_the_tenant_root_group(
    platform: ArmSimulator, clients: Clients
) -> None:
    platform.remove_subscription(SUB)
    assert get(clients, f"{MG}/prod/subscriptions/{SUB}").status_code == 404
    assert get(clients, f"{MG}/{TENANT}/subscriptions/{SUB}").status_code == 200


def test_a_missing_group_is_not_found_and_writes_are_not_served(
    platform: ArmSimulator, clients: Clients
) -> None:
    missing = get(clients, f"{MG}/nowhere")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["code"], error["message"]) == ("NotFound", f"'{MG}/nowhere' not found")
    put = clients.network.send_request(HttpRequest("PUT", f"{MG}/prod/subscriptions/{SUB}?{API}"))
    assert put.status_code == 405


def test_group_reads_are_authorized_as_microsoft_management_actions(platform: ArmSimulator) -> None:
    reader = caller(platform, "mg-reader")
    role = platform.define_role("Group reader", ["Microsoft.Management/managementGroups/read"])
    platform.grant(reader.oid, role, f"{MG}/platform")
    assert get(reader.clients, f"{MG}/prod").status_code == 200  # inherited from platform
    refused = authorization_failure_of(get(reader.clients, f"{MG}/platform/descendants"))
    assert (refused["action"], refused["scope"]) == (
        "Microsoft.Management/managementGroups/descendants/read",
        f"{MG}/platform",
    )
    assert get(reader.clients, f"{MG}/{TENANT}").status_code == 403  # not above where it was granted


def test_a_role_assigned_at_a_group_applies_to_resources_in_subscriptions_beneath_it(
    platform: ArmSimulator, clients: Clients
) -> None:
    pip = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{PIP}/pip"
    other = f"/subscriptions/{OTHER_SUB}/resourceGroups/{RG}/providers/{PIP}/pip"
    platform.seed({"value": [{"id": pip, "location": LOCATION}, {"id": other, "location": LOCATION}]})
    reader = caller(platform, "prod-reader")
    platform.grant(reader.oid, "Reader", f"{MG}/prod")
    assert reader.clients.network.public_ip_addresses.get(RG, "pip").id == pip
    denied = get(reader.clients, f"{other}?api-version=2024-05-01")
    assert authorization_failure_of(denied)["scope"] == other
    # Moving the subscription under prod brings it under the assignment.
    platform.place_subscription(OTHER_SUB, "prod")
    assert get(reader.clients, f"{other}?api-version=2024-05-01").status_code == 200


def test_the_permissions_list_of_a_subscription_beneath_a_group_holds_the_groups_role(
    platform: ArmSimulator,
) -> None:
    """What `remediation doctor` reads in management-group mode: the caller's permissions at each
    subscription under the group. The shape is the REST reference's (Permissions - List For
    Resource Group, api-version 2022-04-01, its sample response: `value`, each entry the four
    lists); the subscription's list is read as the resource group's is, and a role assigned at the
    group is in both, until the subscription moves out from under it."""
    operator = caller(platform, "group-operator")
    role = platform.define_role(
        "Group operator", ["Microsoft.Compute/*/read"], ["Microsoft.Compute/disks/read"]
    )
    platform.grant(operator.oid, role, f"{MG}/platform")
    block = {
        "actions": ["Microsoft.Compute/*/read"],
        "notActions": ["Microsoft.Compute/disks/read"],
        "dataActions": [],
        "notDataActions": [],
    }
    permissions = "providers/Microsoft.Authorization/permissions"
    for scope in (f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/{RG}"):
        answer = send(operator.clients, "GET", f"{scope}/{permissions}")
        assert (answer.status_code, answer.json()) == (200, {"value": [block]})
    platform.create_management_group("sandbox")
    platform.place_subscription(SUB, "sandbox")
    assert send(operator.clients, "GET", f"/subscriptions/{SUB}/{permissions}").json() == {"value": []}


def test_a_custom_role_assignable_at_a_group_may_be_assigned_at_a_subscription_beneath_it(
    platform: ArmSimulator,
) -> None:
    role = platform.define_role("Prod operator", ["*/read"], assignable_scopes=[f"{MG}/prod"])
    who = caller(platform, "operator")
    platform.grant(who.oid, role, f"/subscriptions/{SUB}")
    with pytest.raises(ArmError, match="not assignable at scope"):
        platform.grant(who.oid, role, f"/subscriptions/{OTHER_SUB}")


def authorization_failure_of(answer: Any) -> dict[str, str]:
    assert answer.status_code == 403, answer.text()
    match = AUTHORIZATION_FAILED.match(answer.json()["error"]["message"])
    assert match is not None
    return match.groupdict()
