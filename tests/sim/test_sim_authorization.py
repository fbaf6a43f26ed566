"""Authorization as ARM does it, through the real SDK clients: the 403 and its wording, wildcards and
notActions, inheritance from subscription and resource group, the permissions endpoint, role
definitions and assignments over HTTP (compared with recorded ARM traffic), status polls, and where
authorization sits between throttling and faults. Linked access: test_sim_linked_access.py."""

from __future__ import annotations

import json
import re
import ssl
import urllib.request
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from azure.mgmt.compute.models import VirtualMachineScaleSet
from azure.mgmt.network.models import PublicIPAddress
from sim_access_helpers import (
    authorization_failure,
    caller,
    recorded_bodies,
    refused,
    scope_of,
    send,
)
from sim_helpers import (
    CONVENIENT,
    RG,
    SUB,
    TEST_PRINCIPAL,
    Clients,
    flex_body,
    nic_body,
    owned,
    pip_body,
    rid,
)

from sim import ArmSimulator, Faults
from sim.builtin_roles import CONTRIBUTOR, OWNER, READER
from sim.rbac import matches

NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
OTHER = "rg-other"
DEFINITIONS = "providers/Microsoft.Authorization/roleDefinitions"
ASSIGNMENTS = "providers/Microsoft.Authorization/roleAssignments"
GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _nics(clients: Clients, *groups: str) -> None:
    for group in groups:
        clients.network.network_interfaces.begin_create_or_update(group, "nic", nic_body()).result()


def test_a_caller_without_a_role_gets_arms_authorization_failed(sim: ArmSimulator, clients: Clients) -> None:
    _nics(clients, RG)
    app = caller(sim, "nobody")
    failure = authorization_failure(refused(lambda: app.clients.network.network_interfaces.get(RG, "nic")))
    assert failure == {
        "client": "app-nobody",
        "oid": "oid-nobody",
        "action": f"{NIC}/read",
        "scope": rid(NIC, "nic"),
    }
    user = caller(sim, "user", upn="someone@example.com")  # a user is named by their sign-in name
    as_user = authorization_failure(refused(lambda: user.clients.network.network_interfaces.get(RG, "nic")))
    assert (as_user["client"], as_user["oid"]) == ("someone@example.com", "oid-user")
    record = next(r for r in sim.requests() if r.status == 403)
    assert record.error_code == "AuthorizationFailed" and record.operation == f"{NIC}/read"


def test_wildcards_match_case_insensitively_and_not_actions_subtract(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", _set_body()).result()
    _nics(clients, RG)
    compute_reader = caller(sim, "compute-reader")
    sim.grant(
        compute_reader.oid, sim.define_role("compute reads", ["Microsoft.Compute/*/read"]), scope_of(RG)
    )
    assert compute_reader.clients.compute.virtual_machine_scale_sets.get(RG, "set").name == "set"
    failure = authorization_failure(
        refused(lambda: compute_reader.clients.network.network_interfaces.get(RG, "nic"))
    )
    assert failure["action"] == f"{NIC}/read"

    shouting = caller(sim, "shouting")
    sim.grant(shouting.oid, sim.define_role("loud", ["MICROSOFT.NETWORK/NETWORKINTERFACES/READ"]), "/")
    assert shouting.clients.network.network_interfaces.get(RG, "nic").name == "nic"

    network = caller(sim, "network")
    role = sim.define_role("network but keep ips", ["Microsoft.Network/*"], [f"{PIP}/delete"])
    sim.grant(network.oid, role, scope_of(RG))
    network.clients.network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    deleting = refused(lambda: network.clients.network.public_ip_addresses.begin_delete(RG, "pip").result())
    assert authorization_failure(deleting)["action"] == f"{PIP}/delete"

    reader = caller(sim, "reader")
    sim.grant(reader.oid, "Reader", f"/subscriptions/{SUB}")
    assert reader.clients.network.public_ip_addresses.get(RG, "pip").name == "pip"
    writing = refused(
        lambda: reader.clients.network.public_ip_addresses.begin_create_or_update(RG, "p2", pip_body())
    )
    assert authorization_failure(writing)["action"] == f"{PIP}/write"


def test_contributor_may_not_assign_roles_and_owner_may(sim: ArmSimulator, clients: Clients) -> None:
    contributor = caller(sim, "contributor")
    sim.grant(contributor.oid, "Contributor", f"/subscriptions/{SUB}")
    path = f"{scope_of(RG)}/{ASSIGNMENTS}/0b8a8a5e-0000-4000-8000-000000000001"
    body = {
        "properties": {"roleDefinitionId": f"/subscriptions/{SUB}/{DEFINITIONS}/{READER}", "principalId": "x"}
    }
    answer = send(contributor.clients, "PUT", path, body)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "AuthorizationFailed"
    assert f"action 'Microsoft.Authorization/roleAssignments/write' over scope '{path}'" in answer.text()
    assert send(clients, "PUT", path, body).status_code == 201  # the tests' own principal is Owner


def test_assignments_are_inherited_from_subscription_and_resource_group(
    sim: ArmSimulator, clients: Clients
) -> None:
    _nics(clients, RG, OTHER)
    everywhere, one_group, one_nic = caller(sim, "sub"), caller(sim, "group"), caller(sim, "resource")
    sim.grant(everywhere.oid, "Reader", f"/subscriptions/{SUB}")
    sim.grant(one_group.oid, "Reader", scope_of(RG))
    sim.grant(one_nic.oid, "Reader", rid(NIC, "nic"))
    for group in (RG, OTHER):
        assert [n.name for n in everywhere.clients.network.network_interfaces.list(group)] == ["nic"]
    assert [n.name for n in one_group.clients.network.network_interfaces.list(RG)] == ["nic"]
    elsewhere = refused(lambda: one_group.clients.network.network_interfaces.get(OTHER, "nic"))
    assert authorization_failure(elsewhere)["scope"] == rid(NIC, "nic", group=OTHER)
    listing = refused(lambda: list(one_group.clients.network.network_interfaces.list(OTHER)))
    assert authorization_failure(listing)["scope"] == f"{scope_of(OTHER)}/providers/Microsoft.Network"
    assert one_nic.clients.network.network_interfaces.get(RG, "nic").name == "nic"
    # A role on one resource does not list its group (the list's scope is the group's provider path).
    group_list = refused(lambda: list(one_nic.clients.network.network_interfaces.list(RG)))
    assert authorization_failure(group_list)["scope"] == f"{scope_of(RG)}/providers/Microsoft.Network"


def test_the_permissions_endpoint_lists_the_callers_roles_at_a_scope(
    sim: ArmSimulator, clients: Clients
) -> None:
    _nics(clients, RG)
    app = caller(sim, "asker")
    sim.grant(app.oid, "Reader", f"/subscriptions/{SUB}")
    sim.grant(app.oid, sim.define_role("nic writer", [f"{NIC}/write"], [f"{NIC}/delete"]), scope_of(RG))
    reader = {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}
    writer = {
        "actions": [f"{NIC}/write"],
        "notActions": [f"{NIC}/delete"],
        "dataActions": [],
        "notDataActions": [],
    }
    permissions = "providers/Microsoft.Authorization/permissions"
    assert send(app.clients, "GET", f"{scope_of(RG)}/{permissions}").json() == {"value": [reader, writer]}
    assert send(app.clients, "GET", f"{rid(NIC, 'nic')}/{permissions}").json() == {"value": [reader, writer]}
    assert send(app.clients, "GET", f"{scope_of(OTHER)}/{permissions}").json() == {"value": [reader]}
    assert send(caller(sim, "none").clients, "GET", f"{scope_of(RG)}/{permissions}").json() == {"value": []}


def _zeroed(role: dict[str, object]) -> dict[str, object]:
    """A role definition as the recording scrubs it: subscription and GUIDs zero."""
    text = re.sub(GUID, "00000000-0000-0000-0000-000000000000", repr(role))  # SUB is GUID-shaped too
    return {"repr": text, "keys": list(role)}


def test_built_in_role_definitions_read_back_as_recorded(sim: ArmSimulator, clients: Clients) -> None:
    [recorded] = recorded_bodies("roleDefinitions?%24filter=roleName+eq+%27Contributor%27")
    path = f"{scope_of(RG)}/{DEFINITIONS}?$filter=roleName eq 'Contributor'"
    answer = send(clients, "GET", path).json()
    assert [_zeroed(r) for r in answer["value"]] == [_zeroed(r) for r in recorded["value"]]
    assert answer["value"][0]["id"] == f"/subscriptions/{SUB}/{DEFINITIONS}/{CONTRIBUTOR}"
    [listed] = recorded_bodies(
        "aks-cit-RoleDefinitionnotfound/providers/Microsoft.Authorization/roleDefinitions"
    )
    recorded_by_name = {r["properties"]["roleName"]: r for r in listed["value"]}
    ours = send(clients, "GET", f"{scope_of(RG)}/{DEFINITIONS}").json()["value"]
    built_in = [r for r in ours if r["properties"]["type"] == "BuiltInRole"]
    assert {r["properties"]["roleName"] for r in built_in} >= {"Owner", "Contributor", "Reader"}
    for role in built_in:
        assert role["properties"] == recorded_by_name[role["properties"]["roleName"]]["properties"]
        one = send(clients, "GET", f"{scope_of(RG)}/{DEFINITIONS}/{role['name']}").json()
        assert one == role
    assert send(clients, "GET", f"/{DEFINITIONS}/{OWNER}").json()["id"] == f"/{DEFINITIONS}/{OWNER}"


def test_custom_roles_and_assignments_over_http(sim: ArmSimulator, clients: Clients) -> None:
    _nics(clients, RG)
    role_guid, assignment_guid = (
        "11111111-0000-4000-8000-000000000001",
        "22222222-0000-4000-8000-000000000002",
    )
    role_path = f"/subscriptions/{SUB}/{DEFINITIONS}/{role_guid}"
    role_body = {
        "properties": {
            "roleName": "nic reader",
            "type": "CustomRole",
            "description": "reads NICs",
            "assignableScopes": [f"/subscriptions/{SUB}"],
            "permissions": [{"actions": [f"{NIC}/read"], "notActions": []}],
        }
    }
    created = send(clients, "PUT", role_path, role_body)
    assert created.status_code == 201
    assert created.json()["id"] == role_path and created.json()["properties"]["createdBy"] == TEST_PRINCIPAL
    custom = send(clients, "GET", f"{scope_of(RG)}/{DEFINITIONS}?$filter=type eq 'CustomRole'").json()[
        "value"
    ]
    assert [r["properties"]["roleName"] for r in custom] == ["nic reader"]

    app = caller(sim, "assigned")
    path = f"{scope_of(RG)}/{ASSIGNMENTS}/{assignment_guid}"
    body = {"properties": {"roleDefinitionId": role_path, "principalId": app.oid}}
    assigned = send(clients, "PUT", path, body)
    assert assigned.status_code == 201
    assert (
        assigned.json()["id"] == path and assigned.json()["type"] == "Microsoft.Authorization/roleAssignments"
    )
    assert assigned.json()["properties"]["scope"] == scope_of(RG)
    assert assigned.json()["properties"]["roleDefinitionId"] == role_path
    assert app.clients.network.network_interfaces.get(RG, "nic").name == "nic"
    assert send(clients, "PUT", path, body).status_code == 200  # the same assignment again
    again = send(clients, "PUT", f"{scope_of(RG)}/{ASSIGNMENTS}/33333333-0000-4000-8000-000000000003", body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "RoleAssignmentExists"

    def listed(scope: str, query: str = "") -> list[str]:
        return [a["name"] for a in send(clients, "GET", f"{scope}/{ASSIGNMENTS}{query}").json()["value"]]

    subscription = f"/subscriptions/{SUB}"
    assert assignment_guid in listed(subscription)  # at the scope, above and below it
    assert assignment_guid not in listed(subscription, "?$filter=atScope()")  # at and above only
    assert listed(scope_of(RG), f"?$filter=principalId eq '{app.oid}'") == [assignment_guid]
    missing_role = f"{subscription}/{DEFINITIONS}/99999999-0000-4000-8000-999999999999"
    unknown = {"properties": {"roleDefinitionId": missing_role, "principalId": app.oid}}
    refusal = send(
        clients, "PUT", f"{scope_of(RG)}/{ASSIGNMENTS}/44444444-0000-4000-8000-000000000004", unknown
    )
    assert refusal.status_code == 400 and refusal.json()["error"]["code"] == "RoleDefinitionDoesNotExist"
    in_use = send(clients, "DELETE", role_path)
    assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "RoleDefinitionHasAssignments"
    assert send(clients, "DELETE", path).status_code == 200
    assert send(clients, "GET", path).json()["error"]["code"] == "RoleAssignmentNotFound"
    assert send(clients, "DELETE", path).status_code == 204
    authorization_failure(refused(lambda: app.clients.network.network_interfaces.get(RG, "nic")))
    assert send(clients, "DELETE", role_path).status_code == 200
    assert send(clients, "GET", role_path).status_code == 404


def test_status_polls_need_operations_read_at_the_resource_group(sim: ArmSimulator, clients: Clients) -> None:
    # A public IP create is long-running (a NIC create answers at once, as recorded from Azure).
    writer = caller(sim, "poller")
    role = sim.define_role("public IP writer", [f"{PIP}/read", f"{PIP}/write"])
    sim.grant(writer.oid, role, scope_of(RG))
    create = writer.clients.network.public_ip_addresses.begin_create_or_update
    failure = authorization_failure(refused(lambda: create(RG, "pip", pip_body()).result()))
    assert failure["action"] == "Microsoft.Network/locations/operations/read"
    assert re.fullmatch(
        rf"/subscriptions/{SUB}/providers/Microsoft\.Network/locations/westeurope/operations/{GUID}",
        failure["scope"],
    )
    polls = sim.define_role("network polls", ["Microsoft.Network/locations/operations/read"])
    sim.grant(writer.oid, polls, rid(PIP, "pip"))  # on the resource: not enough to track it
    authorization_failure(refused(lambda: create(RG, "pip", pip_body()).result()))
    sim.grant(writer.oid, polls, scope_of(RG))
    assert isinstance(create(RG, "pip", pip_body()).result(), PublicIPAddress)


def test_compute_results_are_polled_at_operations_with_monitor(sim: ArmSimulator, clients: Clients) -> None:
    answer = send(clients, "DELETE", rid(VMSS, "gone"), api="api-version=2024-11-01")
    assert answer.status_code == 204  # nothing to delete: no operation
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", _set_body()).result()
    deleted = send(clients, "DELETE", rid(VMSS, "set"), api="api-version=2024-11-01")
    location = deleted.headers["Location"]
    assert "/providers/Microsoft.Compute/locations/westeurope/operations/" in location
    assert location.endswith("&monitor=true")
    deleter = caller(sim, "deleter")
    sim.grant(
        deleter.oid,
        sim.define_role("compute polls", ["Microsoft.Compute/locations/operations/read"]),
        scope_of(RG),
    )
    assert deleter.clients.compute.send_request(HttpRequest("GET", location)).status_code in (200, 202, 204)


def test_throttling_comes_before_authorization_and_faults_after_it() -> None:
    # Clocks at 1/1000 of real time: no token comes back during the test.
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001, faults=Faults(rate_500=1.0))
    ) as sim:
        stranger = caller(sim, "stranger")
        get = stranger.clients.network.public_ip_addresses.get
        first = refused(lambda: get(RG, "pip", retry_total=0))
        authorization_failure(first)  # a refused request meets no injected fault...
        spent: Any = first.response
        assert spent.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"  # ...and a token
        sim.throttle_next("app-stranger", "reads", 1)  # buckets are keyed by appid
        throttled = refused(lambda: get(RG, "pip", retry_total=0))
        assert throttled.status_code == 429 and throttled.error is not None
        assert throttled.error.code == "SubscriptionRequestsThrottled"  # 429 before 403
        assert sim.faults_met() == {}
        owner = caller(sim, "owner")
        sim.grant(owner.oid, "Owner", "/")
        injected = refused(lambda: owner.clients.network.public_ip_addresses.get(RG, "pip", retry_total=0))
        assert injected.status_code == 500  # what ARM authorized reaches the (faulty) provider


def test_resource_graph_shows_only_what_the_caller_may_read(sim: ArmSimulator, clients: Clients) -> None:
    for group in (RG, OTHER):
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(
            group, f"set-{group}", _set_body()
        ).result()
    query = {
        "subscriptions": [SUB],
        "query": "resources | where type =~ 'microsoft.compute/virtualmachinescalesets'",
    }
    path = "/providers/Microsoft.ResourceGraph/resources"
    app = caller(sim, "graph")
    refusal = send(app.clients, "POST", path, query, api="api-version=2022-10-01")
    assert refusal.status_code == 403 and "'Microsoft.ResourceGraph/resources/read'" in refusal.text()
    sim.grant(app.oid, "Reader", scope_of(RG))
    rows = send(app.clients, "POST", path, query, api="api-version=2022-10-01").json()
    assert [row["name"] for row in rows["data"]] == [f"set-{RG}"] and rows["totalRecords"] == 1


def test_grants_are_recorded_puts_that_survive_reset_and_sim_endpoints_stay_open(sim: ArmSimulator) -> None:
    app = caller(sim, "harness")
    assignment = sim.grant(app.oid, "Network Contributor", scope_of(RG))
    assert re.fullmatch(rf"{scope_of(RG)}/{ASSIGNMENTS}/{GUID}", assignment)
    assert sim.grant(app.oid, "Network Contributor", scope_of(RG)) == assignment  # idempotent
    [first, second] = sim.requests()
    assert (first.method, first.path, first.status, first.principal) == ("PUT", assignment, 201, "")
    assert second.status == 200
    sim.reset()
    assert app.oid in {a["properties"]["principalId"] for a in sim.role_assignments()}
    assert sim.revoke(assignment) and not sim.revoke(assignment)
    with pytest.raises(ValueError, match="no role 'Ruler'"):
        sim.grant(app.oid, "Ruler", "/")
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    with urllib.request.urlopen(f"{sim.endpoint}/_sim/counters", context=context, timeout=5) as answer:
        assert json.loads(answer.read())["total"] >= 0  # no token, no role: not ARM


def test_wildcard_rules() -> None:
    assert matches("*", "Microsoft.Compute/virtualMachines/read")
    assert matches("*/read", "microsoft.network/networkinterfaces/read")
    assert not matches("*/read", "Microsoft.Network/networkInterfaces/write")
    assert matches(
        "Microsoft.Compute/*/read", "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read"
    )
    assert not matches("Microsoft.Compute/*/read", "Microsoft.Network/networkInterfaces/read")
    assert matches(
        "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    )
    assert matches("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write")


def _set_body() -> VirtualMachineScaleSet:
    return flex_body(0)
