"""`remediation doctor` against the local stand-in: a deployment as infra/ leaves it (the custom
role at the subscription, the system topic and event subscription read from infra's bicep, the
storage containers, a sweep just run) is all ok; breaking one piece turns exactly its line to
fail, and the others stay as they were."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import arm_docs as docs
import pytest
import requests
from azure.data.tables import TableServiceClient
from doctor_stand_in import app_environment, create_app_storage

from localazure.event_deployment import (
    APP_RESOURCE_GROUP,
    EVENT_SUBSCRIPTION_BICEP,
    TOPIC_NAME,
    EventDeployment,
    storage_account_id,
)
from localazure.stack import ESTATE_OWNER, REMEDIATOR_ROLE, ROLE_ACTIONS_FILE, LocalAzure, estate_owner
from remediation.audit import blob_service
from remediation.cli import main
from remediation.credentials import LoopbackCredential
from remediation.doctor_probe import diagnose
from remediation.engine import remediator_for
from remediation.settings import Settings
from remediation.sweep import SCHEDULED_SWEEP

SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"


@dataclass
class Deployment:
    local: LocalAzure
    subscription: str
    environment: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.environment)

    def lines(self) -> dict[str, str]:
        """Each check's status, by the check's name with the subscription taken out."""
        return {
            check.name.replace(self.subscription, "<sub>"): check.status.value
            for check in diagnose(self.environment, now=datetime.now(UTC))
        }

    def events(self, bicep: Path = EVENT_SUBSCRIPTION_BICEP) -> EventDeployment:
        deployment = EventDeployment(self.local.arm.endpoint, str(self.local.arm.ca_bundle), estate_owner())
        deployment.deploy(
            self.subscription,
            function_app=self.local.function_app_id,
            storage_account=storage_account_id(self.subscription),
            bicep=bicep,
        )
        return deployment


def deploy(
    local: LocalAzure,
    *,
    role_actions: list[str] | None = None,
    sweep: bool = True,
    restricted_group: str = "",
    network_groups: tuple[str, ...] = (),
) -> Deployment:
    """A fresh subscription and storage names, deployed as infra/ would; ``role_actions``: the
    custom role's actions when a test takes some away; ``restricted_group``: the policy restricts
    that group alone and the roles are assigned at resource groups (roleAssignmentScope), the
    joins role at ``network_groups``."""
    unique = uuid.uuid4().hex[:10]
    subscription = str(uuid.UUID(f"00000000-0000-4000-8000-00{unique}"))
    scope = f"/subscriptions/{subscription}" + (
        f"/resourceGroups/{restricted_group}" if restricted_group else ""
    )
    if restricted_group:
        local.authorize(
            subscription, resource_groups=(restricted_group,), network_resource_groups=network_groups
        )
    elif role_actions is None:
        local.authorize(subscription)
    else:
        scope = f"/subscriptions/{subscription}"
        local.arm.grant(ESTATE_OWNER, "Owner", scope)
        role = local.arm.define_role(f"{REMEDIATOR_ROLE} {unique}", role_actions, assignable_scopes=[scope])
        local.arm.grant(LoopbackCredential.APP_ID, role, scope)
    policy = {
        "monitored_subscriptions": [subscription],
        "scopes": [{"scope": scope, "mode": "strip"}],
    }
    environment = app_environment(local, unique) | {"REMEDIATION_POLICY": json.dumps(policy)}
    deployment = Deployment(local, subscription, environment)
    create_app_storage(deployment.settings)
    deployment.events()
    if sweep:
        remediator_for(deployment.settings).sweep(scheduled=True)  # as the timer runs it
    return deployment


ALL_OK = {
    "settings": "ok",
    "storage": "ok",
    "arm": "ok",
    "permissions /subscriptions/<sub>": "ok",
    "events <sub>": "ok",
    "sweep": "ok",
    "poison": "ok",
    "dead letters": "ok",
}


@pytest.fixture
def local(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.arm.reset(access=True)
    yield local_azure


def test_a_correct_deployment_is_all_ok(
    local: LocalAzure, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy(local)
    assert deployment.lines() == ALL_OK
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "8 checks, 0 failed"
    assert main(["doctor", "-o", "tsv", "--query", "[?status!='ok'].check"]) == 0
    assert capsys.readouterr().out == ""


def broken(line: str) -> dict[str, str]:
    """Every line ok but this one."""
    return {**ALL_OK, line: "fail"}


def test_a_role_missing_a_linked_action_fails_only_the_permissions_line(local: LocalAzure) -> None:
    actions = [
        a for a in json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"] if a != SUBNET_JOIN
    ]
    deployment = deploy(local, role_actions=actions)
    assert deployment.lines() == broken("permissions /subscriptions/<sub>")
    (check,) = [c for c in diagnose(deployment.environment) if c.name.startswith("permissions")]
    assert f"lacks 1 action(s): {SUBNET_JOIN} (linked" in check.detail


def test_a_deleted_event_subscription_fails_only_the_events_line(local: LocalAzure) -> None:
    deployment = deploy(local)
    group = f"/subscriptions/{deployment.subscription}/resourceGroups/{APP_RESOURCE_GROUP}"
    topic = f"{group}/providers/Microsoft.EventGrid/systemTopics/{TOPIC_NAME}"
    url = f"{local.arm.endpoint}{topic}/eventSubscriptions/vmss-public-ip-remediator?api-version=2025-02-15"
    token = estate_owner().get_token("https://management.azure.com/.default").token
    answer = requests.delete(
        url, headers={"Authorization": f"Bearer {token}"}, verify=str(local.arm.ca_bundle), timeout=30
    )
    assert answer.status_code in (200, 202, 204)
    assert deployment.lines() == broken("events <sub>")


def test_a_filter_that_leaves_out_an_operation_fails_only_the_events_line(
    local: LocalAzure, tmp_path: Path
) -> None:
    deployment = deploy(local)
    left_out = "'Microsoft.Network/networkInterfaces/write'"
    text = EVENT_SUBSCRIPTION_BICEP.read_text(encoding="utf-8")
    assert left_out in text
    narrower = tmp_path / "event-subscription.bicep"
    narrower.write_text(text.replace(f"  {left_out}\n", "", 1), encoding="utf-8")
    deployment.events(bicep=narrower)  # the same event subscription, updated
    assert deployment.lines() == broken("events <sub>")
    (check,) = [c for c in diagnose(deployment.environment) if c.name.startswith("events")]
    assert "leaves out microsoft.network/networkinterfaces/write (never delivered)" in check.detail


def test_no_recent_sweep_fails_only_the_sweep_line_and_a_sweep_by_hand_does_not_count(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = deploy(local, sweep=False)
    assert deployment.lines() == broken("sweep")
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    assert main(["sweep"]) == 0
    capsys.readouterr()
    assert main(["doctor", "-o", "tsv", "--query", "[?status=='fail'].check"]) == 1
    assert capsys.readouterr().out == "sweep\n", "the timer's sweeps count, as the no-sweep alert's do"


def test_a_poison_message_fails_only_the_poison_line_until_it_is_replayed(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = deploy(local)
    remediator_for(deployment.settings).poisoned('{"kind": "look", "scale_set": "not a set"}', "message-1")
    assert deployment.lines() == broken("poison")
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    assert main(["replay", "--poison", "1d", "-o", "json", "--query", "queued"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert deployment.lines() == ALL_OK
    assert main(["replay", "--poison", "1d", "-o", "json", "--query", "queued"]) == 0
    assert capsys.readouterr().out.strip() == "0", "a replay takes only what no replay has taken"


def test_a_message_left_in_the_poison_queue_fails_the_poison_line(local: LocalAzure) -> None:
    """on_poison takes the poison queue's messages; one still there (the app down) waits too."""
    from azure.storage.queue import QueueClient

    deployment = deploy(local)
    settings = deployment.settings
    poison = QueueClient.from_connection_string(
        settings.storage_connection_string, f"{settings.recheck_queue}-poison"
    )
    poison.create_queue()
    poison.send_message("a message the host gave up on")
    assert deployment.lines() == broken("poison")
    (check,) = [c for c in diagnose(deployment.environment) if c.name == "poison"]
    assert check.detail.startswith("1 wait in the poison queue (1)")


def test_a_dead_letter_fails_only_its_line_until_it_is_replayed(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = deploy(local)
    settings = deployment.settings
    letter = [
        {
            "id": "dead-1",
            "eventType": "Microsoft.Resources.ResourceWriteSuccess",
            "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        }
    ]
    container = blob_service(settings).get_container_client(settings.dead_letter_container)
    container.upload_blob("topic/sub/2026/12/04/10/dead-1.json", json.dumps(letter).encode())
    assert deployment.lines() == broken("dead letters")
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    replay = ["replay", "--dead-letter", settings.dead_letter_container, "-o", "json", "--query", "queued"]
    assert main(replay) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert deployment.lines() == ALL_OK
    assert main(replay) == 0
    assert capsys.readouterr().out.strip() == "0", "a replay takes only what no replay has taken"


def test_a_dry_run_replay_leaves_what_waits_waiting(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy(local)
    remediator_for(deployment.settings).poisoned('{"kind": "look"}', "message-2")
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    assert main(["replay", "--poison", "1d", "--dry-run", "-o", "json"]) == 0
    assert deployment.lines()["poison"] == "fail"


def test_the_doctor_route_runs_the_same_checks_inside_the_app(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.functions as func

    from localazure.host import user_function

    deployment = deploy(local, sweep=False)
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    response = user_function("doctor")(func.HttpRequest("GET", "/api/doctor", params={}, body=b""))
    body = json.loads(response.get_body())
    assert response.status_code == 200
    assert body["failed"] == 1
    assert [c["check"] for c in body["checks"] if c["status"] == "fail"] == ["sweep"]
    bad = user_function("doctor")(
        func.HttpRequest("GET", "/api/doctor", params={"subscription": "nope"}, body=b"")
    )
    assert bad.status_code == 400


def test_a_stale_sweep_named_by_its_age(local: LocalAzure) -> None:
    from remediation.model import RecordKind
    from remediation.records import AuditRecord

    deployment = deploy(local, sweep=False)
    old = datetime.now(UTC) - timedelta(minutes=20)
    remediator_for(deployment.settings).audit.append(
        AuditRecord(
            kind=RecordKind.DECISION,
            event_id="sweep-old",
            event_type="sweep",
            operation=SCHEDULED_SWEEP,
            reason="sweep of 1 subscriptions",
            time=old,
        )
    )
    (check,) = [c for c in diagnose(deployment.environment) if c.name == "sweep"]
    assert check.status.value == "ok", "20 min is within twice the 15-minute schedule"
    later = datetime.now(UTC) + timedelta(minutes=15)
    (check,) = [c for c in diagnose(deployment.environment, now=later) if c.name == "sweep"]
    assert (check.status.value, check.detail.split(" (")[0]) == ("fail", "the last sweep was 35 min ago")


def test_doctor_run_as_someone_else_than_the_app_fails_the_arm_line(local: LocalAzure) -> None:
    deployment = deploy(local)
    deployment.environment["AZURE_CLIENT_ID"] = "11111111-1111-1111-1111-111111111111"
    assert deployment.lines() == broken("arm")


def test_unreachable_storage_fails_its_lines_in_one_line_each(local: LocalAzure) -> None:
    deployment = deploy(local)
    connection = deployment.environment["RemediationStorage"]
    parts = [p for p in connection.split(";") if p and not p.startswith(("TableEndpoint=", "QueueEndpoint="))]
    nothing_listens = "http://127.0.0.1:9/devstoreaccount1"
    deployment.environment |= {
        "RemediationStorage": ";".join(
            [*parts, f"TableEndpoint={nothing_listens}", f"QueueEndpoint={nothing_listens}"]
        )
        + ";",
        "STORAGE_RETRY_TOTAL": "0",
    }
    checks = {c.name.replace(deployment.subscription, "<sub>"): c for c in diagnose(deployment.environment)}
    assert checks["storage"].status.value == "fail" and checks["storage"].detail.startswith(
        "cannot be read: "
    )
    assert "\n" not in checks["storage"].detail
    assert checks["sweep"].status.value == "fail", "the audit log is not there to read"
    assert checks["events <sub>"].status.value == "ok", "the others still run"


def test_a_misnamed_audit_table_is_reported_missing_and_not_made(local: LocalAzure) -> None:
    deployment = deploy(local)
    deployment.environment["AUDIT_TABLE"] = "doctormisnamed"
    (check,) = [c for c in diagnose(deployment.environment) if c.name == "storage"]
    assert (check.status.value, check.detail.split("missing: ")[1]) == ("fail", "table doctormisnamed")
    service = TableServiceClient.from_connection_string(deployment.settings.storage_connection_string)
    assert "doctormisnamed" not in [table.name for table in service.list_tables()], "doctor writes nothing"


def restricted_set_on_a_hub_subnet(deployment: Deployment, group: str, network_group: str) -> None:
    """A restricted set whose NICs join a subnet of another resource group (a hub network)."""
    sub = deployment.subscription
    body = json.loads(json.dumps(docs.scale_set("web", 0)).replace(docs.SUB, sub))
    body["id"] = (
        f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachineScaleSets/web"
    )
    network = f"/subscriptions/{sub}/resourceGroups/{network_group}/providers/Microsoft.Network"
    subnet = f"{network}/virtualNetworks/hub/subnets/apps"
    (configuration,) = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ]
    configuration["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] = subnet
    deployment.local.arm.seed(body)
    deployment.local.arm.advance_clock(deployment.local.arm.settings.graph_lag_s)  # Resource Graph shows it


def test_links_outside_the_restricted_groups_are_checked_where_they_live(local: LocalAzure) -> None:
    """Roles at resource groups: the joins role at the hub network's group lets the NIC writes
    re-assert the subnet; without it ARM answers LinkedAuthorizationFailed, and the links line
    names the join, where the permissions line of the restricted group is ok."""
    network = "rg-hub-network"
    joined = deploy(local, restricted_group="rg-sets", network_groups=(network,))
    restricted_set_on_a_hub_subnet(joined, "rg-sets", network)
    links = f"links /subscriptions/<sub>/resourcegroups/{network}"
    restricted = "permissions /subscriptions/<sub>/resourcegroups/rg-sets"
    expected = {
        **{k: v for k, v in ALL_OK.items() if not k.startswith("permissions")},
        restricted: "ok",
        links: "ok",
    }
    assert joined.lines() == expected
    unjoined = deploy(local, restricted_group="rg-sets")
    restricted_set_on_a_hub_subnet(unjoined, "rg-sets", network)
    assert unjoined.lines() == {**expected, links: "fail"}
    (check,) = [c for c in diagnose(unjoined.environment) if c.name.startswith("links")]
    assert f"lacks 1 action(s): {SUBNET_JOIN} (linked" in check.detail


def test_a_dry_run_deployment_is_ok_with_a_warning(local: LocalAzure) -> None:
    """The timer's sweeps of a dry-run deployment count, as the no-sweep alert counts them."""
    deployment = deploy(local, sweep=False)
    deployment.environment["REMEDIATION_DRY_RUN"] = "true"
    remediator_for(deployment.settings).sweep(scheduled=True)
    assert deployment.lines() == {**ALL_OK, "settings": "warn"}


def test_a_misnamed_topic_group_fails_the_lines_that_need_it_and_doctor_still_answers(
    local: LocalAzure,
) -> None:
    deployment = deploy(local)
    deployment.environment["EVENT_TOPIC_RESOURCE_GROUP"] = "rg/x"
    lines = deployment.lines()
    assert lines == {**ALL_OK, "settings": "fail", "events <sub>": "fail"}


@pytest.mark.parametrize(
    ("decided", "error_reason", "status"),
    [
        (False, "handling failed; the next sweep tries again", "fail"),  # it raised: record_failure
        (True, "handling failed; the next sweep tries again", "fail"),  # raised after its decision
        (True, "management group mg-prdo could not be read: ...", "warn"),  # ended, partly
    ],
)
def test_a_sweep_that_raised_fails_and_one_that_ended_with_an_error_warns(
    local: LocalAzure, decided: bool, error_reason: str, status: str
) -> None:
    from remediation.model import RecordKind
    from remediation.records import AuditRecord

    deployment = deploy(local, sweep=False)
    when = datetime.now(UTC) - timedelta(minutes=2)
    kinds = ([RecordKind.DECISION] if decided else []) + [RecordKind.ERROR]
    audit = remediator_for(deployment.settings).audit
    for index, kind in enumerate(kinds):
        audit.append(
            AuditRecord(
                kind=kind,
                event_id="sweep-x",
                event_type="sweep",
                operation=SCHEDULED_SWEEP,
                reason="sweep of 1 subscriptions" if kind is RecordKind.DECISION else error_reason,
                error="ArmError: ARM 403 AuthorizationFailed" if kind is RecordKind.ERROR else "",
                time=when + timedelta(seconds=index),
            )
        )
    (check,) = [c for c in diagnose(deployment.environment) if c.name == "sweep"]
    assert check.status.value == status, check.detail
