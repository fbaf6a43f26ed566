"""`remediation doctor`'s judgements (remediation/doctor.py), one check at a time: given what a
deployment shows, this line says ok, warn or fail, and names what is wrong.

tests/test_doctor_deployment.py runs the whole command against the local stand-in."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediation.doctor import (
    Status,
    SweepSeen,
    alert_window,
    exit_code,
    linked_scopes,
    longest_gap,
    permissions_check,
    sweep_check,
    waiting_check,
)
from remediation.doctor_events import events_check
from remediation.doctor_probe import fix_for, identity_check, settings_check
from remediation.events import HANDLED_EVENT_TYPES, HANDLED_OPERATIONS
from remediation.model import Caller
from remediation.permissions import LINK_ACTIONS, NIC_CONFIGURATION_LINKS, NIC_LINKS, required_permissions
from remediation.settings import Settings

SUB = "00000000-0000-0000-0000-0000000000d1"
APP = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Web/sites/func-remediator"
TOPIC_ID = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.EventGrid/systemTopics/events"
LINKED = set(NIC_LINKS) | set(NIC_CONFIGURATION_LINKS)
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"


def role(*actions: str, not_actions: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "actions": list(actions),
        "notActions": list(not_actions),
        "dataActions": [],
        "notDataActions": [],
    }


def check_permissions(*blocks: dict[str, Any]) -> Any:
    return permissions_check(f"/subscriptions/{SUB}", "the app", list(blocks), required_permissions(), LINKED)


# -- permissions -------------------------------------------------------------------------------


def test_the_custom_role_covers_every_action_the_code_performs() -> None:
    assert check_permissions(role(*sorted(required_permissions()))).status is Status.OK


def test_a_missing_linked_action_fails_the_line_naming_it_as_linked() -> None:
    check = check_permissions(role(*sorted(required_permissions() - {SUBNET_JOIN})))
    assert check.status is Status.FAIL
    linked = "(linked: ARM checks it for a link a NIC write re-asserts)"
    assert check.detail == f"the app lacks 1 action(s): {SUBNET_JOIN} {linked}"


def test_not_actions_take_away_from_their_own_role_only() -> None:
    owner_less_network = role("*", not_actions=("Microsoft.Network/*",))
    assert check_permissions(owner_less_network).status is Status.FAIL
    assert SUBNET_JOIN in check_permissions(owner_less_network).detail
    network_contributor = role("Microsoft.Network/*")
    assert check_permissions(owner_less_network, network_contributor).status is Status.OK


def test_wildcards_match_as_arm_matches_them_case_insensitively() -> None:
    assert check_permissions(role("MICROSOFT.*")).status is Status.OK
    reader = role("*/read")
    check = check_permissions(reader)
    assert check.status is Status.FAIL
    assert "Microsoft.Network/networkInterfaces/write" in check.detail
    assert "Microsoft.Network/networkInterfaces/read" not in check.detail


# -- Event Grid --------------------------------------------------------------------------------


def topic(source: str = f"/subscriptions/{SUB}") -> dict[str, Any]:
    return {
        "id": TOPIC_ID,
        "name": "events",
        "type": "Microsoft.EventGrid/systemTopics",
        "properties": {"source": source, "topicType": "Microsoft.Resources.Subscriptions"},
    }


def delivering(**changes: Any) -> dict[str, Any]:
    """The event subscription infra/app/event-subscription.bicep deploys (whole subscription)."""
    doc: dict[str, Any] = {
        "id": f"{TOPIC_ID}/eventSubscriptions/vmss-public-ip-remediator",
        "name": "vmss-public-ip-remediator",
        "properties": {
            "provisioningState": "Succeeded",
            "eventDeliverySchema": "EventGridSchema",
            "destination": {
                "endpointType": "AzureFunction",
                "properties": {"resourceId": f"{APP}/functions/on_resource_event"},
            },
            "filter": {
                "includedEventTypes": list(HANDLED_EVENT_TYPES),
                "advancedFilters": [
                    {
                        "operatorType": "StringIn",
                        "key": "data.operationName",
                        "values": sorted(HANDLED_OPERATIONS),
                    }
                ],
            },
            "deadLetterWithResourceIdentity": {"deadLetterDestination": {"endpointType": "StorageBlob"}},
        },
    }
    for path, value in changes.items():
        target = doc["properties"]
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return doc


def check_events(
    subscriptions: list[dict[str, Any]] | None, *, paths: tuple[str, ...] = (), app: str = APP
) -> Any:
    return events_check(SUB, [topic()], subscriptions, app, list(paths))


def test_the_deployed_topic_and_subscription_are_ok() -> None:
    check = check_events([delivering()])
    assert (check.status, check.name) == (Status.OK, f"events {SUB}")


def test_no_system_topic_of_the_subscription_fails() -> None:
    check = events_check(SUB, [topic(source="/subscriptions/another")], None, APP, [])
    assert check.status is Status.FAIL
    assert "no Event Grid system topic" in check.detail


def test_no_event_subscription_delivering_to_this_app_fails() -> None:
    elsewhere = delivering(destination__properties={"resourceId": f"{APP}-old/functions/on_resource_event"})
    check = check_events([elsewhere])
    assert check.status is Status.FAIL
    assert f"delivers to {APP}/functions/on_resource_event" in check.detail


def test_a_filter_leaving_out_a_handled_operation_fails_naming_it() -> None:
    left_out = "microsoft.network/networkinterfaces/write"
    values = sorted(HANDLED_OPERATIONS - {left_out})
    check = check_events(
        [
            delivering(
                filter__advancedFilters=[
                    {"operatorType": "StringIn", "key": "data.operationName", "values": values}
                ]
            )
        ]
    )
    assert check.status is Status.FAIL
    assert f"leaves out {left_out} (never delivered)" in check.detail


def test_a_filter_passing_more_operations_than_handled_only_warns() -> None:
    values = [*sorted(HANDLED_OPERATIONS), "Microsoft.Storage/storageAccounts/write"]
    check = check_events(
        [
            delivering(
                filter__advancedFilters=[
                    {"operatorType": "StringIn", "key": "data.operationName", "values": values}
                ]
            )
        ]
    )
    assert check.status is Status.WARN
    assert "microsoft.storage/storageaccounts/write, which the code rejects" in check.detail


def test_a_missing_event_type_fails() -> None:
    check = check_events(
        [delivering(filter__includedEventTypes=["Microsoft.Resources.ResourceWriteSuccess"])]
    )
    assert check.status is Status.FAIL
    assert "leave out Microsoft.Resources.ResourceActionSuccess" in check.detail


def test_a_subject_filter_must_pass_every_restricted_scope() -> None:
    restricted = (f"/subscriptions/{SUB}/resourcegroups/rg-a", f"/subscriptions/{SUB}/resourcegroups/rg-b")
    subject: dict[str, Any] = {
        "operatorType": "StringBeginsWith",
        "key": "subject",
        "values": [f"/subscriptions/{SUB}/resourceGroups/RG-A/"],
    }
    filters = [*delivering()["properties"]["filter"]["advancedFilters"], subject]
    check = check_events([delivering(filter__advancedFilters=filters)], paths=restricted)
    assert check.status is Status.FAIL
    assert f"no event subscription passes the events of restricted scope {restricted[1]}" in check.detail
    assert f"restricted scope {restricted[0]}" not in check.detail
    both = copy.deepcopy(subject)
    both["values"].append(f"/subscriptions/{SUB}/resourceGroups/rg-b/")
    filters = [*delivering()["properties"]["filter"]["advancedFilters"], both]
    assert check_events([delivering(filter__advancedFilters=filters)], paths=restricted).status is Status.OK


def test_more_than_25_filter_values_across_the_filters_fail() -> None:
    prefixes = [f"/subscriptions/{SUB}/resourceGroups/rg-{i}/" for i in range(26 - len(HANDLED_OPERATIONS))]
    subject = {"operatorType": "StringBeginsWith", "key": "subject", "values": prefixes}
    filters = [*delivering()["properties"]["filter"]["advancedFilters"], subject]
    paths = tuple(p.lower().rstrip("/") for p in prefixes)
    check = check_events([delivering(filter__advancedFilters=filters)], paths=paths)
    assert check.status is Status.FAIL
    assert "hold 26 values (Event Grid allows 25)" in check.detail


def test_two_subscriptions_delivering_the_same_events_warn_of_double_deliveries() -> None:
    check = check_events([delivering(), delivering()])
    assert check.status is Status.WARN
    assert f"the events of /subscriptions/{SUB} arrive 2 times" in check.detail


def subject_chunk(*groups: str) -> list[dict[str, Any]]:
    prefixes = [f"/subscriptions/{SUB}/resourceGroups/{group}/" for group in groups]
    operations = delivering()["properties"]["filter"]["advancedFilters"][0]
    return [operations, {"operatorType": "StringBeginsWith", "key": "subject", "values": prefixes}]


def test_restricted_groups_split_across_subscriptions_are_each_delivered_once() -> None:
    """infra splits the groups' prefixes across subscriptions of at most 25 filter values."""
    groups = [f"rg-{i}" for i in range(10)]
    first = delivering(filter__advancedFilters=subject_chunk(*groups[:8]))
    second = delivering(filter__advancedFilters=subject_chunk(*groups[8:]))
    second["name"] = "vmss-public-ip-remediator-2"
    paths = tuple(f"/subscriptions/{SUB}/resourcegroups/{group}" for group in groups)
    assert check_events([first, second], paths=paths).status is Status.OK
    assert check_events([first], paths=paths).status is Status.FAIL
    overlapping = delivering(filter__advancedFilters=subject_chunk(*groups[7:]))
    check = check_events([first, overlapping], paths=paths)
    assert check.status is Status.WARN
    assert f"the events of {paths[7]} arrive 2 times" in check.detail


def test_subject_filters_of_one_subscription_are_all_applied() -> None:
    """Event Grid ANDs the advanced filters: a second subject filter narrows the first."""
    chunk = subject_chunk("rg-a", "rg-b")
    narrower = {
        "operatorType": "StringBeginsWith",
        "key": "subject",
        "values": [f"/subscriptions/{SUB}/resourceGroups/rg-a/"],
    }
    paths = (f"/subscriptions/{SUB}/resourcegroups/rg-a", f"/subscriptions/{SUB}/resourcegroups/rg-b")
    check = check_events([delivering(filter__advancedFilters=[*chunk, narrower])], paths=paths)
    assert check.status is Status.FAIL
    assert f"passes the events of restricted scope {paths[1]}" in check.detail


def test_no_dead_letter_destination_warns() -> None:
    doc = delivering()
    del doc["properties"]["deadLetterWithResourceIdentity"]
    check = check_events([doc])
    assert check.status is Status.WARN
    assert "no dead-letter destination" in check.detail


def test_a_schema_the_function_cannot_read_fails() -> None:
    check = check_events([delivering(eventDeliverySchema="CustomInputSchema")])
    assert check.status is Status.FAIL
    assert "CustomInputSchema" in check.detail


def test_an_unknown_app_is_matched_by_function_name_with_a_warning() -> None:
    check = check_events([delivering()], app="")
    assert check.status is Status.WARN
    assert "FUNCTION_APP_ID is not set" in check.detail


# -- links, where they live --------------------------------------------------------------------


def test_the_links_of_a_set_are_checked_in_the_groups_they_live_in() -> None:
    network = f"/subscriptions/{SUB}/resourceGroups/{{}}/providers/Microsoft.Network"
    subnet = f"{network.format('rg-hub')}/virtualNetworks/hub/subnets/apps"
    pool = f"{network.format('RG-LB')}/loadBalancers/lb/backendAddressPools/web"
    public_ip = (
        f"/subscriptions/{SUB}/resourceGroups/rg-ips/providers/Microsoft.Network/publicIPPrefixes/prefix"
    )
    ip_configuration = {
        "name": "ipconfig",
        "properties": {
            "subnet": {"id": subnet},
            "loadBalancerBackendAddressPools": [{"id": pool}],
            "publicIPAddressConfiguration": {
                "name": "pip",
                "properties": {"publicIPPrefix": {"id": public_ip}},
            },
        },
    }
    model = {
        "properties": {
            "virtualMachineProfile": {
                "networkProfile": {
                    "networkInterfaceConfigurations": [
                        {"name": "nic", "properties": {"ipConfigurations": [ip_configuration]}}
                    ]
                }
            }
        }
    }
    assert linked_scopes([model]) == {
        f"/subscriptions/{SUB}/resourcegroups/rg-hub": {SUBNET_JOIN},
        f"/subscriptions/{SUB}/resourcegroups/rg-lb": {
            "Microsoft.Network/loadBalancers/backendAddressPools/join/action"
        },
    }, "a public IP prefix is stripped, never linked: no join is needed for it"


def test_every_link_action_the_code_needs_has_a_type_doctor_recognises() -> None:
    assert set(LINK_ACTIONS.values()) == LINKED


# -- the sweep ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 */15 * * * *", timedelta(minutes=15)),
        ("0 */5 * * * *", timedelta(minutes=5)),
        ("0 0 * * * *", timedelta(hours=1)),
        ("0 0 */3 * * *", timedelta(hours=3)),
        ("0 30 9 * * 1-5", timedelta(days=3)),  # Friday 09:30 to Monday 09:30
        ("0 0 12 * * MON", timedelta(days=7)),
        ("0 0 0 1 * *", timedelta(days=31)),
    ],
)
def test_the_longest_gap_of_a_schedule(schedule: str, gap: timedelta) -> None:
    assert longest_gap(schedule) == gap


@pytest.mark.parametrize("schedule", ["*/15 * * * *", "0 61 * * * *", "0 */0 * * * *", "0 0 0 31 2 *"])
def test_a_schedule_that_cannot_be_read_is_named(schedule: str) -> None:
    with pytest.raises(ValueError, match=schedule.replace("*", r"\*")):
        longest_gap(schedule)


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("gap", "window"),
    [
        (timedelta(minutes=5), timedelta(minutes=10)),
        (timedelta(minutes=10), timedelta(minutes=30)),  # 20 min: log alerts take 15 or 30
        (timedelta(minutes=15), timedelta(minutes=30)),
        (timedelta(hours=3), timedelta(hours=6)),
        (timedelta(days=1), timedelta(days=2)),
    ],
)
def test_the_sweep_is_judged_on_the_no_sweep_alerts_window(gap: timedelta, window: timedelta) -> None:
    assert alert_window(gap) == window


def test_a_recent_sweep_is_ok_and_one_older_than_twice_the_schedule_fails() -> None:
    recent = SweepSeen(NOW - timedelta(minutes=29), "sweep-1")
    assert sweep_check(recent, NOW, "0 */15 * * * *", timedelta(minutes=30)).status is Status.OK
    stale = SweepSeen(NOW - timedelta(minutes=31), "sweep-1")
    check = sweep_check(stale, NOW, "0 */15 * * * *", timedelta(hours=1))
    assert check.status is Status.FAIL
    assert "31 min ago (sweep-1)" in check.detail


def test_no_sweep_or_a_failed_one_fails() -> None:
    assert sweep_check(None, NOW, "0 */15 * * * *", timedelta(minutes=30)).status is Status.FAIL
    failed = SweepSeen(NOW - timedelta(minutes=2), "sweep-2", "ArmError: 403 AuthorizationFailed")
    check = sweep_check(failed, NOW, "0 */15 * * * *", timedelta(minutes=30))
    assert check.status is Status.FAIL
    assert "failed: ArmError: 403 AuthorizationFailed" in check.detail


def test_a_sweep_that_ended_having_recorded_an_error_warns_naming_it() -> None:
    """A sweep that could not read a management group sweeps the rest: not a failed sweep, but
    not a clean one."""
    unread = "management group mg-prdo could not be read: its subscriptions are swept only as far as ..."
    partial = SweepSeen(NOW - timedelta(minutes=2), "sweep-3", partial=unread)
    check = sweep_check(partial, NOW, "0 */15 * * * *", timedelta(minutes=30))
    assert check.status is Status.WARN
    assert check.detail.endswith(f"(sweep-3), ended, but: {unread}")


# -- what waits, and the exit code -------------------------------------------------------------


def test_anything_waiting_fails_with_the_replay_command() -> None:
    assert (
        waiting_check("poison", 0, "the poison queue", "remediation replay --poison 30d").status is Status.OK
    )
    check = waiting_check("poison", 2, "the poison queue", "remediation replay --poison 30d")
    assert (check.status, check.fix) == (Status.FAIL, "replay them: remediation replay --poison 30d")


def test_the_exit_code_is_1_on_any_fail_only() -> None:
    ok = waiting_check("poison", 0, "q", "r")
    warn = check_events([delivering(), delivering()])
    failed = waiting_check("poison", 1, "q", "r")
    assert (exit_code([ok, warn]), exit_code([ok, warn, failed])) == (0, 1)


# -- who doctor runs as, its settings, what to do about a failed read --------------------------


def settings_of(**environment: str) -> Settings:
    base = {"RemediationStorage": "UseDevelopmentStorage=true"}
    return Settings.from_env({**base, **environment})


def test_doctor_run_as_another_identity_than_the_apps_fails_the_arm_line() -> None:
    """Off Azure, DefaultAzureCredential falls through to the `az login` user."""
    app = "11111111-1111-1111-1111-111111111111"
    settings = settings_of(AZURE_CLIENT_ID=app)
    assert identity_check(settings, Caller(app_id=app.upper(), name="the app")).status is Status.OK
    check = identity_check(
        settings, Caller(app_id="22222222-2222-2222-2222-222222222222", name="an operator")
    )
    assert check.status is Status.FAIL
    assert "not the app's identity" in check.detail and "/api/doctor" in check.fix


def test_settings_that_only_doctor_reads_are_its_findings_not_the_apps_failure() -> None:
    policy = json.dumps({"monitored_subscriptions": [SUB]})
    settings = settings_of(REMEDIATION_POLICY=policy, FUNCTION_APP_ID="/not/an/app")
    check = settings_check(settings, [SUB])
    assert check.status is Status.FAIL and "FUNCTION_APP_ID" in check.detail
    other = "00000000-0000-0000-0000-0000000000d2"
    check = settings_check(settings_of(REMEDIATION_POLICY=policy), [other])
    assert check.status is Status.FAIL and f"{other} is not monitored" in check.detail
    assert settings_check(settings_of(REMEDIATION_POLICY=policy), []).status is Status.FAIL
    assert settings_check(settings_of(REMEDIATION_POLICY=policy), [SUB]).status is Status.OK


def test_monitored_management_groups_alone_are_a_sweep_scope_and_named() -> None:
    check = settings_check(
        settings_of(REMEDIATION_POLICY=json.dumps({"monitored_management_groups": ["Platform"]})), []
    )
    assert check.status is Status.OK and "monitored management groups: platform" in check.detail


def test_a_subscription_named_is_monitored_if_arm_shows_it_under_a_monitored_group() -> None:
    from remediation.arm_errors import ArmError

    settings = settings_of(REMEDIATION_POLICY=json.dumps({"monitored_management_groups": ["platform"]}))
    assert settings_check(settings, [SUB], monitors=lambda subscription: True).status is Status.OK
    check = settings_check(settings, [SUB], monitors=lambda subscription: False)
    assert check.status is Status.FAIL and f"{SUB} is not monitored" in check.detail

    def unreadable(subscription: str) -> bool:
        raise ArmError(403, "AuthorizationFailed", "no descendants/read at the group")

    check = settings_check(settings, [SUB], monitors=unreadable)
    assert check.status is Status.FAIL
    assert f"whether {SUB} is under the monitored management groups: " in check.detail


def test_a_refused_read_says_to_grant_the_role_even_through_a_storage_error() -> None:
    from azure.core.exceptions import HttpResponseError

    from remediation.journal import AuditUnavailable

    refused = HttpResponseError("This request is not authorized to perform this operation.")
    refused.status_code = 403
    error = AuditUnavailable("audit table cannot be read")
    error.__cause__ = refused  # as `raise ... from` leaves it
    assert fix_for(error).startswith("grant the identity the role")
    throttled = HttpResponseError("Too many requests")
    throttled.status_code = 429
    assert fix_for(throttled).startswith("throttled")


def test_a_users_sign_in_is_never_taken_for_the_app() -> None:
    """Without AZURE_CLIENT_ID too: a user's token says so in its claims."""
    from remediation.events import caller_from_claims

    user = caller_from_claims({"upn": "ops@contoso.example", "name": "Ops", "oid": "o", "appid": "04b07795"})
    assert user.user
    assert not caller_from_claims({"appid": "a", "oid": "o", "idtyp": "app"}).user
    check = identity_check(settings_of(), user)
    assert check.status is Status.FAIL and "a user's sign-in" in check.detail


def test_a_bad_setting_only_doctor_reads_is_named_on_the_settings_line() -> None:
    policy = json.dumps({"monitored_subscriptions": [SUB]})
    for key, value in (("EVENT_TOPIC_RESOURCE_GROUP", "rg/x"), ("DEAD_LETTER_CONTAINER", "Dead_Letters")):
        check = settings_check(settings_of(REMEDIATION_POLICY=policy, **{key: value}), [SUB])
        assert check.status is Status.FAIL and key in check.detail
