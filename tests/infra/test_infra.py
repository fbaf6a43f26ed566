"""The deployment (infra/) against the code it deploys: offline, no Azure, no Bicep CLI.

Every ``.bicep`` file must parse (pycep-parser, the parser checkov uses), and the facts the
code depends on are read from the code itself, never from a copy kept here:
- the custom role grants exactly ``remediation.permissions.required_permissions()``, which the ARM
  gateway derives from its ``@arm_operation`` declarations, so adding or removing an ARM call
  fails this suite until ``infra/app/remediator-role-actions.json`` follows;
- the Event Grid filter lists exactly ``remediation.events.HANDLED_OPERATIONS``;
- the app settings cover what ``function_app.py`` binds to and what ``remediation.settings``
  reads, with the code's default names for the audit table and the re-check queue.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

from remediation import events, permissions
from remediation.arm import ArmGateway
from remediation.model import Mode, Trigger
from remediation.permissions import required_permissions
from remediation.settings import STORAGE_CONNECTION, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
APP = INFRA / "app"
ROLE_ACTIONS_FILE = APP / "remediator-role-actions.json"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()  # builds the grammar: once


@functools.cache
def _parse(path: Path) -> str:
    return json.dumps(_parser().parse(text=path.read_text(encoding="utf-8")))


def parse(path: Path) -> dict[str, Any]:
    """The file as pycep-parser reads it (a fresh copy: tests may not share mutations)."""
    return cast(dict[str, Any], json.loads(_parse(path)))


def module(name: str) -> dict[str, Any]:
    return parse(APP / name)


def resource(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A resource's body (the loop body for a resource loop)."""
    config = cast(dict[str, Any], doc["resources"][name]["config"])
    return cast(dict[str, Any], config["config"]) if "loop_type" in config else config


def variable(doc: Mapping[str, Any], name: str) -> Any:
    return doc["variables"][name]["value"]


def resolve(doc: Mapping[str, Any], value: Any) -> Any:
    """A literal as written, or the value of the variable it names (pycep renders both as str)."""
    if isinstance(value, str) and value in doc.get("variables", {}):
        return resolve(doc, variable(doc, value))
    return value


def allowed_values(parameter: Mapping[str, Any]) -> list[Any]:
    (decorator,) = [d for d in parameter["decorators"] if d["type"] == "allowed"]
    return cast(list[Any], decorator["argument"])


def role_actions_file() -> list[str]:
    document = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))
    actions = document["actions"]
    assert isinstance(actions, list)
    assert all(isinstance(action, str) for action in actions)
    return cast(list[str], actions)


def role_drift(role: set[str], code: frozenset[str]) -> tuple[list[str], list[str]]:
    """(actions the code performs that the role lacks, actions the role grants that the code never uses)."""
    return sorted(code - role), sorted(role - code)


# The functions and binary operators the evaluator knows, by pycep-parser's names for them and
# their parameters (Bicep's integer division truncates; every operand here is non-negative).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "length": len,
    "empty": lambda item_to_test: not item_to_test,
    "range": lambda start_index, count: list(range(start_index, start_index + count)),
    "take": lambda original_value, number_to_take: original_value[: max(number_to_take, 0)],
    "skip": lambda original_value, number_to_skip: original_value[max(number_to_skip, 0) :],
    "format": lambda *args, format_string: format_string.format(*args),
    "contains": lambda container, item_to_find: item_to_find in container,  # case-sensitive on strings
    "starts_with": lambda string_to_search, string_to_find: (  # startsWith() ignores case
        string_to_search.lower().startswith(string_to_find.lower())
    ),
    "trim": lambda string_to_trim: string_to_trim.strip(),
    "to_lower": lambda string_to_change: string_to_change.lower(),
    "first": lambda arg_1: arg_1[0] if arg_1 else None,
    "last": lambda arg_1: arg_1[-1] if arg_1 else None,
    "split": lambda input_string, delimiter: input_string.split(delimiter),
    # Arrays: every element once, in order of appearance (objects are merged, not handled here).
    "union": lambda *arrays: list(dict.fromkeys(item for array in arrays for item in array)),
    "tenant": lambda: "/",
    "subscription": lambda subscription_id: f"/subscriptions/{subscription_id}",
    "resource_group": lambda subscription_id, resource_group_name: (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group_name}"
    ),
}
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "substract": lambda a, b: a - b,  # pycep's spelling
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a // b,
    "modulo": lambda a, b: a % b,
    "equals": lambda a, b: a == b,
    "not_equals": lambda a, b: a != b,
    "less_than": lambda a, b: a < b,
    "less_than_or_equals": lambda a, b: a <= b,
    "greater_than": lambda a, b: a > b,
    "greater_than_or_equals": lambda a, b: a >= b,
    "and": lambda a, b: a and b,
    "or": lambda a, b: a or b,
    "index_accessor": lambda a, b: a[b],
}


def _access(value: Any, path: Any) -> Any:
    """``value.<path>``: pycep nests ``a.b.c`` to the right, as a.(b.c)."""
    if isinstance(path, str):
        return value[path]
    operands = path["operator"]["operands"]
    assert path["operator"]["type"] == "property_accessor", f"the evaluator knows no {path}"
    return _access(value[operands["operand_1"]], operands["operand_2"])


# ``${name}`` or ``${fn(name)}`` in a string, ``name`` given: the interpolations the evaluator knows.
_INTERPOLATION = re.compile(r"\$\{(?:(\w+)\()?(\w+)\)?\}")
_INTERPOLATED_FUNCTIONS: dict[str, Callable[[str], str]] = {"trim": str.strip, "toLower": str.lower}


def _interpolated(doc: Mapping[str, Any], found: re.Match[str], given: Mapping[str, Any]) -> Any:
    """A ``given`` value (a parameter or loop item the test names) put in; anything else left as
    written, as before the evaluator knew interpolation."""
    function, name = found.group(1), found.group(2)
    if name not in given:
        return found.group(0)
    value = given[name]
    if function is None:
        return value
    assert function in _INTERPOLATED_FUNCTIONS, f"the evaluator cannot interpolate {function}()"
    return _INTERPOLATED_FUNCTIONS[function](value)


def evaluate(doc: Mapping[str, Any], value: Any, given: Mapping[str, Any]) -> Any:
    """A Bicep expression as pycep-parser reads it, evaluated: variables (or ``given`` values for
    what a deployment computes), lists, objects, the functions in FUNCTIONS and the operators in
    OPERATORS, conditionals, and a ``for`` over ``range()`` (a resource loop's body or an output's:
    one value per index). Anything else fails the test, naming it."""
    if isinstance(value, str):
        if value in given:
            return given[value]
        if "${" in value:  # pycep leaves an interpolated string as written
            return _INTERPOLATION.sub(lambda found: str(_interpolated(doc, found, given)), value)
        return evaluate(doc, variable(doc, value), given) if value in doc.get("variables", {}) else value
    if isinstance(value, list):
        return [evaluate(doc, item, given) for item in value]
    if not isinstance(value, dict):
        return value
    if "loop_type" in value:
        loop = value["loop_type"]
        assert value["condition"] is None, f"the evaluator knows no filtered loop: {loop}"
        detail = loop["detail"]
        if loop["type"] == "range":
            start, count = evaluate(doc, detail["start_index"], given), evaluate(doc, detail["count"], given)
            return [
                evaluate(doc, value["config"], {**given, detail["index_name"]: index})
                for index in range(start, start + count)
            ]
        assert loop["type"] in ("array", "array_index"), f"the evaluator knows no {loop}"
        # pycep renders an expression as the array as its Python repr.
        array = detail["array_name"]
        items = evaluate(doc, ast.literal_eval(array) if array.startswith("{") else array, given)
        index_name = detail.get("index_name")
        return [
            evaluate(
                doc,
                value["config"],
                {**given, detail["item_name"]: item, **({index_name: i} if index_name else {})},
            )
            for i, item in enumerate(items)
        ]
    if "function" in value:
        function = value["function"]
        if function["type"] == "filter":  # a lambda: its expression for each element
            lambda_ = function["parameters"]
            element = lambda_["input_element"]
            return [
                item
                for item in evaluate(doc, lambda_["input_array"], given)
                if evaluate(doc, lambda_["expression"], {**given, element: item})
            ]
        assert function["type"] in FUNCTIONS, f"the evaluator knows no {function['type']}()"
        parameters = {k: evaluate(doc, v, given) for k, v in function.get("parameters", {}).items()}
        positional = [v for k, v in parameters.items() if k.startswith("arg_")]
        named = {k: v for k, v in parameters.items() if not k.startswith("arg_")}
        return FUNCTIONS[function["type"]](*positional, **named)
    if "operator" in value:
        operator = value["operator"]
        operands = operator["operands"]
        kind = operator["type"]
        if kind == "conditional":
            chosen = "true_value" if evaluate(doc, operands["condition"], given) else "false_value"
            return evaluate(doc, operands[chosen], given)
        if kind == "not":
            return not evaluate(doc, operands["bool_value"], given)
        first = evaluate(doc, operands["operand_1"], given)
        if kind == "property_accessor":  # the property's name as written, not a variable
            return _access(first, operands["operand_2"])
        assert kind in OPERATORS, f"the evaluator knows no {kind}"
        return OPERATORS[kind](first, evaluate(doc, operands["operand_2"], given))
    return {key: evaluate(doc, item, given) for key, item in value.items()}


# -- every file parses ------------------------------------------------------------------------


def test_there_is_a_main_template_and_modules() -> None:
    assert INFRA / "main.bicep" in BICEP_FILES
    assert len(BICEP_FILES) > 5


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_bicep_file_parses(path: Path) -> None:
    doc = parse(path)
    assert doc.get("resources") or doc.get("modules") or doc.get("outputs"), f"{path} declares nothing"


def _module_paths(doc: Mapping[str, Any]) -> Iterator[str]:
    for body in doc.get("modules", {}).values():
        yield body["detail"]["path"]


def test_every_module_and_loaded_file_exists() -> None:
    for path in BICEP_FILES:
        doc = parse(path)
        for relative in _module_paths(doc):
            assert (path.parent / relative).is_file(), f"{path.name}: module {relative} does not exist"
        for loaded in re.findall(r"load(?:Json|Text)Content\('([^']+)'", path.read_text(encoding="utf-8")):
            assert (path.parent / loaded).is_file(), f"{path.name}: loaded file {loaded!r} does not exist"


def test_main_is_deployed_at_subscription_scope() -> None:
    assert parse(INFRA / "main.bicep")["globals"]["scope"]["value"] == "subscription"


# -- the custom role: exactly what the code does -------------------------------------------------


def test_role_actions_are_exactly_the_arm_operations_of_the_code() -> None:
    actions = role_actions_file()
    assert len(actions) == len(set(actions)), "duplicate actions in remediator-role-actions.json"
    missing, unused = role_drift(set(actions), required_permissions())
    assert not missing and not unused, (
        "infra/app/remediator-role-actions.json differs from required_permissions():\n"
        f"  the code performs, the role lacks: {missing}\n"
        f"  the role grants, the code never performs: {unused}"
    )


def test_the_role_definition_grants_the_actions_file_and_nothing_else() -> None:
    doc = module("remediator-role.bicep")
    roles = [
        name
        for name, body in doc["resources"].items()
        if body["type"] == "Microsoft.Authorization/roleDefinitions"
    ]
    assert len(roles) == 1
    properties = resource(doc, roles[0])["properties"]
    assert properties["type"] == "CustomRole"
    (permission,) = properties["permissions"]
    assert permission["notActions"] == []
    assert permission["dataActions"] == []
    assert permission["notDataActions"] == []
    # The actions are the JSON file, loaded as is, or a part of it filtered out of it: the list is
    # kept in one place.
    reference = permission["actions"]
    assert isinstance(reference, str) and reference in doc["variables"], (
        "actions must name the loaded variable"
    )
    loaded = variable(doc, "allActions")["function"]
    assert loaded["type"] == "load_json_content"
    assert (APP / loaded["parameters"]["file_path"]).resolve() == ROLE_ACTIONS_FILE.resolve()
    assert loaded["parameters"]["json_path"] == "$.actions"
    actions = role_actions_file()
    assert role_actions(doc, reference) == actions  # the main role
    assert role_actions(doc, reference, joinsOnly=True) == [a for a in actions if "/join" in a]
    assert role_actions(doc, reference, eventReadsOnly=True) == EVENT_READS
    assert role_actions(doc, reference, joinsOnly=True, eventReadsOnly=True) == EVENT_READS


# What `remediation doctor` reads of Event Grid: the system topics and their event subscriptions.
EVENT_READS = [
    "Microsoft.EventGrid/systemTopics/eventSubscriptions/read",
    "Microsoft.EventGrid/systemTopics/read",
]


def role_actions(doc: Mapping[str, Any], reference: str, **chosen: bool) -> list[str]:
    """The actions remediator-role.bicep grants for these parameters (the others at their
    defaults), the loaded file given as the file itself."""
    defaults = {name: body["default"] for name, body in doc["parameters"].items() if "default" in body}
    actions = evaluate(doc, reference, {**defaults, **chosen, "allActions": role_actions_file()})
    assert isinstance(actions, list)
    return sorted(actions)


def test_the_join_role_holds_exactly_the_linked_actions_where_the_networks_live() -> None:
    """With the role per resource group, a set whose subnet, NSG or load balancer lives in another
    group would meet LinkedAuthorizationFailed on every write: those groups get the joins."""
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["networkResourceGroups"]["default"] == ""
    join_role = main["modules"]["remediatorJoinRole"]
    assert join_role["detail"]["path"] == "app/remediator-role.bicep"
    assert join_role["config"]["condition"] == SUBSCRIPTION_LIST_MODE
    assert join_role["config"]["config"]["params"]["joinsOnly"] is True
    assignment = main["modules"]["remediatorJoinsResourceGroups"]
    assert assignment["detail"]["path"] == "app/remediator-access-resource-group.bicep"
    assert assignment["config"]["loop_type"]["detail"]["array_name"] == "linkedResourceGroups"
    granted = assignment["config"]["config"]["params"]["roleDefinitionGuid"]
    assert "remediatorJoinRole" in json.dumps(granted)
    # What the filter keeps (contains '/join') is exactly the links the written documents carry.
    joins = {action for action in role_actions_file() if "/join" in action}
    assert joins == set(permissions.NIC_LINKS) | set(permissions.NIC_CONFIGURATION_LINKS)


class ModuleOutputs(dict[str, str]):
    """A module's outputs, each read as the text ``<module>.outputs.<name>``."""

    def __init__(self, symbol: str) -> None:
        super().__init__()
        self.symbol = symbol

    def __missing__(self, key: str) -> str:
        return f"{self.symbol}.outputs.{key}"


def main_modules_deployed(name: str, **given: Any) -> list[dict[str, Any]]:
    """main.bicep's module ``name`` as deployed with these parameters and variables: its
    configurations (one per item of its loop; none if its condition is false), the scopes evaluated,
    other modules' outputs as ``<module>.outputs.<name>``."""
    main = parse(INFRA / "main.bicep")
    config = main["modules"][name]["config"]
    # Parameters at their literal defaults (managementGroupId empty: the subscription-list mode).
    defaults = {
        parameter: body["default"]
        for parameter, body in main["parameters"].items()
        if isinstance(body.get("default"), (str, bool, int))
    }
    given = {
        **defaults,
        **{symbol: {"outputs": ModuleOutputs(symbol)} for symbol in main["modules"]},
        **given,
    }
    if "loop_type" in config:
        deployed = evaluate(main, config, given)
        assert isinstance(deployed, list)
        return deployed
    if "condition" in config:
        return [evaluate(main, config["config"], given)] if evaluate(main, config["condition"], given) else []
    return [evaluate(main, config, given)]


MONITORED = ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"]
# The condition of what only the subscription-list mode deploys (managementGroupId empty).
SUBSCRIPTION_LIST_MODE = {"operator": {"type": "not", "operands": {"bool_value": "managementGroupMode"}}}


@pytest.mark.parametrize("mode", ["subscriptions", "resourceGroups"])
def test_with_the_role_at_resource_groups_the_identity_may_read_the_event_topics_where_they_live(
    mode: str,
) -> None:
    """roleAssignmentScope=resourceGroups leaves the identity nothing in the app's resource group of
    each monitored subscription, where the system topic lives, so `remediation doctor` could not
    read it: a third custom role, the Event Grid reads alone (taken from the role-actions file),
    assigned there, once the group exists. With the role at the subscriptions, which covers them,
    neither the role nor an assignment."""
    given = {
        "roleAssignmentScope": mode,
        "monitoredSubscriptions": MONITORED,
        "appResourceGroupName": "rg-app",
    }
    main = parse(INFRA / "main.bicep")
    role = main["modules"]["remediatorEventReadRole"]
    assert role["detail"]["path"] == "app/remediator-role.bicep"
    definitions = main_modules_deployed("remediatorEventReadRole", **given)
    assignments = main_modules_deployed("remediatorEventReadsResourceGroups", **given)
    topics = main_modules_deployed("eventTopics", **given)
    if mode == "subscriptions":
        assert definitions == [] and assignments == []
        return
    (definition,) = definitions
    assert definition["params"]["eventReadsOnly"] is True and "joinsOnly" not in definition["params"]
    assert role["config"]["config"]["params"]["assignableScopes"] == "monitoredSubscriptionScopes"
    doc = module("remediator-role.bicep")
    reference = resource(doc, "remediatorRole")["properties"]["permissions"][0]["actions"]
    assert role_actions(doc, reference, eventReadsOnly=True) == EVENT_READS
    assert set(EVENT_READS) <= set(role_actions_file())
    assert main["modules"]["remediatorEventReadsResourceGroups"]["detail"]["path"] == (
        "app/remediator-access-resource-group.bicep"
    )
    assert (
        [a["scope"] for a in assignments]
        == [t["scope"] for t in topics]
        == [f"/subscriptions/{id}/resourceGroups/rg-app" for id in MONITORED]
    )
    for assignment in assignments:
        assert assignment["params"] == {
            "roleDefinitionGuid": "remediatorEventReadRole.outputs.roleDefinitionGuid",
            "principalId": "identity.outputs.principalId",
        }
    # The app's group here (rg), the events' groups in the other subscriptions.
    written = main["modules"]["remediatorEventReadsResourceGroups"]["config"]["config"]
    assert {"rg", "eventResourceGroups"} <= set(written["dependsOn"])


def test_only_the_event_reads_assignment_grants_the_event_reads_role() -> None:
    main = parse(INFRA / "main.bicep")
    granting = [
        name
        for name, body in main["modules"].items()
        if "remediatorEventReadRole" in json.dumps(body["config"])
    ]
    assert granting == ["remediatorEventReadsResourceGroups"]


def test_role_check_notices_an_added_or_removed_arm_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the role test sees when the gateway gains or loses an @arm_operation."""
    role = set(role_actions_file())
    missing, unused = role_drift(role, required_permissions())

    added = "Microsoft.Insights/autoscaleSettings/write"
    assert added not in role
    monkeypatch.setitem(permissions.OPERATIONS, added, {"put_autoscale_setting"})
    assert role_drift(role, required_permissions()) == (sorted([*missing, added]), unused)
    monkeypatch.delitem(permissions.OPERATIONS, added)

    removed = min(op for op in permissions.OPERATIONS if op.endswith("/read"))
    monkeypatch.delitem(permissions.OPERATIONS, removed)
    assert removed in role_drift(role, required_permissions())[1]


def test_every_public_gateway_method_declares_its_arm_operations() -> None:
    """The role is derived from @arm_operation: an undeclared gateway method is a call the role misses."""
    undeclared = [
        name
        for name, member in vars(ArmGateway).items()
        if inspect.isfunction(member)
        and not name.startswith("_")
        and name not in ("close", "identity")  # no ARM call: closing clients, reading its own token
        and not any(name in methods for methods in permissions.OPERATIONS.values())
    ]
    assert not undeclared, f"ArmGateway methods without @arm_operation: {undeclared}"


def test_the_role_is_assigned_at_the_monitored_scopes() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["modules"]["remediatorRole"]["config"]["condition"] == SUBSCRIPTION_LIST_MODE
    role = main["modules"]["remediatorRole"]["config"]["config"]["params"]
    assert role["assignableScopes"] == "monitoredSubscriptionScopes"
    assert main["parameters"]["roleAssignmentScope"]["default"] == "subscriptions"
    for name, path, scope_function in (
        ("remediatorAccessSubscriptions", "app/remediator-access-subscription.bicep", "subscription"),
        ("remediatorAccessResourceGroups", "app/remediator-access-resource-group.bicep", "resource_group"),
    ):
        body = main["modules"][name]
        assert body["detail"]["path"] == path
        config = body["config"]["config"]
        assert config["scope"]["function"]["type"] == scope_function
        assert config["params"]["principalId"] != ""
    for path in ("remediator-access-subscription.bicep", "remediator-access-resource-group.bicep"):
        doc = module(path)
        (assignment,) = doc["resources"].values()
        assert assignment["type"] == "Microsoft.Authorization/roleAssignments"
        assert assignment["config"]["properties"]["principalType"] == "ServicePrincipal"


# -- Event Grid ----------------------------------------------------------------------------------


def test_the_event_filter_lists_exactly_the_operations_the_code_handles() -> None:
    doc = module("event-subscription.bicep")
    listed = resolve(doc, "handledOperations")
    assert isinstance(listed, list)
    assert len({op.lower() for op in listed}) == len(listed), "duplicate operations in the filter"
    assert {op.lower() for op in listed} == {op.lower() for op in events.HANDLED_OPERATIONS}
    assert len(listed) <= 25, "Event Grid allows 25 values in a StringIn filter"


def test_the_evaluator_reads_bicep_as_bicep_computes_it() -> None:
    """What the event-subscription tests rely on, checked on a file of its own: arithmetic with
    integer division, take/skip, format, conditionals, and a resource loop over range()."""
    doc = cast(
        dict[str, Any],
        _parser().parse(
            text="""
param xs array = []
var size = 2
var room = 10 - length(xs)
var count = empty(xs) ? 1 : ((length(xs) + (size - 1)) / size)
resource r 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = [for i in range(0, count): {
  name: (i == 0) ? 'first' : format('{0}-{1}', 'next', i + 1)
  properties: {
    values: take(skip(xs, i * size), size)
    middle: (!empty(xs)) && ((i * size) < (room - 1))
  }
}]
"""
        ),
    )
    body = doc["resources"]["r"]["config"]
    assert evaluate(doc, "room", {"xs": [1, 2, 3]}) == 7
    assert [evaluate(doc, "count", {"xs": list(range(n))}) for n in (0, 1, 2, 3, 4, 5)] == [1, 1, 1, 2, 2, 3]
    deployed = evaluate(doc, body, {"xs": list(range(5))})
    assert [r["name"] for r in deployed] == ["first", "next-2", "next-3"]
    assert [r["properties"]["values"] for r in deployed] == [[0, 1], [2, 3], [4]]
    assert [r["properties"]["middle"] for r in deployed] == [True, True, False]  # 4 < 10 - 5 - 1 is not


def event_subscription_loop(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event subscriptions' resource: its symbolic name and its config (the loop)."""
    (name,) = [
        n
        for n, b in doc["resources"].items()
        if b["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ]
    config = doc["resources"][name]["config"]
    assert "loop_type" in config, "one event subscription per chunk of subject prefixes: a resource loop"
    return name, cast(dict[str, Any], config)


def deployed_event_subscriptions(groups: int) -> list[dict[str, Any]]:
    """The event subscriptions event-subscription.bicep deploys on a topic whose subscription has
    ``groups`` restricted resource groups, evaluated from the bicep."""
    doc = module("event-subscription.bicep")
    _, loop = event_subscription_loop(doc)
    prefixes = [f"/subscriptions/s/resourceGroups/rg-{i}/" for i in range(groups)]
    deployed = evaluate(doc, loop, {"subjectPrefixes": prefixes})
    assert isinstance(deployed, list)
    return deployed


@pytest.mark.parametrize("groups", [0, 1, 8, 9, 17, 25, 30])
def test_the_event_filters_stay_within_event_grids_25_values_however_many_groups_are_restricted(
    groups: int,
) -> None:
    """Event Grid refuses an event subscription whose advanced filters hold more than 25 values
    in all. The subject prefixes (one per restricted group) are split over as few event
    subscriptions as fit beside the operations, all on the one topic: each group's in exactly one
    (an event is delivered once, and none from an unrestricted group, which the identity may not
    read), and each subscription passes every operation the code handles."""
    deployed = deployed_event_subscriptions(groups)
    prefixes = [f"/subscriptions/s/resourceGroups/rg-{i}/" for i in range(groups)]
    per_subscription = 25 - len(events.HANDLED_OPERATIONS)

    names = [subscription["name"] for subscription in deployed]
    assert len(set(names)) == len(names)
    assert names[0] == "vmss-public-ip-remediator"  # the name a deployment before chunks made
    assert names[1:] == [f"vmss-public-ip-remediator-{n}" for n in range(2, len(names) + 1)]
    assert len(deployed) == max(1, -(-groups // per_subscription))  # as few as fit
    subject_values: list[str] = []
    for subscription in deployed:
        filters = subscription["properties"]["filter"]["advancedFilters"]
        assert sum(len(f["values"]) for f in filters) <= 25
        (operations,) = [f for f in filters if f["key"] == "data.operationName"]
        assert operations["operatorType"] == "StringIn"
        assert sorted(v.lower() for v in operations["values"]) == sorted(
            v.lower() for v in events.HANDLED_OPERATIONS
        )
        subjects = [f for f in filters if f["key"] == "subject"]
        if not groups:
            assert subjects == [], "no restricted group: the whole subscription"
            continue
        (subject,) = subjects  # with restricted groups, no subscription passes every group
        assert subject["operatorType"] == "StringBeginsWith" and subject["values"]
        subject_values += subject["values"]
    assert sorted(subject_values) == sorted(prefixes)  # each group's prefix in exactly one


@pytest.mark.parametrize("groups", [0, 1, 9, 17])
def test_the_local_deployment_makes_the_event_subscriptions_the_bicep_does(groups: int) -> None:
    """localazure deploys, for the simulator, the names and filters evaluated here from the bicep."""
    from localazure.event_deployment import EVENT_SUBSCRIPTION_BICEP, event_subscription_bodies

    local = event_subscription_bodies(
        "s",
        function_app="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/func",
        storage_account="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st",
        restricted_resource_groups=[f"rg-{i}" for i in range(groups)],
        schema="EventGridSchema",
        bicep_text=EVENT_SUBSCRIPTION_BICEP.read_text(encoding="utf-8"),
    )
    deployed = deployed_event_subscriptions(groups)
    assert list(local) == [subscription["name"] for subscription in deployed]
    assert [body["properties"]["filter"] for body in local.values()] == [
        subscription["properties"]["filter"] for subscription in deployed
    ]


def test_the_event_subscriptions_outputs_name_each_chunk() -> None:
    doc = module("event-subscription.bicep")
    symbol, loop = event_subscription_loop(doc)
    deployed = deployed_event_subscriptions(17)
    outputs = doc["outputs"]
    assert outputs["ids"]["type"] == outputs["names"]["type"] == "array"
    given = {"subjectPrefixes": [f"/subscriptions/s/resourceGroups/rg-{i}/" for i in range(17)]}
    assert evaluate(doc, outputs["names"]["value"], {**given, symbol: deployed}) == [
        "vmss-public-ip-remediator",
        "vmss-public-ip-remediator-2",
        "vmss-public-ip-remediator-3",
    ]
    ids = outputs["ids"]["value"]
    assert ids["loop_type"] == loop["loop_type"]
    assert ids["config"]["operator"]["operands"]["operand_2"] == "id"


def test_the_event_filter_includes_exactly_the_event_types_the_code_handles() -> None:
    doc = module("event-subscription.bicep")
    (name,) = [
        n
        for n, b in doc["resources"].items()
        if b["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ]
    included = resource(doc, name)["properties"]["filter"]["includedEventTypes"]
    assert sorted(included) == sorted(events.HANDLED_EVENT_TYPES)


def test_the_event_subscription_delivers_to_the_function_with_retries_and_dead_letters() -> None:
    doc = module("event-subscription.bicep")
    (name,) = [
        n
        for n, b in doc["resources"].items()
        if b["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ]
    properties = resource(doc, name)["properties"]

    destination = properties["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${functionAppId}/functions/on_resource_event"
    assert destination["properties"]["maxEventsPerBatch"] == 1
    assert properties["eventDeliverySchema"] == "eventDeliverySchema"  # the parameter

    event_filter = properties["filter"]
    operation_filter = resolve(doc, "operationFilter")
    assert operation_filter == {
        "operatorType": "StringIn",
        "key": "data.operationName",
        "values": "handledOperations",
    }
    filters = event_filter["advancedFilters"]["operator"]["operands"]
    assert "operationFilter" in filters["true_value"] and "operationFilter" in filters["false_value"]

    assert properties["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"


def test_the_function_the_event_subscription_names_exists() -> None:
    from localazure.host import indexed_functions  # the host indexes the app once per process

    assert {"on_resource_event", "on_work", "on_poison", "sweep"} <= set(indexed_functions())


def test_every_schema_the_subscription_may_deliver_in_is_one_the_trigger_handles() -> None:
    """The deployed schema and the trigger agree: each schema the template allows, in the form the
    worker's converter decodes it, is taken in by the function as a trigger, not rejected."""
    from function_app import event_grid_payload
    from localazure.host import event_grid_event
    from sim.events import EventSchema, RequestContext, in_schema, resource_event

    subscription = module("event-subscription.bicep")["parameters"]["eventDeliverySchema"]
    main = parse(INFRA / "main.bicep")["parameters"]["eventDeliverySchema"]
    assert allowed_values(main) == allowed_values(subscription) and main["default"] == subscription["default"]
    assert subscription["default"] in allowed_values(subscription)
    written = resource_event(
        deleted=False,
        resource_id="/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/web",
        resource_type="Microsoft.Compute/virtualMachineScaleSets",
        subscription_id="00000000-0000-0000-0000-000000000001",
        tenant_id="00000000-0000-0000-0000-000000000002",
        context=RequestContext.platform("c0ffee00-0000-0000-0000-000000000003"),
        include_http_request=False,
    )
    for schema in allowed_values(subscription):
        delivered = event_grid_event(in_schema(written, EventSchema(schema)))
        taken = events.parse_event(event_grid_payload(delivered))
        assert isinstance(taken, Trigger), f"{schema}: {taken}"


def test_the_worker_loads_the_apps_azure_functions_library_which_decodes_cloudevents() -> None:
    """On Python 3.11 the worker would otherwise load the library copy it ships with, which may
    predate func.CloudEvent: the app's pinned one (requirements.txt) is the one the tests run."""
    host = resolve(module("function.bicep"), "hostSettings")
    assert host["PYTHON_ISOLATE_WORKER_DEPENDENCIES"] == "1"
    pinned = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    with_cloud_events = r"^azure-functions==1\.(2[5-9]|[3-9]\d)\."  # func.CloudEvent since 1.25
    assert re.search(with_cloud_events, pinned, re.M)


def test_each_monitored_subscription_gets_a_system_topic_with_an_identity() -> None:
    doc = module("event-topic.bicep")
    (topic,) = doc["resources"].values()
    assert topic["type"] == "Microsoft.EventGrid/systemTopics"
    config = topic["config"]
    assert config["location"] == "global"
    assert config["identity"] == {"type": "SystemAssigned"}
    assert config["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"

    main = parse(INFRA / "main.bicep")
    topics = main["modules"]["eventTopics"]["config"]
    assert (
        topics["loop_type"]["detail"]["array_name"] == "wiredSubscriptions"
    )  # monitoredSubscriptions but in MG mode
    access = module("deadletter-access.bicep")
    assignment = resource(access, "deadLetterAccess")
    assert assignment["scope"] == "deadLetterContainer"
    assert resolve(access, "storageBlobDataContributor") == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def test_event_subscriptions_wait_for_the_deployed_function() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["deployEventSubscriptions"]["default"] is False
    loop = main["modules"]["eventSubscriptions"]["config"]["loop_type"]["detail"]["array_name"]
    assert "deployEventSubscriptions" in loop
    hook = (INFRA / "hooks" / "postdeploy.sh").read_text(encoding="utf-8")
    assert "azd env set DEPLOY_EVENT_SUBSCRIPTIONS true" in hook
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["deployEventSubscriptions"]["value"] == "${DEPLOY_EVENT_SUBSCRIPTIONS}"
    azure_yaml = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert "./infra/hooks/postdeploy.sh" in azure_yaml
    assert "./infra/hooks/postdeploy.ps1" in azure_yaml


# -- the function app ----------------------------------------------------------------------------


def _app_settings() -> dict[str, Any]:
    function = module("function.bicep")
    host = resolve(function, "hostSettings")
    properties = resource(function, "appSettings")["properties"]["function"]
    assert properties["type"] == "union"
    # union(hostSettings, remediatorSettings, {the site's own: FUNCTION_APP_ID})
    own = [arg for arg in properties["parameters"].values() if isinstance(arg, dict)]
    remediator = parse(INFRA / "main.bicep")["modules"]["function"]["config"]["params"]["remediatorSettings"]
    return {**host, **remediator, **{k: v for block in own for k, v in block.items()}}


def test_app_settings_cover_every_binding_expression_in_function_app() -> None:
    source = (ROOT / "function_app.py").read_text(encoding="utf-8")
    bound = set(re.findall(r"%([A-Za-z0-9_]+)%", source))
    assert bound, "function_app.py binds to no %SETTING%?"
    assert bound <= set(_app_settings()), f"unset binding expressions: {bound - set(_app_settings())}"


# Settings the code reads that infra leaves unset on purpose, and why.
LEFT_AT_CODE_DEFAULT = {
    "ARM_ENDPOINT": "public cloud",
    "ARM_CA_BUNDLE": "the local simulator's certificate only",
    "ARM_POLL_INTERVAL_SECONDS": "tuning: the code default",
    "ARM_RETRY_TOTAL": "tuning: the code default",
    "ARM_READ_TIMEOUT_SECONDS": "tuning: the code default",
    "ARM_MAX_PACING_WAIT_SECONDS": "tuning: the code default",
    "WATCH_INTERVAL_SECONDS": "tuning: the code default",
    "WATCH_MAX_SECONDS": "tuning: the code default",
    "STORAGE_RETRY_TOTAL": "tuning: the code default",
    "INTERRUPTED_WRITE_GRACE_SECONDS": "tuning: the code default",
    "MANAGEMENT_GROUP_REFRESH_SECONDS": "tuning: the code default (60 s)",
    "SET_LEASE_SECONDS": "tuning: the code default (60 s, the longest lease Azure grants)",
    STORAGE_CONNECTION: "a connection string: shared keys are disabled, the service URIs are set",
    "REMEDIATION_POLICY_FILE": "the policy is the REMEDIATION_POLICY setting",
}


class RecordingEnvironment(Mapping[str, str]):
    """An empty environment that remembers which keys were asked for."""

    def __init__(self) -> None:
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return False


def test_app_settings_cover_every_setting_the_code_reads() -> None:
    environment = RecordingEnvironment()
    with pytest.raises(SettingsError):  # an empty environment lacks the storage URIs
        Settings.from_env(environment)
    assert "AUDIT_TABLE" in environment.read, "the recording environment saw nothing"
    unset = environment.read - set(_app_settings())
    unexplained = sorted(unset - set(LEFT_AT_CODE_DEFAULT))
    assert not unexplained, (
        f"remediation.settings reads {unexplained}, which infra/ neither sets (infra/main.bicep, "
        "remediatorSettings) nor leaves unset on purpose (LEFT_AT_CODE_DEFAULT here)"
    )


def test_app_settings_use_identity_based_connections() -> None:
    settings = _app_settings()
    assert settings["ARM_CREDENTIAL"] == "managed-identity"
    assert "ARM_ENDPOINT" not in settings  # public cloud by default
    for connection in ("AzureWebJobsStorage", STORAGE_CONNECTION):
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert f"{connection}__clientId" in settings
    assert f"{STORAGE_CONNECTION}__tableServiceUri" in settings
    assert f"{STORAGE_CONNECTION}__queueServiceUri" in settings
    assert f"{STORAGE_CONNECTION}__blobServiceUri" in settings
    assert STORAGE_CONNECTION not in settings, "no connection string: shared keys are disabled"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings  # not allowed on Flex Consumption
    for name in ("AZURE_CLIENT_ID", "RECHECK_DELAYS_SECONDS", "REMEDIATION_POLICY", "REMEDIATION_DRY_RUN"):
        assert name in settings


def test_storage_names_are_the_code_defaults() -> None:
    main = parse(INFRA / "main.bicep")
    defaults = Settings()
    settings = _app_settings()
    assert resolve(main, settings["AUDIT_TABLE"]) == defaults.audit_table
    assert resolve(main, settings["RECHECK_QUEUE"]) == defaults.recheck_queue
    delays = resolve(main, settings["RECHECK_DELAYS_SECONDS"])
    assert tuple(float(part) for part in delays.split(",")) == defaults.recheck_delays_s

    storage = main["modules"]["storage"]["config"]["params"]
    containers = {resolve(main, name) for name in storage["containers"]}
    assert containers == {
        "deploymentpackage",
        "eventgrid-deadletter",
        defaults.archive_container,
        defaults.lock_container,
    }
    assert resolve(main, settings["LOCK_CONTAINER"]) == defaults.lock_container
    assert resolve(main, settings["ARCHIVE_CONTAINER"]) == defaults.archive_container
    assert main["parameters"]["archiveRetentionDays"]["default"] == defaults.archive_retention_days
    # The app creates <AUDIT_TABLE> on first use (records and handled-event markers); infra first.
    assert [resolve(main, table) for table in storage["tables"]] == [defaults.audit_table]
    assert resolve(main, storage["queues"][0]) == defaults.recheck_queue
    assert storage["queues"][1] == "${recheckQueue}-poison"


def test_the_sweep_schedule_defaults_to_the_documented_one() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["sweepSchedule"]["default"] == "0 */15 * * * *"
    assert _app_settings()["SWEEP_SCHEDULE"] == "sweepSchedule"


def test_doctor_is_told_which_app_and_which_dead_letter_container_it_checks() -> None:
    """`remediation doctor` looks for the event subscription delivering to FUNCTION_APP_ID and
    for what waits in DEAD_LETTER_CONTAINER: the site's own id, and the container Event Grid
    dead-letters to."""
    settings = _app_settings()
    site_id = {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "site", "operand_2": "id"}}
    }
    assert settings["FUNCTION_APP_ID"] == site_id
    assert settings["DEAD_LETTER_CONTAINER"] == "deadLetterContainerName"
    main = parse(INFRA / "main.bicep")
    assert main["modules"]["eventSubscriptions"]["config"]["config"]["params"]["deadLetterContainerName"] == (
        "deadLetterContainerName"
    )


def test_doctor_is_told_the_resource_group_the_event_topics_live_in() -> None:
    """Each monitored subscription's system topic is in the app's resource group of that
    subscription; doctor reads the topics there (all the identity may read in resourceGroups mode)."""
    assert _app_settings()["EVENT_TOPIC_RESOURCE_GROUP"] == "appResourceGroupName"
    main = parse(INFRA / "main.bicep")
    topics = main["modules"]["eventTopics"]["config"]["config"]["scope"]["function"]
    assert topics == {
        "type": "resource_group",
        "parameters": {"resource_group_name": "appResourceGroupName", "subscription_id": "id"},
    }


def test_flex_consumption_python_311_with_the_package_read_by_the_identity() -> None:
    doc = module("function.bicep")
    plan = resource(doc, "plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = resource(doc, "site")
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}
    assert site["properties"]["httpsOnly"] is True


def test_storage_disables_shared_keys_and_public_blobs() -> None:
    properties = resource(module("storage.bicep"), "storage")["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_telemetry_uses_entra_authentication() -> None:
    doc = module("monitoring.bicep")
    assert resource(doc, "applicationInsights")["properties"]["DisableLocalAuth"] is True
    assert resource(doc, "workspace")["properties"]["features"]["disableLocalAuth"] is True


def test_the_identity_gets_the_storage_data_roles_the_app_needs() -> None:
    doc = module("rbac.bicep")
    roles = resolve(doc, "roles")
    # Each entry is `roles.<name>`, which pycep renders as a property access.
    granted = {role["operator"]["operands"]["operand_2"] for role in resolve(doc, "identityStorageRoles")}
    assert granted == {"storageQueueDataContributor", "storageTableDataContributor"}
    assert roles["storageTableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    assert roles["storageQueueDataContributor"] == "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    assert "b7e6dc6d-f1e8-4753-8033-0f276bb0955b" not in json.dumps(doc["resources"]), "no built-in Owner"
    assert roles["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"


# What Storage Blob Data Owner (b7e6dc6d-...) grants, from its built-in definition.
BLOB_DATA_OWNER = {
    "actions": [
        "Microsoft.Storage/storageAccounts/blobServices/containers/*",
        "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
    ],
    "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
}
# What would let the app's own identity undo the ledger's tamper evidence.
UNDOES_THE_LEDGER = [
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/delete",
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/lock/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/extend/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/clearLegalHold/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/delete",  # an empty ledger, made anew
]


def _grants(permissions: Mapping[str, Any], action: str, kind: str = "actions") -> bool:
    """Whether a role's permissions block grants ``action`` (wildcards as ARM reads them)."""
    from fnmatch import fnmatchcase

    def matches(patterns: list[str]) -> bool:
        return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)

    not_kind = "not" + kind[0].upper() + kind[1:]
    return matches(permissions.get(kind, [])) and not matches(permissions.get(not_kind, []))


def test_the_identitys_blob_role_is_owners_less_what_undoes_the_ledger() -> None:
    doc = module("rbac.bicep")
    permissions = resolve(doc, "blobDataPermissions")
    role = resource(doc, "blobDataRole")["properties"]
    assert role["permissions"] == ["blobDataPermissions"] and role["type"] == "CustomRole"
    assignment = resource(doc, "identityBlobAccess")["properties"]
    assert assignment["roleDefinitionId"]["operator"]["operands"] == {
        "operand_1": "blobDataRole",
        "operand_2": "id",
    }
    for action in UNDOES_THE_LEDGER:
        assert not _grants(permissions, action), action
    assert not _grants(
        permissions,
        "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action",
        "dataActions",
    )
    # Everything else the host's Owner role gave it stays: leases, containers, every blob operation.
    for action in (
        "Microsoft.Storage/storageAccounts/blobServices/containers/write",
        "Microsoft.Storage/storageAccounts/blobServices/containers/lease/action",
        "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
    ):
        assert _grants(permissions, action) and _grants(BLOB_DATA_OWNER, action), action
    for action in ("blobs/write", "blobs/add/action", "blobs/delete", "blobs/read", "blobs/tags/write"):
        full = f"Microsoft.Storage/storageAccounts/blobServices/containers/{action}"
        assert _grants(permissions, full, "dataActions"), action


# -- the policy parameters -----------------------------------------------------------------------


def test_modes_are_the_code_modes_and_a_first_deployment_audits() -> None:
    main = parse(INFRA / "main.bicep")
    default_mode = main["parameters"]["defaultMode"]
    assert default_mode["default"] == Mode.AUDIT.value
    assert set(allowed_values(default_mode)) == {mode.value for mode in Mode}
    policy = module("policy.bicep")
    assert set(allowed_values(policy["parameters"]["modes"])) == {mode.value for mode in Mode}


def test_the_policy_carries_the_keys_the_code_reads() -> None:
    policy = module("policy.bicep")
    built = policy["outputs"]["policy"]["value"]["function"]
    assert built["type"] == "string"
    text = (APP / "policy.bicep").read_text(encoding="utf-8")
    for key in ("monitored_subscriptions", "monitored_management_groups", "scopes"):
        assert f"{key}:" in text
    assert parse(INFRA / "main.bicep")["parameters"]["policyOverrides"]["default"] == "{}"


# -- the audit ledger ------------------------------------------------------------------------------

CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"
IMMUTABILITY_TYPE = f"{CONTAINER_TYPE}/immutabilityPolicies"


def test_the_ledger_container_is_under_a_time_based_immutability_policy_that_takes_appends() -> None:
    doc = module("storage.bicep")
    resources = doc["resources"]
    ledgers = [
        symbol
        for symbol, body in resources.items()
        if body["type"] == CONTAINER_TYPE and body["config"].get("name") == "ledgerContainerName"
    ]
    assert len(ledgers) == 1, "storage.bicep creates the container named by ledgerContainerName"
    policies = [
        body["config"]
        for body in resources.values()
        if body["type"] == IMMUTABILITY_TYPE and body["config"].get("parent") == ledgers[0]
    ]
    assert len(policies) == 1, "the ledger container has an immutability policy"
    policy = policies[0]
    assert policy["name"] == "default"  # the only name ARM takes
    assert policy["properties"]["allowProtectedAppendWrites"] is True, "appends go on under WORM"
    assert policy["properties"]["immutabilityPeriodSinceCreationInDays"] == "ledgerRetentionDays"
    assert doc["parameters"]["ledgerRetentionDays"]["default"] == 365

    main = parse(INFRA / "main.bicep")
    storage = main["modules"]["storage"]["config"]["params"]
    defaults = Settings()
    assert resolve(main, storage["ledgerContainerName"]) == defaults.ledger_container
    assert resolve(main, _app_settings()["LEDGER_CONTAINER"]) == defaults.ledger_container
    assert storage["ledgerRetentionDays"] == "ledgerRetentionDays"
    assert main["parameters"]["ledgerRetentionDays"]["default"] == 365


def test_the_audit_reader_can_read_the_ledger_that_audit_verify_compares_the_table_with() -> None:
    doc = module("rbac.bicep")
    roles = resolve(doc, "roles")
    assert roles["storageBlobDataReader"] == "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    granted = [
        body["config"]
        for body in doc["resources"].values()
        if body["type"] == "Microsoft.Authorization/roleAssignments"
        and "auditReaderPrincipalId" in json.dumps(body["config"])
    ]
    assert any("storageBlobDataReader" in json.dumps(config) for config in granted)
    assert any("storageTableDataReader" in json.dumps(config) for config in granted)
