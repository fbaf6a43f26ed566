"""Management-group mode (infra/main.bicep ``managementGroupId``), offline.

The policy's deployment template (infra/app/event-wiring-template.json) and its existenceCondition
(infra/app/management-group.bicep) against the subscription mode's event wiring, resource for
resource: app/events-resource-group.bicep, app/event-topic.bicep, app/deadletter-access.bicep and
app/event-subscription.bicep (as main.bicep deploys it in subscriptions mode: one chunk, no subject
filter), and the filter's lists against remediation.events. The roles' scopes are the group's, and
with managementGroupId empty nothing of the mode is deployed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from remediation import events

# The helpers of test_infra.py, imported by module name: mypy maps the file to "test_infra" and pytest
# (import-mode importlib, pythonpath tests) to "infra.test_infra".
_infra: Any = importlib.import_module("infra.test_infra")
APP: Path = _infra.APP
INFRA: Path = _infra.INFRA
MONITORED: list[str] = _infra.MONITORED
ROLE_ACTIONS_FILE: Path = _infra.ROLE_ACTIONS_FILE
evaluate: Callable[..., Any] = _infra.evaluate
main_modules_deployed: Callable[..., list[dict[str, Any]]] = _infra.main_modules_deployed
module: Callable[[str], dict[str, Any]] = _infra.module
parse: Callable[[Path], dict[str, Any]] = _infra.parse
resolve: Callable[..., Any] = _infra.resolve
resource: Callable[..., dict[str, Any]] = _infra.resource
role_actions_file: Callable[[], list[str]] = _infra.role_actions_file


TEMPLATE_FILE = APP / "event-wiring-template.json"
MG_MODULE = "management-group.bicep"
MG_MODULES = [
    "managementGroupAccess",
    "managementGroupDeadLetterGrant",
    "managementGroupRemediation",
]
SUBSCRIPTION_MODULES = [
    "remediatorRole",
    "remediatorJoinRole",
    "remediatorAccessSubscriptions",
    "eventTopics",
    "eventTopicMonitoring",
    "deadLetterAccess",
    "eventSubscriptions",
]
ALIAS = "Microsoft.EventGrid/systemTopics/eventSubscriptions/"


def body(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A resource's body, through its condition (``if (...)``) if it has one."""
    config = cast(dict[str, Any], doc["resources"][name]["config"])
    return cast(dict[str, Any], config["config"]) if "condition" in config else config


def template() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(TEMPLATE_FILE.read_text(encoding="utf-8")))


def template_resource(kind: str) -> dict[str, Any]:
    """The one resource of this type, in the template or in one of its nested deployments."""

    def walk(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = []
        for body in resources:
            if body["type"] == kind:
                found.append(body)
            nested = body.get("properties", {}).get("template")
            if body["type"] == "Microsoft.Resources/deployments" and nested:
                found += walk(nested["resources"])
        return found

    (found,) = walk(template()["resources"])
    return found


def nested_deployment(name: str) -> dict[str, Any]:
    (found,) = [
        body
        for body in template()["resources"]
        if body["type"] == "Microsoft.Resources/deployments" and name in body["name"]
    ]
    return cast(dict[str, Any], found)


def api_version(doc: dict[str, Any], symbol: str) -> str:
    return str(doc["resources"][symbol]["api_version"])


def policy_rule() -> dict[str, Any]:
    doc = module(MG_MODULE)
    return cast(dict[str, Any], body(doc, "wiringPolicy")["properties"]["policyRule"])


def given_template_variables() -> dict[str, Any]:
    return {
        "handledOperations": template()["variables"]["handledOperations"],
        "includedEventTypes": template()["variables"]["includedEventTypes"],
        "eventSubscriptionName": template()["variables"]["eventSubscriptionName"],
        "wiringTemplate": template(),
    }


# -- one list, in the code and in both modes ------------------------------------------------------


def test_the_template_filters_exactly_what_the_code_handles_and_the_subscription_mode_filters() -> None:
    variables = template()["variables"]
    listed = resolve(module("event-subscription.bicep"), "handledOperations")
    assert variables["handledOperations"] == listed
    assert {op.lower() for op in variables["handledOperations"]} == {
        op.lower() for op in events.HANDLED_OPERATIONS
    }
    assert len(variables["handledOperations"]) == len(events.HANDLED_OPERATIONS)
    assert sorted(variables["includedEventTypes"]) == sorted(events.HANDLED_EVENT_TYPES)
    doc = module("event-subscription.bicep")
    included = resource(doc, "remediatorEvents")["properties"]["filter"]["includedEventTypes"]
    assert variables["includedEventTypes"] == included
    assert variables["eventSubscriptionName"] == resolve(doc, "eventSubscriptionName")


def test_the_policy_loads_its_lists_and_template_from_the_one_template_file() -> None:
    doc = module(MG_MODULE)
    for name, path in (
        ("wiringTemplate", None),
        ("handledOperations", "$.variables.handledOperations"),
        ("includedEventTypes", "$.variables.includedEventTypes"),
        ("eventSubscriptionName", "$.variables.eventSubscriptionName"),
    ):
        loaded = doc["variables"][name]["value"]["function"]
        assert loaded["type"] == "load_json_content"
        assert (APP / loaded["parameters"]["file_path"]).resolve() == TEMPLATE_FILE.resolve()
        assert loaded["parameters"].get("json_path") == path
    deployment = policy_rule()["then"]["details"]["deployment"]
    assert deployment["properties"]["template"] == "wiringTemplate"


# -- the deployment template, resource for resource -------------------------------------------------


def test_the_resource_group_is_the_subscription_modes() -> None:
    doc = module("events-resource-group.bicep")
    bicep = resource(doc, "eventsResourceGroup")
    group = template_resource("Microsoft.Resources/resourceGroups")
    assert group["apiVersion"] == api_version(doc, "eventsResourceGroup")
    assert set(group) - {"type", "apiVersion"} == set(bicep) == {"name", "location", "tags"}
    assert group["name"] == "[parameters('resourceGroupName')]"


def test_the_system_topic_is_the_subscription_modes() -> None:
    doc = module("event-topic.bicep")
    bicep = resource(doc, "systemTopic")
    topic = template_resource("Microsoft.EventGrid/systemTopics")
    assert topic["apiVersion"] == api_version(doc, "systemTopic")
    assert topic["location"] == bicep["location"] == "global"
    assert topic["identity"] == bicep["identity"] == {"type": "SystemAssigned"}
    assert topic["properties"]["topicType"] == bicep["properties"]["topicType"]
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert topic["properties"]["source"] == "[subscription().id]"
    # The policy deploys in the subscription itself: its system topic, in the app's group name.
    deployment = nested_deployment("remediator-topic")
    assert deployment["resourceGroup"] == "[parameters('resourceGroupName')]"
    assert deployment["properties"]["parameters"]["name"] == {"value": "[parameters('topicName')]"}


def test_the_dead_letter_access_is_the_subscription_modes() -> None:
    doc = module("deadletter-access.bicep")
    bicep = resource(doc, "deadLetterAccess")
    access = template_resource("Microsoft.Authorization/roleAssignments")
    assert access["apiVersion"] == api_version(doc, "deadLetterAccess")
    assert template()["variables"]["storageBlobDataContributor"] == resolve(doc, "storageBlobDataContributor")
    assert access["properties"]["principalType"] == bicep["properties"]["principalType"] == "ServicePrincipal"
    assert access["properties"]["principalId"] == "[parameters('topicPrincipalId')]"
    # The container, named as deadletter-access.bicep names it: guid(container id, topic id, role).
    assert access["scope"] == (
        "[format('Microsoft.Storage/storageAccounts/{0}/blobServices/default/containers/{1}', "
        "parameters('storageAccountName'), parameters('containerName'))]"
    )
    assert access["name"].startswith(
        "[guid(resourceId('Microsoft.Storage/storageAccounts/blobServices/containers'"
    )
    assert "parameters('topicId'), parameters('storageBlobDataContributor'))]" in access["name"]
    # In the app's resource group (the storage account's), whatever subscription it is in.
    deployment = nested_deployment("remediator-deadletter-access")
    assert deployment["subscriptionId"] == "[variables('storageAccountSubscriptionId')]"
    assert deployment["resourceGroup"] == "[variables('storageAccountResourceGroup')]"
    # The event subscription waits for it, as main.bicep's eventSubscriptions wait for deadLetterAccess.
    assert "remediator-deadletter-access" in nested_deployment("remediator-events")["dependsOn"][0]


def subscription_mode_event_subscription() -> dict[str, Any]:
    """event-subscription.bicep as main.bicep deploys it in subscriptions mode (one chunk)."""
    doc = module("event-subscription.bicep")
    deployed = evaluate(doc, doc["resources"]["remediatorEvents"]["config"], {"subjectPrefixes": []})
    (only,) = deployed
    return cast(dict[str, Any], only)


def test_the_event_subscription_is_the_subscription_modes() -> None:
    doc = module("event-subscription.bicep")
    bicep = subscription_mode_event_subscription()
    wired = template_resource("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert wired["apiVersion"] == api_version(doc, "remediatorEvents")
    assert (
        wired["name"]
        == "[format('{0}/{1}', parameters('systemTopicName'), parameters('eventSubscriptionName'))]"
    )
    assert bicep["name"] == template()["variables"]["eventSubscriptionName"]
    ours, theirs = wired["properties"], bicep["properties"]
    assert set(ours) == set(theirs)
    assert ours["eventDeliverySchema"] == "[parameters('eventDeliverySchema')]"
    assert ours["destination"]["endpointType"] == theirs["destination"]["endpointType"] == "AzureFunction"
    assert ours["destination"]["properties"] == {
        **theirs["destination"]["properties"],
        "resourceId": "[format('{0}/functions/on_resource_event', parameters('functionAppId'))]",
    }
    assert theirs["destination"]["properties"]["resourceId"] == "${functionAppId}/functions/on_resource_event"
    assert ours["retryPolicy"] == theirs["retryPolicy"]
    dead_letter, bicep_dead_letter = (
        ours["deadLetterWithResourceIdentity"],
        theirs["deadLetterWithResourceIdentity"],
    )
    assert dead_letter["identity"] == bicep_dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert dead_letter["deadLetterDestination"]["properties"] == {
        "resourceId": "[parameters('deadLetterStorageAccountId')]",
        "blobContainerName": "[parameters('deadLetterContainerName')]",
    }
    assert set(bicep_dead_letter["deadLetterDestination"]["properties"]) == {
        "resourceId",
        "blobContainerName",
    }
    # The filter: the same event types and operations (given through parameters from the variables).
    assert ours["filter"]["includedEventTypes"] == "[parameters('includedEventTypes')]"
    (operations,) = ours["filter"]["advancedFilters"]
    (bicep_operations,) = theirs["filter"]["advancedFilters"]
    assert {**operations, "values": bicep_operations["values"]} == bicep_operations
    assert operations["values"] == "[parameters('handledOperations')]"
    passed = nested_deployment("remediator-events")["properties"]["parameters"]
    assert passed["handledOperations"] == {"value": "[variables('handledOperations')]"}
    assert passed["includedEventTypes"] == {"value": "[variables('includedEventTypes')]"}
    assert theirs["filter"]["includedEventTypes"] == template()["variables"]["includedEventTypes"]


def test_every_template_parameter_is_given_by_the_policy() -> None:
    deployment = policy_rule()["then"]["details"]["deployment"]
    assert set(deployment["properties"]["parameters"]) == set(template()["parameters"])
    allowed = template()["parameters"]["eventDeliverySchema"]["allowedValues"]
    main = parse(INFRA / "main.bicep")["parameters"]["eventDeliverySchema"]
    (decorator,) = [d for d in main["decorators"] if d["type"] == "allowed"]
    assert decorator["argument"] == allowed


# -- the policy ------------------------------------------------------------------------------------


def test_the_policy_deploys_if_the_event_subscription_does_not_exist_in_each_subscription() -> None:
    rule = policy_rule()
    assert rule["if"] == {"field": "type", "equals": "Microsoft.Resources/subscriptions"}
    doc = module(MG_MODULE)
    parameters = body(doc, "wiringPolicy")["properties"]["parameters"]
    assert parameters["effect"]["defaultValue"] == "DeployIfNotExists"
    assert rule["then"]["effect"].replace("\\'", "'") == "[parameters('effect')]"  # pycep keeps the escapes
    details = rule["then"]["details"]
    assert details["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    assert details["name"] == "${topicName}/${eventSubscriptionName}"
    assert details["existenceScope"] == "resourceGroup"
    assert details["resourceGroupName"] == "resourceGroupName"
    assert details["deploymentScope"] == "subscription"
    assert details["deployment"]["properties"]["mode"] == "incremental"
    assert body(doc, "wiringPolicy")["properties"]["mode"] == "All"


def test_the_existence_condition_holds_the_subscription_modes_event_subscription() -> None:
    details = policy_rule()["then"]["details"]
    conditions = evaluate(module(MG_MODULE), details["existenceCondition"], given_template_variables())[
        "allOf"
    ]
    fields = {c["field"].removeprefix(ALIAS): c["equals"] for c in conditions if "field" in c}
    bicep = subscription_mode_event_subscription()["properties"]
    assert fields == {
        "destination.endpointType": bicep["destination"]["endpointType"],
        "destination.AzureFunction.resourceId": bicep["destination"]["properties"]["resourceId"],
        "eventDeliverySchema": "eventDeliverySchema",
        "retryPolicy.maxDeliveryAttempts": bicep["retryPolicy"]["maxDeliveryAttempts"],
        "retryPolicy.eventTimeToLiveInMinutes": bicep["retryPolicy"]["eventTimeToLiveInMinutes"],
        "deadLetterWithResourceIdentity.identity.type": "SystemAssigned",
        "deadLetterWithResourceIdentity.deadLetterDestination.endpointType": "StorageBlob",
    }
    counts = {c["count"]["field"].removeprefix(ALIAS): c for c in conditions if "count" in c}
    assert set(counts) == {
        "filter.includedEventTypes[*]",
        "filter.advancedFilters[*].StringIn.values[*]",
    }
    types = counts["filter.includedEventTypes[*]"]
    assert sorted(types["count"]["where"]["in"]) == sorted(events.HANDLED_EVENT_TYPES)
    assert types["equals"] == len(events.HANDLED_EVENT_TYPES)
    operations = counts["filter.advancedFilters[*].StringIn.values[*]"]
    assert {op.lower() for op in operations["count"]["where"]["in"]} == {
        op.lower() for op in events.HANDLED_OPERATIONS
    }
    assert operations["equals"] == len(events.HANDLED_OPERATIONS)
    for count in counts.values():
        assert count["count"]["where"]["field"] == count["count"]["field"]


def test_the_policy_assignment_has_its_own_identity_and_the_roles_it_needs_at_the_group() -> None:
    doc = module(MG_MODULE)
    assignment = body(doc, "wiringAssignment")
    assert assignment["identity"] == {"type": "SystemAssigned"}
    assert assignment["properties"]["policyDefinitionId"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "wiringPolicy", "operand_2": "id"},
        }
    }
    access = body(doc, "wiringAccess")
    assert json.dumps(access["properties"]["roleDefinitionId"]) == json.dumps(
        {
            "operator": {
                "type": "property_accessor",
                "operands": {"operand_1": "wiringRole", "operand_2": "id"},
            }
        }
    )
    assert "wiringAssignment" in json.dumps(access["properties"]["principalId"])
    assert "scope" not in access  # the deployment's scope: the management group
    role = body(doc, "wiringRole")["properties"]
    assert role["assignableScopes"] == [
        {"function": {"type": "management_group", "parameters": {"identifier": None}, "property_name": "id"}}
    ]
    # Least privilege: the resource group, the nested deployments, the topic and its subscription.
    actions = resolve(doc, role["permissions"][0]["actions"])
    assert all(not action.endswith("*") and not action.endswith("/delete") for action in actions)
    assert {a.split("/")[0] for a in actions} == {"Microsoft.Resources", "Microsoft.EventGrid"}
    assert "Microsoft.Resources/subscriptions/resourceGroups/write" in actions
    assert "Microsoft.EventGrid/systemTopics/write" in actions
    assert "Microsoft.EventGrid/systemTopics/eventSubscriptions/write" in actions
    details = policy_rule()["then"]["details"]
    assert details["roleDefinitionIds"] == [
        {
            "operator": {
                "type": "property_accessor",
                "operands": {"operand_1": "wiringRole", "operand_2": "id"},
            }
        }
    ]
    for symbol in ("wiringRole", "wiringPolicy", "wiringAssignment", "wiringAccess"):
        assert doc["resources"][symbol]["config"]["condition"] == "deployPolicy"


def test_the_dead_letter_grant_may_only_assign_storage_blob_data_contributor() -> None:
    doc = module("deadletter-grant-access.bicep")
    grant = resource(doc, "grantAccess")["properties"]
    assert resolve(doc, "roleBasedAccessControlAdministrator") == "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
    assert resolve(doc, "storageBlobDataContributor") == resolve(
        module("deadletter-access.bicep"), "storageBlobDataContributor"
    )
    assert grant["conditionVersion"] == "2.0"
    condition = resolve(doc, grant["condition"])
    assert condition.count("GuidEquals {${storageBlobDataContributor}}") == 2
    assert "ServicePrincipal" in condition
    main = parse(INFRA / "main.bicep")
    grant_module = main["modules"]["managementGroupDeadLetterGrant"]["config"]["config"]
    assert grant_module["scope"] == "rg"  # the app's group: the storage account's


# -- the remediator's role at the group -------------------------------------------------------------


def test_the_remediators_role_is_defined_and_assigned_at_the_management_group() -> None:
    doc = module(MG_MODULE)
    assert doc["globals"]["scope"]["value"] == "managementGroup"
    loaded = doc["variables"]["remediatorActions"]["value"]["function"]
    assert (APP / loaded["parameters"]["file_path"]).resolve() == ROLE_ACTIONS_FILE.resolve()
    assert loaded["parameters"]["json_path"] == "$.actions"
    role = resource(doc, "remediatorRole")["properties"]
    assert role["permissions"][0]["actions"] == "remediatorActions"
    assert role["permissions"][0]["notActions"] == [] and role["permissions"][0]["dataActions"] == []
    assert role["assignableScopes"] == [
        {"function": {"type": "management_group", "parameters": {"identifier": None}, "property_name": "id"}}
    ]
    assert len(role_actions_file()) > 0
    access = resource(doc, "remediatorAccess")
    assert "scope" not in access
    assert access["properties"]["principalId"] == "principalId"
    assert access["properties"]["principalType"] == "ServicePrincipal"
    assert "condition" not in doc["resources"]["remediatorAccess"]["config"]  # phase 1 already


def test_main_reaches_the_management_group_through_the_tenant() -> None:
    hop = parse(APP / "management-group-hop.bicep")
    assert hop["globals"]["scope"]["value"] == "tenant"
    for name, path in (
        ("managementGroupResources", "management-group.bicep"),
        ("remediation", "management-group-remediation.bicep"),
    ):
        body = hop["modules"][name]
        assert body["detail"]["path"] == path
        assert body["config"]["config"]["scope"] == {
            "function": {"type": "management_group", "parameters": {"identifier": "managementGroupId"}}
        }
    main = parse(INFRA / "main.bicep")
    for name in ("managementGroupAccess", "managementGroupRemediation"):
        config = main["modules"][name]["config"]["config"]
        assert main["modules"][name]["detail"]["path"] == "app/management-group-hop.bicep"
        assert config["scope"]["function"]["type"] == "tenant"
    remediation = parse(APP / "management-group-remediation.bicep")
    task = resource(remediation, "remediation")
    assert remediation["resources"]["remediation"]["type"] == "Microsoft.PolicyInsights/remediations"
    assert task["properties"]["resourceDiscoveryMode"] == "ExistingNonCompliant"
    # The remediation task waits for the identity's dead-letter grant.
    assert main["modules"]["managementGroupRemediation"]["config"]["config"]["dependsOn"] == [
        "managementGroupDeadLetterGrant"
    ]


# -- the modes -------------------------------------------------------------------------------------


def deployed(mode: dict[str, Any]) -> dict[str, int]:
    topics = [{"outputs": {"name": f"topic-{i}", "id": f"id-{i}", "principalId": f"p-{i}"}} for i in range(2)]
    given = {"monitoredSubscriptions": MONITORED, "appResourceGroupName": "rg-app", "eventTopics": topics}
    given = {**given, "resourceToken": "tok", **mode}
    return {name: len(main_modules_deployed(name, **given)) for name in MG_MODULES + SUBSCRIPTION_MODULES}


@pytest.mark.parametrize("phase2", [False, True])
def test_without_a_management_group_nothing_of_its_mode_is_deployed(phase2: bool) -> None:
    counts = deployed({"managementGroupId": "", "deployEventSubscriptions": phase2})
    assert {name: counts[name] for name in MG_MODULES} == dict.fromkeys(MG_MODULES, 0)
    # The subscription list, as before: one of each per monitored subscription.
    assert counts["remediatorRole"] == counts["remediatorJoinRole"] == 1
    assert counts["remediatorAccessSubscriptions"] == counts["eventTopics"] == len(MONITORED)
    assert counts["deadLetterAccess"] == counts["eventTopicMonitoring"] == len(MONITORED)
    assert counts["eventSubscriptions"] == (len(MONITORED) if phase2 else 0)


@pytest.mark.parametrize("phase2", [False, True])
def test_with_a_management_group_the_group_takes_the_subscription_lists_place(phase2: bool) -> None:
    counts = deployed({"managementGroupId": "mg-platform", "deployEventSubscriptions": phase2})
    assert {name: counts[name] for name in SUBSCRIPTION_MODULES} == dict.fromkeys(SUBSCRIPTION_MODULES, 0)
    assert counts["managementGroupAccess"] == 1
    assert counts["managementGroupDeadLetterGrant"] == counts["managementGroupRemediation"] == int(phase2)
    (access,) = main_modules_deployed(
        "managementGroupAccess",
        managementGroupId=" mg-platform ",
        deployEventSubscriptions=phase2,
        monitoredSubscriptions=MONITORED,
        resourceToken="tok",
    )
    assert access["params"]["managementGroupId"] == "mg-platform"
    main = parse(INFRA / "main.bicep")
    wiring = main["modules"]["managementGroupAccess"]["config"]["config"]["params"]["wiring"]
    assert access["params"]["wiring"]["deployPolicy"] is phase2
    assert wiring["deployPolicy"] == "deployEventSubscriptions"
    assert json.dumps(wiring["principalId"]).count('"identity"') == 1 and '"principalId"' in json.dumps(
        wiring["principalId"]
    )
    assert json.dumps(wiring["functionAppId"]).count('"function"') == 1 and '"id"' in json.dumps(
        wiring["functionAppId"]
    )
    assert json.dumps(wiring["deadLetterStorageAccountId"]).count('"storage"') == 1 and '"id"' in json.dumps(
        wiring["deadLetterStorageAccountId"]
    )
    assert wiring["resourceGroupName"] == "appResourceGroupName"
    assert wiring["topicName"] == "eventTopicName"
    assert wiring["deadLetterContainerName"] == "deadLetterContainerName"
    # The hop hands every management-group parameter on.
    hop = parse(APP / "management-group-hop.bicep")
    passed = hop["modules"]["managementGroupResources"]["config"]["config"]["params"]
    assert set(passed) == set(wiring) <= set(module(MG_MODULE)["parameters"])


def test_the_other_subscriptions_resource_groups_follow_the_wired_subscriptions() -> None:
    main = parse(INFRA / "main.bicep")
    loop = main["modules"]["eventResourceGroups"]["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "wiredOtherSubscriptions"
    wired = main["variables"]["wiredOtherSubscriptions"]["value"]["function"]
    assert wired["type"] == "filter" and wired["parameters"]["input_array"] == "wiredSubscriptions"
    assert (
        evaluate(main, "wiredSubscriptions", {"managementGroupId": "mg", "monitoredSubscriptions": MONITORED})
        == []
    )
    assert evaluate(
        main, "wiredSubscriptions", {"managementGroupId": "", "monitoredSubscriptions": MONITORED}
    ) == (MONITORED)


def test_the_parameter_is_wired_through_azd_like_the_others() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["managementGroupId"] == {"value": "${MANAGEMENT_GROUP_ID}"}
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["managementGroupId"]["default"] == ""


def test_the_template_is_a_subscription_deployment_template() -> None:
    assert template()["$schema"].endswith("/subscriptionDeploymentTemplate.json#")
    assert Path(TEMPLATE_FILE).is_file()


@pytest.mark.parametrize(("group", "monitored"), [(" mg-platform ", ["mg-platform"]), ("", [])])
def test_the_apps_policy_monitors_the_group_in_its_mode(group: str, monitored: list[str]) -> None:
    main = parse(INFRA / "main.bicep")
    given = main["modules"]["policy"]["config"]["params"]["monitoredManagementGroups"]
    assert evaluate(main, given, {"managementGroupId": group}) == monitored
    text = (APP / "policy.bicep").read_text(encoding="utf-8")
    assert "monitored_management_groups: monitoredManagementGroups" in text


@pytest.mark.parametrize(
    ("restricted", "scopes"),
    [
        ("", [{"scope": "/providers/Microsoft.Management/managementGroups/mg-platform", "mode": "strip"}]),
        (
            "/providers/Microsoft.Management/managementGroups/mg-prod=evict",
            [{"scope": "/providers/Microsoft.Management/managementGroups/mg-prod", "mode": "evict"}],
        ),
    ],
)
def test_the_apps_policy_restricts_the_group_and_monitors_no_listed_subscription_in_its_mode(
    restricted: str, scopes: list[dict[str, str]]
) -> None:
    """In management-group mode the group is monitored and, unless restrictedScopes says
    otherwise, restricted as a whole; a listed subscription is not monitored (no role or wiring
    reaches it but through the group)."""
    main = parse(INFRA / "main.bicep")
    params = main["modules"]["policy"]["config"]["params"]
    given = {
        "managementGroupId": " mg-platform ",
        "restrictedScopes": restricted,
        "defaultMode": "strip",
        "monitoredSubscriptions": MONITORED,
    }
    assert evaluate(main, params["scopes"], given) == scopes
    assert evaluate(main, params["monitoredSubscriptions"], given) == []
    # Subscription mode unchanged: each monitored subscription, and the list monitored.
    listed = {**given, "managementGroupId": "", "restrictedScopes": ""}
    assert evaluate(main, params["scopes"], listed) == [
        {"scope": f"/subscriptions/{id}", "mode": "strip"} for id in MONITORED
    ]
    assert evaluate(main, params["monitoredSubscriptions"], listed) == MONITORED


def test_a_group_scope_is_no_resource_group_to_assign_the_role_at() -> None:
    main = parse(INFRA / "main.bicep")
    group = {"scope": "/providers/Microsoft.Management/managementGroups/mg-prod", "mode": "strip"}
    web = {"scope": f"/subscriptions/{MONITORED[0]}/resourceGroups/rg-web", "mode": "strip"}
    assert evaluate(main, "resourceGroupScopes", {"policyScopes": [group, web]}) == [web]


def test_the_groups_role_is_not_named_as_the_subscription_modes_so_switching_modes_does_not_clash() -> None:
    """Custom role names are unique in the tenant: a deployment switched from the subscription
    list to the group (or back) would otherwise meet its other role's name taken."""
    main = parse(INFRA / "main.bicep")
    given = {"environmentName": "prod", "resourceToken": "tok", "managementGroupId": " mg-platform "}
    at_group = main["modules"]["managementGroupAccess"]["config"]["config"]["params"]["wiring"]["roleName"]
    at_subscriptions = main["modules"]["remediatorRole"]["config"]["config"]["params"]["roleName"]
    assert evaluate(main, at_group, given) == "VMSS public IP remediator at mg-platform (prod tok)"
    assert evaluate(main, at_subscriptions, given) == "VMSS public IP remediator (prod tok)"
