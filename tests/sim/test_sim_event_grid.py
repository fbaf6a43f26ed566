"""Event Grid system topics and their event subscriptions, over HTTPS as ARM serves them: what a PUT
is answered and how it is then read and listed (the 2025-02-15 REST API's shapes), what Event Grid
refuses and with which code, who may read them, and the local deployment of infra/'s topic and event
subscription (`LocalAzure.deploy_events`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_access_helpers import authorization_failure, caller, refused
from sim_helpers import RG, SUB, TEST_PRINCIPAL, Clients, StaticCredential, make_clients

from localazure.event_deployment import APP_RESOURCE_GROUP, EVENT_SUBSCRIPTION_BICEP, bicep_list
from localazure.stack import ESTATE_OWNER, ESTATE_SUBSCRIPTION, LocalAzure, estate_owner
from remediation.credentials import LoopbackCredential
from remediation.events import HANDLED_EVENT_TYPES, HANDLED_OPERATIONS
from sim import ArmSimulator, Faults

API = "api-version=2025-02-15"
OTHER_SUB = "99999999-8888-7777-6666-555555555555"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PROVIDER = "providers/Microsoft.EventGrid/systemTopics"
FUNCTION = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Web/sites/func-app"
    "/functions/on_resource_event"
)


def topic_path(name: str = "egst-sub", *, sub: str = SUB, group: str = RG) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/{PROVIDER}/{name}"


def subscription_topic(sub: str = SUB) -> dict[str, Any]:
    """What infra/app/event-topic.bicep sends for a subscription's resource events."""
    return {
        "location": "global",
        "identity": {"type": "SystemAssigned"},
        "properties": {"source": f"/subscriptions/{sub}", "topicType": "Microsoft.Resources.Subscriptions"},
    }


def storage_topic(account: str) -> dict[str, Any]:
    source = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{account}"
    return {
        "location": "westeurope",
        "properties": {"source": source, "topicType": "Microsoft.Storage.StorageAccounts"},
    }


def delivery(*advanced: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An event subscription to the function, with these advanced filters."""
    return {
        "properties": {
            "destination": {"endpointType": "AzureFunction", "properties": {"resourceId": FUNCTION}},
            "filter": {
                "includedEventTypes": ["Microsoft.Resources.ResourceWriteSuccess"],
                "advancedFilters": list(advanced),
            },
            **extra,
        }
    }


def string_in(key: str, count: int) -> dict[str, Any]:
    return {"operatorType": "StringIn", "key": key, "values": [f"value-{i}" for i in range(count)]}


def call(clients: Clients, method: str, path: str, body: Any = None, **options: Any) -> Any:
    """One request as the SDK's pipeline sends it (`retry_total=0`: the first answer, not retried)."""
    separator = "&" if "?" in path else "?"
    url = path if path.startswith("https://") else f"{path}{separator}{API}"
    return clients.network.send_request(HttpRequest(method, url, json=body), **options)


def put(sim: ArmSimulator, clients: Clients, path: str, body: dict[str, Any]) -> Any:
    """A PUT that must be accepted, its operation then run to its end."""
    answer = call(clients, "PUT", path, body)
    assert answer.status_code in (200, 201), answer.text()
    sim.wait_idle(5)
    return answer


def error_of(answer: Any) -> tuple[int, str, str]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["message"]


# ---------------------------------------------------------------------- system topics


def test_a_topic_put_is_long_running_and_the_topic_then_reads_as_event_grid_shapes_it(
    sim: ArmSimulator, clients: Clients
) -> None:
    answer = call(clients, "PUT", topic_path(), subscription_topic())

    assert answer.status_code == 201
    assert answer.json()["properties"]["provisioningState"] == "Creating"
    status_url = answer.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.EventGrid/locations/global/operations/" in status_url
    sim.wait_idle(5)
    assert call(clients, "GET", status_url).json() == {"status": "Succeeded"}
    topic = call(clients, "GET", topic_path()).json()
    assert topic["id"] == topic_path() and topic["name"] == "egst-sub"
    assert topic["type"] == "Microsoft.EventGrid/systemTopics" and topic["location"] == "global"
    assert topic["identity"]["type"] == "SystemAssigned" and GUID.match(topic["identity"]["principalId"])
    properties = topic["properties"]
    assert properties["provisioningState"] == "Succeeded"
    assert properties["source"] == f"/subscriptions/{SUB}"
    assert properties["topicType"] == "Microsoft.Resources.Subscriptions"
    assert GUID.match(properties["metricResourceId"])


def test_a_topic_put_again_updates_it_with_200_keeping_its_metric_id_and_identity(
    sim: ArmSimulator, clients: Clients
) -> None:
    first = put(sim, clients, topic_path(), subscription_topic()).json()
    again = put(
        sim, clients, topic_path().upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), subscription_topic()
    )

    assert again.status_code == 200 and again.json()["properties"]["provisioningState"] == "Updating"
    topic = call(clients, "GET", topic_path()).json()
    assert topic["id"] == first["id"], "ids keep the casing of their creation"
    assert topic["properties"]["metricResourceId"] == first["properties"]["metricResourceId"]
    assert topic["identity"]["principalId"] == first["identity"]["principalId"]


def test_topics_are_listed_per_subscription_and_per_group_and_not_in_another_subscription(
    sim: ArmSimulator, clients: Clients
) -> None:
    put(sim, clients, topic_path("egst-sub"), subscription_topic())
    put(sim, clients, topic_path("egst-storage", group="rg-storage"), storage_topic("stdata"))
    put(sim, clients, topic_path("egst-other", sub=OTHER_SUB), subscription_topic(OTHER_SUB))

    listed = call(clients, "GET", f"/subscriptions/{SUB}/{PROVIDER}").json()
    in_group = call(clients, "GET", f"/subscriptions/{SUB}/resourceGroups/rg-storage/{PROVIDER}").json()
    other = call(clients, "GET", f"/subscriptions/{OTHER_SUB}/{PROVIDER}").json()

    assert [t["name"] for t in listed["value"]] == ["egst-sub", "egst-storage"]
    assert "nextLink" not in listed
    assert [t["name"] for t in in_group["value"]] == ["egst-storage"]
    assert [t["properties"]["source"] for t in other["value"]] == [f"/subscriptions/{OTHER_SUB}"]


def test_a_long_topic_list_is_paged_with_a_next_link(sim: ArmSimulator, clients: Clients) -> None:
    size = sim.settings.page_size
    for i in range(size + 1):
        call(clients, "PUT", topic_path(f"egst-{i:02d}"), storage_topic(f"st{i:02d}"))
    sim.wait_idle(5)

    first = call(clients, "GET", f"/subscriptions/{SUB}/{PROVIDER}").json()
    second = call(clients, "GET", first["nextLink"]).json()

    assert len(first["value"]) == size and first["nextLink"].startswith(sim.endpoint)
    assert [t["name"] for t in second["value"]] == [f"egst-{size:02d}"] and "nextLink" not in second


def test_a_second_topic_for_the_same_source_is_refused(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path("egst-first"), subscription_topic())

    answer = call(clients, "PUT", topic_path("egst-second", group="rg-other"), subscription_topic())

    assert error_of(answer) == (
        400,
        "InvalidRequest",
        f"There is an existing tracked system topic for the given source /subscriptions/{SUB}. "
        "Only one system topic is allowed per source.",
    )
    assert call(clients, "GET", topic_path("egst-second", group="rg-other")).status_code == 404


def test_a_subscriptions_topic_must_have_its_own_subscription_as_source(clients: Clients) -> None:
    answer = call(clients, "PUT", topic_path(), subscription_topic(OTHER_SUB))

    status, code, message = error_of(answer)
    assert (status, code) == (400, "InvalidRequest") and f"/subscriptions/{SUB}" in message


def test_a_topics_source_cannot_be_modified(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path(), storage_topic("stone"))

    answer = call(clients, "PUT", topic_path(), storage_topic("sttwo"))

    assert error_of(answer) == (400, "InvalidRequest", "System topic source cannot be modified.")


def test_a_missing_topic_is_arms_resource_not_found(clients: Clients) -> None:
    status, code, message = error_of(call(clients, "GET", topic_path("egst-none")))

    assert (status, code) == (404, "ResourceNotFound")
    assert message.startswith(
        f"The Resource 'Microsoft.EventGrid/systemTopics/egst-none' under resource group '{RG}'"
    )


def test_deleting_a_topic_is_long_running_and_takes_its_event_subscriptions(
    sim: ArmSimulator, clients: Clients
) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    put(
        sim,
        clients,
        f"{topic_path()}/eventSubscriptions/to-function",
        delivery(string_in("data.operationName", 1)),
    )

    answer = call(clients, "DELETE", topic_path())

    assert answer.status_code == 202
    assert "Azure-AsyncOperation" in answer.headers and "Location" in answer.headers
    sim.wait_idle(5)
    assert call(clients, "GET", topic_path()).status_code == 404
    assert call(clients, "GET", f"/subscriptions/{SUB}/{PROVIDER}").json() == {"value": []}
    assert call(clients, "DELETE", topic_path()).status_code == 204


def test_a_topic_whose_operation_fails_is_left_failed(sim: ArmSimulator, clients: Clients) -> None:
    sim.set_faults(Faults(rate_lro_failed=1.0, only_types=frozenset({"Microsoft.EventGrid/systemTopics"})))
    answer = call(clients, "PUT", topic_path(), subscription_topic())
    sim.wait_idle(5)

    assert call(clients, "GET", answer.headers["Azure-AsyncOperation"]).json()["status"] == "Failed"
    assert call(clients, "GET", topic_path()).json()["properties"]["provisioningState"] == "Failed"


def test_reset_forgets_every_topic(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path(), subscription_topic())

    sim.reset()

    assert call(clients, "GET", f"/subscriptions/{SUB}/{PROVIDER}").json() == {"value": []}


# ---------------------------------------------------------------------- event subscriptions


def test_an_event_subscription_is_created_under_its_topic_with_event_grids_defaults(
    sim: ArmSimulator, clients: Clients
) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    path = f"{topic_path()}/eventSubscriptions/to-function"

    answer = call(clients, "PUT", path, delivery(string_in("data.operationName", 2)))

    assert answer.status_code == 201 and "Azure-AsyncOperation" in answer.headers
    sim.wait_idle(5)
    listed = call(clients, "GET", f"{topic_path()}/eventSubscriptions").json()
    assert listed["value"] == [call(clients, "GET", path).json()]
    served = listed["value"][0]
    assert served["id"] == path and served["name"] == "to-function"
    assert served["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    properties = served["properties"]
    assert properties["topic"] == topic_path() and properties["provisioningState"] == "Succeeded"
    assert properties["eventDeliverySchema"] == "EventGridSchema"
    assert properties["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert properties["destination"] == {
        "endpointType": "AzureFunction",
        "properties": {"resourceId": FUNCTION, "maxEventsPerBatch": 1, "preferredBatchSizeInKilobytes": 64},
    }
    assert properties["filter"]["advancedFilters"] == [string_in("data.operationName", 2)]
    assert "deadLetterDestination" not in properties


def test_an_event_subscription_under_a_missing_topic_is_refused_404(clients: Clients) -> None:
    path = f"{topic_path('egst-none')}/eventSubscriptions/to-function"

    for method, body in (("PUT", delivery()), ("GET", None)):
        assert error_of(call(clients, method, path, body)) == (
            404,
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource 'egst-none' not found.",
        )


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("abc", True),
        ("a" * 64, True),
        ("with-hyphens-1", True),
        ("ab", False),
        ("a" * 65, False),
        ("under_score", False),
    ],
)
def test_an_event_subscription_name_is_3_to_64_letters_digits_and_hyphens(
    sim: ArmSimulator, clients: Clients, name: str, accepted: bool
) -> None:
    put(sim, clients, topic_path(), subscription_topic())

    answer = call(clients, "PUT", f"{topic_path()}/eventSubscriptions/{name}", delivery())

    assert (answer.status_code == 201) is accepted
    if not accepted:
        assert error_of(answer)[:2] == (400, "InvalidRequest")


@pytest.mark.parametrize(
    ("filters", "refusal"),
    [
        ([string_in(f"data.key{i}", 1) for i in range(26)], "26 exceeds"),
        ([string_in("data.operationName", 13), string_in("subject", 13)], "26 across"),
        ([{"operatorType": "StringIn", "key": "subject"}], "values are required"),
        ([{"operatorType": "StringBeginsWith", "key": "subject", "values": []}], "values are required"),
        ([{"operatorType": "StringIn", "key": "subject", "values": ["x" * 513]}], "length 513"),
        ([{"operatorType": "StringAlmost", "key": "subject", "values": ["x"]}], "not supported"),
    ],
    ids=["26 filters", "26 values in two filters", "no values", "empty values", "513 characters", "operator"],
)
def test_advanced_filters_beyond_event_grids_limits_are_refused(
    sim: ArmSimulator, clients: Clients, filters: list[dict[str, Any]], refusal: str
) -> None:
    put(sim, clients, topic_path(), subscription_topic())

    answer = call(clients, "PUT", f"{topic_path()}/eventSubscriptions/to-function", delivery(*filters))

    status, code, message = error_of(answer)
    assert (status, code) == (400, "InvalidRequest") and refusal in message


def test_advanced_filters_at_event_grids_limits_are_accepted(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    at_limits = [
        string_in("data.operationName", 24),
        {"operatorType": "StringBeginsWith", "key": "subject", "values": ["x" * 512]},
    ]

    answer = call(clients, "PUT", f"{topic_path()}/eventSubscriptions/to-function", delivery(*at_limits))

    assert answer.status_code == 201


@pytest.mark.parametrize(
    "resource_id",
    [
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Web/sites/func-app",
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/st/functions/f",
        "",
    ],
    ids=["the site alone", "not a site", "none"],
)
def test_an_azure_function_destination_must_name_a_function(
    sim: ArmSimulator, clients: Clients, resource_id: str
) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    body = delivery()
    body["properties"]["destination"]["properties"]["resourceId"] = resource_id

    answer = call(clients, "PUT", f"{topic_path()}/eventSubscriptions/to-function", body)

    status, code, message = error_of(answer)
    assert (status, code) == (400, "InvalidRequest") and "function" in message


def test_an_event_subscription_is_deleted_then_gone(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    path = f"{topic_path()}/eventSubscriptions/to-function"
    put(sim, clients, path, delivery())

    assert call(clients, "DELETE", path).status_code == 202
    sim.wait_idle(5)

    assert call(clients, "GET", path).status_code == 404
    assert call(clients, "GET", f"{topic_path()}/eventSubscriptions").json() == {"value": []}
    assert call(clients, "DELETE", path).status_code == 204


# ---------------------------------------------------------------------- ARM's front door


def test_a_caller_without_a_role_is_refused_the_topic_and_its_event_subscriptions(
    sim: ArmSimulator, clients: Clients
) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    nobody = caller(sim, "nobody")

    topic = authorization_failure(refused(lambda: _raise(call(nobody.clients, "GET", topic_path()))))
    listed = authorization_failure(
        refused(lambda: _raise(call(nobody.clients, "GET", f"{topic_path()}/eventSubscriptions")))
    )

    assert (topic["action"], topic["scope"]) == ("Microsoft.EventGrid/systemTopics/read", topic_path())
    assert listed["action"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions/read"


def test_a_reader_may_list_the_topics_and_may_not_write_one(sim: ArmSimulator, clients: Clients) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    reader = caller(sim, "reader")
    sim.grant(reader.oid, "Reader", f"/subscriptions/{SUB}")

    listed = call(reader.clients, "GET", f"/subscriptions/{SUB}/{PROVIDER}")
    write = authorization_failure(
        refused(lambda: _raise(call(reader.clients, "PUT", topic_path("egst-two"), storage_topic("st"))))
    )

    assert [t["name"] for t in listed.json()["value"]] == ["egst-sub"]
    assert write["action"] == "Microsoft.EventGrid/systemTopics/write"


def test_event_grid_requests_are_recorded_throttled_and_faulted_as_every_arm_request(
    sim: ArmSimulator, clients: Clients
) -> None:
    put(sim, clients, topic_path(), subscription_topic())
    reads = f"/subscriptions/{SUB}/{PROVIDER}"
    sim.set_faults(Faults(rate_500=1.0, only_types=frozenset({"Microsoft.EventGrid/systemTopics"})))
    faulted = call(clients, "GET", reads, retry_total=0)
    sim.set_faults(None)
    sim.throttle_next(TEST_PRINCIPAL, "reads", 1)
    throttled = call(clients, "GET", reads, retry_total=0)

    assert faulted.status_code == 500 and throttled.status_code == 429
    recorded = [
        (r.method, r.operation, r.status)
        for r in sim.requests()
        if r.resource_type.startswith("Microsoft.EventGrid")
    ]
    assert recorded == [
        ("PUT", "Microsoft.EventGrid/systemTopics/write", 201),
        ("GET", "Microsoft.EventGrid/systemTopics/read", 500),
        ("GET", "Microsoft.EventGrid/systemTopics/read", 429),
    ]


def _raise(answer: Any) -> Any:
    answer.raise_for_status()
    return answer


# ---------------------------------------------------------------------- the local deployment


def test_deploy_events_creates_the_topic_and_event_subscription_infra_deploys(
    local_azure: LocalAzure,
) -> None:
    local_azure.arm.reset(access=True)
    local_azure.authorize(ESTATE_SUBSCRIPTION)
    bicep = EVENT_SUBSCRIPTION_BICEP.read_text(encoding="utf-8")

    deployed = local_azure.deploy_events(ESTATE_SUBSCRIPTION, restricted_resource_groups=("rg-a", "rg-b"))

    owner = make_clients(local_azure.arm, StaticCredential(estate_owner().get_token().token))
    topics = call(owner, "GET", f"/subscriptions/{ESTATE_SUBSCRIPTION}/{PROVIDER}").json()["value"]
    assert [(t["id"], t["properties"]["source"]) for t in topics] == [
        (deployed.topic_id, f"/subscriptions/{ESTATE_SUBSCRIPTION}")
    ]
    assert topics[0]["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    (served,) = call(owner, "GET", f"{deployed.topic_id}/eventSubscriptions").json()["value"]
    properties = served["properties"]
    assert served["id"] == deployed.event_subscription_id
    assert properties["provisioningState"] == "Succeeded" and properties["topic"] == deployed.topic_id
    assert properties["destination"]["properties"]["resourceId"] == (
        f"{local_azure.function_app_id}/functions/on_resource_event"
    )
    assert local_azure.environment()["FUNCTION_APP_ID"] == local_azure.function_app_id
    operations, subjects = properties["filter"]["advancedFilters"]
    assert operations["operatorType"] == "StringIn" and operations["key"] == "data.operationName"
    assert operations["values"] == bicep_list(bicep, "var handledOperations =")
    assert {v.lower() for v in operations["values"]} == {v.lower() for v in HANDLED_OPERATIONS}
    assert properties["filter"]["includedEventTypes"] == list(HANDLED_EVENT_TYPES)
    assert subjects == {
        "operatorType": "StringBeginsWith",
        "key": "subject",
        "values": [f"/subscriptions/{ESTATE_SUBSCRIPTION}/resourceGroups/{g}/" for g in ("rg-a", "rg-b")],
    }
    dead_letters = properties["deadLetterWithResourceIdentity"]
    assert dead_letters["deadLetterDestination"]["properties"]["blobContainerName"] == "eventgrid-deadletter"
    writers = {
        r.principal for r in local_azure.arm.requests() if r.resource_type.startswith("Microsoft.EventGrid")
    }
    assert writers == {ESTATE_OWNER}


def test_deploy_events_without_restricted_groups_filters_on_the_operations_alone(
    local_azure: LocalAzure,
) -> None:
    local_azure.arm.reset(access=True)
    local_azure.authorize(ESTATE_SUBSCRIPTION)

    deployed = local_azure.deploy_events(ESTATE_SUBSCRIPTION, schema="CloudEventSchemaV1_0")

    owner = make_clients(local_azure.arm, StaticCredential(estate_owner().get_token().token))
    properties = call(owner, "GET", deployed.event_subscription_id).json()["properties"]
    assert [f["key"] for f in properties["filter"]["advancedFilters"]] == ["data.operationName"]
    assert properties["eventDeliverySchema"] == "CloudEventSchemaV1_0"


def test_deploy_events_splits_more_restricted_groups_than_fit_over_event_subscriptions(
    local_azure: LocalAzure,
) -> None:
    """Nine restricted groups' prefixes and the 17 operations are 26 values, more than Event Grid
    takes in one event subscription: infra deploys two, and Event Grid accepts both."""
    local_azure.arm.reset(access=True)
    local_azure.authorize(ESTATE_SUBSCRIPTION)
    groups = tuple(f"rg-{i}" for i in range(9))

    deployed = local_azure.deploy_events(ESTATE_SUBSCRIPTION, restricted_resource_groups=groups)

    owner = make_clients(local_azure.arm, StaticCredential(estate_owner().get_token().token))
    served = call(owner, "GET", f"{deployed.topic_id}/eventSubscriptions").json()["value"]
    assert sorted(s["id"] for s in served) == sorted(deployed.event_subscription_ids)
    assert [i.rsplit("/", 1)[1] for i in deployed.event_subscription_ids] == [
        "vmss-public-ip-remediator",
        "vmss-public-ip-remediator-2",
    ]
    subjects: list[str] = []
    for subscription in served:
        properties = subscription["properties"]
        assert properties["provisioningState"] == "Succeeded"
        operations, subject = properties["filter"]["advancedFilters"]
        assert len(operations["values"]) + len(subject["values"]) <= 25
        assert {v.lower() for v in operations["values"]} == {v.lower() for v in HANDLED_OPERATIONS}
        subjects += subject["values"]
    assert sorted(subjects) == sorted(
        f"/subscriptions/{ESTATE_SUBSCRIPTION}/resourceGroups/{g}/" for g in groups
    )


def test_with_the_role_at_resource_groups_the_remediator_reads_the_topic_in_the_apps_group_alone(
    local_azure: LocalAzure,
) -> None:
    """authorize(resource_groups=...) is what infra leaves in roleAssignmentScope=resourceGroups: the
    custom role at the restricted groups, and the event reads at the app's resource group, where the
    system topic is. The remediator reads the topic and its event subscriptions there, nothing else
    of the group, and not the subscription's list of topics."""
    local_azure.arm.reset(access=True)
    local_azure.authorize(ESTATE_SUBSCRIPTION, resource_groups=("rg-a",))
    deployed = local_azure.deploy_events(ESTATE_SUBSCRIPTION, restricted_resource_groups=("rg-a",))
    remediator = make_clients(local_azure.arm, StaticCredential(LoopbackCredential().get_token().token))
    group = f"/subscriptions/{ESTATE_SUBSCRIPTION}/resourceGroups/{APP_RESOURCE_GROUP}"

    topics = call(remediator, "GET", f"{group}/{PROVIDER}")
    subscriptions = call(remediator, "GET", f"{deployed.topic_id}/eventSubscriptions")
    elsewhere = call(remediator, "GET", f"/subscriptions/{ESTATE_SUBSCRIPTION}/{PROVIDER}", retry_total=0)
    scale_sets = call(
        remediator, "GET", f"{group}/providers/Microsoft.Compute/virtualMachineScaleSets", retry_total=0
    )

    assert [t["id"] for t in topics.json()["value"]] == [deployed.topic_id]
    assert [s["id"] for s in subscriptions.json()["value"]] == [deployed.event_subscription_id]
    assert elsewhere.status_code == 403
    assert scale_sets.status_code == 403
