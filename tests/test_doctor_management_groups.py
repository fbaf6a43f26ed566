"""`remediation doctor` in management-group mode (the policy's ``monitored_management_groups``, as
infra's managementGroupId deploys it): the custom role assigned at the group, and in every
subscription under it the system topic and the event subscription an Azure Policy deploys
(infra/app/event-wiring-template.json: one event subscription, no subject filter).

Against the local stand-in, such a deployment is all ok: one line reading the group, one of the
identity's permissions at every subscription under it, one of their wiring. Breaking one piece
turns exactly its line to fail: a subscription that joined and is not wired yet, the role missing
at the group, the group unreadable. The judgements alone, and reads bounded in count and time
(hundreds of subscriptions), are at the end, without the stand-in.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from doctor_stand_in import app_environment, create_app_storage

from localazure.event_deployment import EventDeployment, storage_account_id
from localazure.stack import (
    ESTATE_OWNER,
    ESTATE_SUBSCRIPTION,
    REMEDIATOR_ROLE,
    ROLE_ACTIONS_FILE,
    LocalAzure,
    estate_owner,
)
from remediation import doctor_groups
from remediation.arm_errors import ArmError
from remediation.cli import main
from remediation.credentials import LoopbackCredential
from remediation.doctor import (
    GROUP_MEMBERS_ACTION,
    Check,
    Status,
    across_subscriptions,
    management_group_check,
    named,
)
from remediation.doctor_probe import diagnose
from remediation.engine import remediator_for
from remediation.permissions import required_permissions
from remediation.settings import Settings

MG = "/providers/Microsoft.Management/managementGroups"
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
ROLE_ACTIONS: list[str] = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]


def new_subscription() -> str:
    return str(uuid.UUID(f"00000000-0000-4000-8000-{uuid.uuid4().hex[:12]}"))


@dataclass
class GroupDeployment:
    local: LocalAzure
    group: str
    subscriptions: list[str]
    environment: dict[str, str]
    assignment: str  # the remediator's role assignment at the group

    @property
    def scope(self) -> str:
        return f"{MG}/{self.group}"

    def checks(self) -> dict[str, Check]:
        """Each check by its name, the group's name and scope written <group> and <mg>."""
        found = diagnose(self.environment)
        return {c.name.replace(self.scope, "<mg>").replace(self.group, "<group>"): c for c in found}

    def lines(self) -> dict[str, str]:
        return {name: check.status.value for name, check in self.checks().items()}

    def join(self, subscription: str, group: str = "") -> None:
        """A subscription moved under the group (or a group beneath it): the policy wires it after
        its evaluation (the harness's 15 simulated minutes)."""
        self.local.arm.place_subscription(subscription, group or self.group)
        self.subscriptions.append(subscription)


def wire(local: LocalAzure, subscription: str) -> None:
    """What the policy's deployment creates in a subscription: event-wiring-template.json's topic
    and event subscription (the subscription mode's, with no restricted resource groups)."""
    deployment = EventDeployment(local.arm.endpoint, str(local.arm.ca_bundle), estate_owner())
    deployment.deploy(
        subscription,
        function_app=local.function_app_id,
        storage_account=storage_account_id(ESTATE_SUBSCRIPTION),
    )


def deploy_across_group(
    local: LocalAzure, *, subscriptions: int = 3, role_actions: list[str] | None = None
) -> GroupDeployment:
    """infra's management-group mode: the group (a child group beneath it holding one of its
    subscriptions), the custom role defined and assigned there, the wiring policy registered and
    its remediation task run for the subscriptions already there, the app's storage, a sweep."""
    unique = uuid.uuid4().hex[:10]
    group = f"mg-{unique}"
    scope = local.arm.create_management_group(group)
    local.arm.create_management_group(f"{group}-eu", group)
    local.arm.grant(ESTATE_OWNER, "Owner", scope)
    role = local.arm.define_role(
        f"{REMEDIATOR_ROLE} {unique}", role_actions or ROLE_ACTIONS, assignable_scopes=[scope]
    )
    assignment = local.arm.grant(LoopbackCredential.APP_ID, role, scope)
    placed = [new_subscription() for _ in range(subscriptions)]
    for index, subscription in enumerate(placed):
        local.arm.place_subscription(subscription, f"{group}-eu" if index == 0 else group)
    local.arm.register_event_wiring(group, lambda subscription: wire(local, subscription))
    assert sorted(local.arm.remediate_event_wiring(group)) == sorted(placed)
    local.arm.wait_event_wiring()
    policy = {"monitored_management_groups": [group]}
    environment = app_environment(local, unique) | {"REMEDIATION_POLICY": json.dumps(policy)}
    deployment = GroupDeployment(local, group, placed, environment, assignment)
    settings = Settings.from_env(environment)
    create_app_storage(settings)
    remediator_for(settings).sweep(scheduled=True)  # as the timer runs it: at the group's scope
    return deployment


ALL_OK = {
    "settings": "ok",
    "storage": "ok",
    "arm": "ok",
    "management group <group>": "ok",
    "permissions <mg>": "ok",
    "events <mg>": "ok",
    "sweep": "ok",
    "poison": "ok",
    "dead letters": "ok",
}


def broken(line: str) -> dict[str, str]:
    """Every line ok but this one."""
    return {**ALL_OK, line: "fail"}


@pytest.fixture
def local(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.arm.reset(access=True)
    yield local_azure
    local_azure.arm.wait_event_wiring()


# -- against the stand-in ----------------------------------------------------------------------


def test_a_group_deployment_is_all_ok_and_says_how_many_subscriptions_it_read(
    local: LocalAzure, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = deploy_across_group(local)
    checks = deployment.checks()
    assert {name: c.status.value for name, c in checks.items()} == ALL_OK
    assert checks["management group <group>"].detail.startswith(f"3 subscriptions under {deployment.scope}")
    assert checks["events <mg>"].detail == f"3 of 3 subscriptions under {deployment.scope} wired"
    assert checks["permissions <mg>"].detail == (
        f"3 of 3 subscriptions under {deployment.scope} grant every action the remediator performs"
    )
    for key, value in deployment.environment.items():
        monkeypatch.setenv(key, value)
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "9 checks, 0 failed"


def test_a_subscription_that_joins_the_group_fails_the_events_line_until_the_policy_wires_it(
    local: LocalAzure,
) -> None:
    deployment = deploy_across_group(local)
    joined = new_subscription()
    deployment.join(joined, f"{deployment.group}-eu")  # beneath the group: it counts too
    checks = deployment.checks()
    assert {name: c.status.value for name, c in checks.items()} == broken("events <mg>")
    events = checks["events <mg>"]
    assert events.detail.startswith(
        f"3 of 4 subscriptions under {deployment.scope} wired; not wired: {joined} ({joined}: "
        f"no Event Grid system topic of subscription {joined}'s resource events)"
    )
    assert "az policy remediation create" in events.fix
    assert checks["permissions <mg>"].detail.startswith("4 of 4"), "the role at the group covers it"

    local.arm.advance_clock(900)  # Azure Policy evaluates the new subscription and deploys
    local.arm.wait_event_wiring()
    assert deployment.lines() == ALL_OK


def test_unwired_subscriptions_are_named_ten_at_most(local: LocalAzure) -> None:
    deployment = deploy_across_group(local, subscriptions=2)
    joined = sorted(new_subscription() for _ in range(13))
    for subscription in joined:
        deployment.join(subscription)
    events = deployment.checks()["events <mg>"]
    assert events.status is Status.FAIL
    assert f"2 of 15 subscriptions under {deployment.scope} wired" in events.detail
    assert f"not wired: {', '.join(joined[:10])} and 3 more (" in events.detail


def test_the_role_missing_at_the_group_fails_only_the_permissions_line(local: LocalAzure) -> None:
    """A Reader at the group can read the group and the wiring; it cannot remediate."""
    deployment = deploy_across_group(local)
    local.arm.revoke(deployment.assignment)
    local.arm.grant(LoopbackCredential.APP_ID, "Reader", deployment.scope)
    checks = deployment.checks()
    assert {name: c.status.value for name, c in checks.items()} == broken("permissions <mg>")
    permissions = checks["permissions <mg>"]
    assert permissions.detail.startswith(
        f"0 of 3 subscriptions under {deployment.scope} grant every action the remediator performs; "
        f"actions missing at: {', '.join(sorted(deployment.subscriptions))} ("
    )
    assert "Microsoft.Network/networkInterfaces/write" in permissions.detail
    assert "assign the remediator's custom role at the management group" in permissions.fix


def test_a_role_at_the_group_without_a_linked_action_fails_the_permissions_line_naming_it(
    local: LocalAzure,
) -> None:
    deployment = deploy_across_group(local, role_actions=[a for a in ROLE_ACTIONS if a != SUBNET_JOIN])
    checks = deployment.checks()
    assert {name: c.status.value for name, c in checks.items()} == broken("permissions <mg>")
    assert f"lacks 1 action(s): {SUBNET_JOIN} (linked" in checks["permissions <mg>"].detail


def test_a_group_the_identity_cannot_read_fails_its_line_naming_the_action(local: LocalAzure) -> None:
    deployment = deploy_across_group(local)
    local.arm.revoke(deployment.assignment)
    checks = deployment.checks()
    not_checked = {"permissions <mg>": "warn", "events <mg>": "warn"}
    assert {name: c.status.value for name, c in checks.items()} == {
        **broken("management group <group>"),
        **not_checked,
    }
    line = checks["management group <group>"]
    assert line.detail.endswith(
        f" cannot read which subscriptions are under {deployment.scope}: "
        f"it lacks {GROUP_MEMBERS_ACTION} there (ARM 403 AuthorizationFailed)"
    )
    assert "assign the remediator's custom role at the management group" in line.fix
    assert checks["events <mg>"].detail.startswith("not checked: ")


def test_a_group_arm_does_not_show_fails_its_line_as_not_found(local: LocalAzure) -> None:
    deployment = deploy_across_group(local)
    local.arm.grant(LoopbackCredential.APP_ID, "Reader", "/")  # it could read one if it were there
    misnamed = f"{deployment.group}-typo"
    deployment.environment["REMEDIATION_POLICY"] = json.dumps({"monitored_management_groups": [misnamed]})
    (line,) = [c for c in diagnose(deployment.environment) if c.name.startswith("management group")]
    assert (line.name, line.status) == (f"management group {misnamed}", Status.FAIL)
    assert line.detail.startswith(f"ARM shows no management group {MG}/{misnamed} (ARM 404 NotFound)")
    assert "not its display name" in line.fix


def test_a_restricted_scope_naming_a_group_arm_does_not_show_fails_its_own_line(local: LocalAzure) -> None:
    """A scope's group that cannot be read leaves every untagged set there unjudged: doctor says so
    on a line of its own; the monitored group's lines are unaffected."""
    deployment = deploy_across_group(local)
    local.arm.grant(LoopbackCredential.APP_ID, "Reader", "/")
    typo = f"{deployment.group}-prdo"
    deployment.environment["REMEDIATION_POLICY"] = json.dumps(
        {
            "monitored_management_groups": [deployment.group],
            "scopes": [{"scope": f"{MG}/{typo}", "mode": "strip"}],
        }
    )
    checks = {c.name: c for c in diagnose(deployment.environment)}
    line = checks[f"management group {typo}"]
    assert line.status is Status.FAIL and line.detail.startswith(f"ARM shows no management group {MG}/{typo}")
    assert "RESTRICTED_SCOPES" in line.fix
    assert checks[f"management group {deployment.group}"].status is Status.OK


def test_naming_subscriptions_leaves_the_group_lines_out(local: LocalAzure) -> None:
    deployment = deploy_across_group(local, subscriptions=1)
    (subscription,) = deployment.subscriptions
    names = [c.name for c in diagnose(deployment.environment, subscriptions=[subscription])]
    assert f"events {subscription}" in names and f"permissions /subscriptions/{subscription}" in names
    assert not [n for n in names if deployment.group in n]


# -- the judgements alone -------------------------------------------------------------------------

SUBS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 16)]


def ok(detail: str = "fine") -> Check:
    return Check("events x", Status.OK, detail)


def across(
    members: list[str],
    judged: Mapping[str, Check],
    unreadable: Mapping[str, Check] | None = None,
) -> Check:
    return across_subscriptions(
        "events <mg>",
        "platform",
        members,
        judged,
        unreadable or {},
        held="wired",
        lacking="not wired",
        fix="wire them",
        budget_s=60,
    )


def test_names_are_bounded_to_ten_then_counted() -> None:
    assert named(SUBS[:2]) == f"{SUBS[0]}, {SUBS[1]}"
    assert named(SUBS[:10]) == ", ".join(SUBS[:10])
    assert named(SUBS) == f"{', '.join(SUBS[:10])} and 5 more"


def test_a_group_whose_every_subscription_passes_is_ok() -> None:
    check = across(SUBS[:3], {s: ok() for s in SUBS[:3]})
    assert (check.status, check.detail) == (Status.OK, f"3 of 3 subscriptions under {MG}/platform wired")


def test_one_failing_subscription_fails_the_group_naming_it_and_its_finding() -> None:
    judged = {s: ok() for s in SUBS[:3]} | {SUBS[1]: Check("events x", Status.FAIL, "no topic", "make it")}
    check = across(SUBS[:3], judged)
    assert check.status is Status.FAIL
    assert (
        check.detail
        == f"2 of 3 subscriptions under {MG}/platform wired; not wired: {SUBS[1]} ({SUBS[1]}: no topic)"
    )
    assert check.fix == "wire them", "the group's fix, not the subscription mode's"


def test_a_subscription_that_could_not_be_read_fails_with_the_reads_own_fix() -> None:
    refused = Check("events x", Status.FAIL, "cannot be read: ARM 403 AuthorizationFailed", "grant the role")
    check = across(SUBS[:2], {SUBS[0]: ok()}, {SUBS[1]: refused})
    assert check.status is Status.FAIL
    assert f"could not be read: {SUBS[1]} ({SUBS[1]}: cannot be read: ARM 403" in check.detail
    assert check.fix == "grant the role"


def test_subscriptions_not_read_in_time_warn_saying_so() -> None:
    check = across(SUBS[:3], {SUBS[0]: ok()})
    assert check.status is Status.WARN
    assert check.detail.endswith(f"not all read within 60 s: 2 not read ({SUBS[1]}, {SUBS[2]})")


def test_warnings_of_subscriptions_warn_the_group() -> None:
    check = across(SUBS[:2], {SUBS[0]: ok(), SUBS[1]: Check("events x", Status.WARN, "no dead letters")})
    assert (check.status, check.detail.split("; ")[-1]) == (
        Status.WARN,
        f"1 with warnings ({SUBS[1]}: no dead letters)",
    )


def test_a_group_holding_no_subscription_warns() -> None:
    assert across([], {}).status is Status.WARN
    assert management_group_check("platform", [], "the app").status is Status.WARN


def test_a_group_that_cannot_be_read_names_the_action_or_the_group() -> None:
    refused = management_group_check(
        "platform", None, "the app", status=403, error="ARM 403 AuthorizationFailed"
    )
    assert refused.status is Status.FAIL and GROUP_MEMBERS_ACTION in refused.detail
    missing = management_group_check("platform", None, "the app", status=404, error="ARM 404 NotFound")
    assert missing.status is Status.FAIL and missing.detail.startswith(
        f"ARM shows no management group {MG}/platform"
    )
    throttled = management_group_check(
        "platform", None, "the app", status=429, error="ARM 429 TooManyRequests"
    )
    assert (throttled.status, throttled.fix) == (Status.FAIL, "run doctor again in a minute")


# -- reads bounded in count and time ---------------------------------------------------------------


@dataclass
class SlowArm:
    """A gateway whose every read takes ``read_s``, counting how many run at once."""

    subscriptions: list[str]
    read_s: float
    missing_group: set[str] = field(default_factory=set)  # subscriptions whose topic group is not there
    # Reads past this many wait for ``release`` (set by the test once doctor has answered): what
    # doctor reads within its budget does not depend on the machine's speed.
    answered_at_once: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    running: int = 0
    most_at_once: int = 0
    started: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> None:
        with self.lock:
            self.running += 1
            self.started += 1
            self.most_at_once = max(self.most_at_once, self.running)
            held = self.answered_at_once is not None and self.started > self.answered_at_once
        if held:
            self.release.wait(30)
        time.sleep(self.read_s)
        with self.lock:
            self.running -= 1

    def management_group_subscriptions(self, group: str) -> list[str]:
        return list(self.subscriptions)

    def caller_permissions(self, scope: str) -> list[Mapping[str, Any]]:
        self._read()
        return [{"actions": sorted(required_permissions()), "notActions": []}]

    def list_system_topics(self, subscription: str, resource_group: str = "") -> list[Mapping[str, Any]]:
        self._read()
        if subscription in self.missing_group:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found."
            )
        return []


def group_settings() -> Settings:
    policy = json.dumps({"monitored_management_groups": ["platform"]})
    return Settings.from_env(
        {"RemediationStorage": "UseDevelopmentStorage=true", "REMEDIATION_POLICY": policy}
    )


def group_lines(arm: SlowArm) -> dict[str, Check]:
    """The group's lines, read through ``arm`` (it has the gateway's methods the lines call)."""
    gateway: Any = arm
    found = doctor_groups.group_checks(group_settings(), gateway, "the app", required_permissions(), ())
    return {check.name: check for check in found}


def test_hundreds_of_subscriptions_are_read_a_few_at_a_time_and_doctor_stops_at_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor_groups, "GROUP_READS_BUDGET_S", 0.5)
    # 40 reads answered (20 subscriptions, both their reads), then every read hangs.
    arm = SlowArm([f"00000000-0000-4000-8000-{n:012d}" for n in range(300)], read_s=0, answered_at_once=40)
    try:
        checks = group_lines(arm)  # returns at its budget, reads still hanging
        started = arm.started
    finally:
        arm.release.set()
    assert started <= 40 + doctor_groups.GROUP_READ_WORKERS, "no read begins once the workers hang"
    assert arm.most_at_once <= doctor_groups.GROUP_READ_WORKERS
    permissions, events = checks[f"permissions {MG}/platform"], checks[f"events {MG}/platform"]
    assert permissions.status is Status.WARN and "not all read within 0.5 s: " in permissions.detail
    assert events.status is Status.FAIL, "those read have no topic"
    unread = int(events.detail.split("not all read within 0.5 s: ")[1].split(" ")[0])
    # 40 reads answered, two a subscription: 20 read whole, less one half-read per worker.
    workers = doctor_groups.GROUP_READ_WORKERS
    assert 300 - 20 <= unread <= 300 - (40 - workers) // 2
    # Ten named at most in each list (the unwired, the unread), and the first unwired's finding.
    assert events.detail.count("00000000-0000-4000-8000-") <= 10 + 10 + 2
    assert events.detail.count(" more") == 2


def test_a_subscription_without_the_topics_resource_group_is_not_wired_rather_than_unreadable() -> None:
    """ARM answers 404 ResourceGroupNotFound for a list in a group that is not there: the policy
    makes the group with the wiring."""
    arm = SlowArm(SUBS[:2], read_s=0, missing_group={SUBS[1]})
    checks = group_lines(arm)
    events = checks[f"events {MG}/platform"]
    assert events.status is Status.FAIL
    assert events.detail.startswith(
        f"0 of 2 subscriptions under {MG}/platform wired; not wired: {SUBS[0]}, {SUBS[1]} ("
    )
    assert "could not be read" not in events.detail
