"""`remediation doctor`'s reads: a deployment looked at end to end with the app's own settings and
identity (storage, ARM, Event Grid, the audit log), each answer judged by doctor.py and
doctor_events.py; the reads of the app's storage are doctor_storage.py's, the monitored management
groups' doctor_groups.py's. A check that cannot read what it needs fails with what stopped it; the
others still run. Nothing is written (the audit table is not even created)."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from remediation.doctor import GROUP_MEMBERS_ACTION, Check, Status, linked_scopes, permissions_check
from remediation.doctor_events import events_check, topic_for
from remediation.doctor_storage import dead_letter_check, last_sweep_check, poison_check, storage_check
from remediation.permissions import LINK_ACTIONS, required_permissions
from remediation.settings import Settings, SettingsError

if TYPE_CHECKING:
    from remediation.arm import ArmGateway
    from remediation.engine import Remediator
    from remediation.model import Caller

# The restricted sets whose links doctor reads (one GET each) per subscription, and for how long:
# the HTTP route answers within the platform's 230 s.
MAX_SETS_READ = 200
LINK_READS_BUDGET_S = 30.0


def diagnose(
    environ: Mapping[str, str] | None = None,
    subscriptions: Sequence[str] = (),
    now: datetime | None = None,
) -> list[Check]:
    """Every check, in order: settings first (nothing else runs without them)."""
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        return [Check("settings", Status.FAIL, str(error), "fix the app setting it names")]
    from remediation.engine import remediator_for

    # Doctor answers in seconds or says what stopped it (the HTTP route has 230 s): few retries,
    # short waits, rather than the remediator's patience with a throttled ARM.
    quick = dataclasses.replace(
        settings, arm_retry_total=1, arm_read_timeout_s=20.0, arm_max_pacing_wait_s=5.0
    )
    remediator = remediator_for(quick)
    now = now or datetime.now(UTC)
    chosen = sorted({s.lower() for s in subscriptions} or settings.policy.monitored_subscriptions)
    checks = [settings_check(settings, chosen, remediator.intake.monitors)]
    checks.append(_guarded("storage", functools.partial(storage_check, settings, remediator)))
    checks.extend(_arm_checks(settings, remediator, chosen, narrowed=bool(subscriptions)))
    checks.append(_guarded("sweep", functools.partial(last_sweep_check, settings, remediator, now)))
    checks.append(_guarded("poison", functools.partial(poison_check, settings, remediator)))
    checks.append(_guarded("dead letters", functools.partial(dead_letter_check, settings, remediator)))
    return checks


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check whose reads failed fails, naming what stopped it (Azure's code and message)."""
    try:
        return check()
    except Exception as error:
        if not _from_azure(error):
            raise
        return _failure(name, error)


def _from_azure(error: BaseException) -> bool:
    from azure.core.exceptions import AzureError

    from remediation.arm_errors import ArmError
    from remediation.journal import AuditUnavailable

    # ValueError: an id or name from the settings that cannot be asked for (InvalidResourceId).
    return isinstance(error, ArmError | AzureError | AuditUnavailable | OSError | ValueError)


def _failure(name: str, error: BaseException) -> Check:
    text = str(error).strip().splitlines()
    return Check(
        name, Status.FAIL, f"cannot be read: {text[0] if text else type(error).__name__}", fix_for(error)
    )


def fix_for(error: BaseException) -> str:
    """What to do about a read that failed, from the HTTP status in it or in its causes."""
    cause: BaseException | None = error
    while cause is not None:
        status = getattr(cause, "status", None) or getattr(cause, "status_code", None)
        if status == 403:
            return (
                "grant the identity the role infra/ assigns where this lives (azd provision), "
                "or wait a few minutes for a new assignment to apply"
            )
        if status == 429:
            return "throttled: run doctor again in a minute"
        cause = cause.__cause__
    return "check the endpoint settings and that the identity may reach it"


def settings_check(
    settings: Settings, chosen: Sequence[str], monitors: Callable[[str], bool] | None = None
) -> Check:
    """``monitors``: whether a subscription is monitored, the monitored management groups read from
    ARM (the remediator's); without it, only the listed subscriptions count."""
    from remediation.arm_errors import ArmError
    from remediation.resource_ids import InvalidResourceId, ResourceId, resource_group_name

    policy = settings.policy
    detail = f"{len(policy.scopes)} restricted scopes; checking subscriptions: {', '.join(chosen) or 'none'}"
    problems = []
    if policy.monitored_management_groups:
        detail += f"; monitored management groups: {', '.join(sorted(policy.monitored_management_groups))}"
    elif not chosen:
        problems.append("no monitored subscription: the sweep has nothing to reconcile")
    for subscription in chosen:
        try:
            if not (monitors or policy.monitors)(subscription):
                policy_keys = "policy monitored_subscriptions, monitored_management_groups"
                problems.append(f"{subscription} is not monitored ({policy_keys})")
        except ArmError as error:
            problems.append(f"whether {subscription} is under the monitored management groups: {error}")
    if settings.function_app_id:
        try:
            ResourceId.parse(settings.function_app_id, expected_type="Microsoft.Web/sites")
        except InvalidResourceId as error:
            problems.append(f"FUNCTION_APP_ID: {error}")
    if settings.event_topic_resource_group:
        try:
            resource_group_name(settings.event_topic_resource_group)
        except InvalidResourceId as error:
            problems.append(f"EVENT_TOPIC_RESOURCE_GROUP: {error}")
    name = settings.dead_letter_container
    if not (3 <= len(name) <= 63 and all(c.isalnum() or c == "-" for c in name) and name == name.lower()):
        problems.append(f"DEAD_LETTER_CONTAINER={name!r}: 3-63 lower-case letters, digits and hyphens")
    if problems:
        return Check(
            "settings",
            Status.FAIL,
            f"{detail}: {'; '.join(problems)}",
            "list them in the policy's monitored_subscriptions (infra: monitoredSubscriptionIds)",
        )
    if settings.dry_run:
        return Check(
            "settings", Status.WARN, f"{detail}; REMEDIATION_DRY_RUN is on: nothing is written to ARM"
        )
    return Check("settings", Status.OK, detail)


def _arm_checks(
    settings: Settings, remediator: Remediator, chosen: Sequence[str], *, narrowed: bool = False
) -> list[Check]:
    """The lines that read ARM: the identity, each chosen subscription's permissions, links and
    events, then (unless ``narrowed`` to named subscriptions) each monitored management group's."""
    arm = remediator.arm
    try:
        caller = arm.identity()
    except Exception as error:  # noqa: BLE001 - any failure to get a token is this check's finding
        return [
            Check("arm", Status.FAIL, f"no ARM token: {error}", "check ARM_CREDENTIAL and AZURE_CLIENT_ID")
        ]
    who = caller.name or caller.app_id or "the identity"
    checks = [identity_check(settings, caller)]
    required = set(required_permissions())
    policy = settings.policy
    if not (policy.monitored_management_groups or policy.scope_groups):  # read only for a group's members
        required -= {GROUP_MEMBERS_ACTION}
    linked = set(LINK_ACTIONS.values())
    for subscription in chosen:
        paths = restricted_paths(settings, subscription) or [f"/subscriptions/{subscription}"]
        for scope in paths:
            line = functools.partial(_permissions_line, arm, scope, who, required, linked)
            checks.append(_guarded(f"permissions {scope}", line))
        checks.extend(_link_checks(settings, arm, subscription, paths, who))
        checks.append(
            _guarded(f"events {subscription}", functools.partial(_events_check, settings, arm, subscription))
        )
    if settings.policy.monitored_management_groups and not narrowed:
        from remediation.doctor_groups import group_checks

        checks.extend(group_checks(settings, arm, who, required, linked))
    for group in sorted(policy.scope_groups - policy.monitored_management_groups):
        checks.append(_scope_group_check(arm, group, who))
    return checks


def _scope_group_check(arm: ArmGateway, group: str, who: str) -> Check:
    """Whether the subscriptions under a group a restricted scope names can be read: without them
    no untagged set there is judged (``restriction_for``)."""
    from remediation.arm_errors import ArmError
    from remediation.doctor import management_group_check

    try:
        found = sorted({s.lower() for s in arm.management_group_subscriptions(group)})
    except ArmError as error:
        said = f"ARM {error.status} {error.code}"
        return management_group_check(group, None, who, status=error.status, error=said, scoped=True)
    return management_group_check(group, found, who, scoped=True)


def identity_check(settings: Settings, caller: Caller) -> Check:
    """Doctor checks the permissions of whoever it runs as: off Azure, DefaultAzureCredential
    falls through to the `az login` user, whose rights say nothing of the app's."""
    described = f"{settings.arm_endpoint} as {caller.name or '?'} (appid {caller.app_id or '?'})"
    if caller.user:
        return Check(
            "arm",
            Status.FAIL,
            f"{described}: a user's sign-in, not the app's identity: the permission lines are this user's",
            "run doctor as the app: GET https://<app>/api/doctor with the admin key (README, Commands)",
        )
    expected = settings.managed_identity_client_id.lower()
    if expected and caller.app_id.lower() != expected:
        return Check(
            "arm",
            Status.FAIL,
            f"{described}, not the app's identity (AZURE_CLIENT_ID {expected}): the permission "
            "lines are this caller's",
            "run doctor as the app: GET https://<app>/api/doctor with the admin key (README, Commands)",
        )
    return Check("arm", Status.OK, described)


def restricted_paths(settings: Settings, subscription: str) -> list[str]:
    """The policy's scopes in ``subscription`` (lower case paths)."""
    prefix = f"/subscriptions/{subscription.lower()}"
    return [s.path for s in settings.policy.scopes if s.path == prefix or s.path.startswith(prefix + "/")]


def _link_checks(
    settings: Settings, arm: ArmGateway, subscription: str, paths: Sequence[str], who: str
) -> list[Check]:
    """The joins ARM checks for the links the restricted sets' models carry, where the linked
    resources live, when that is outside the restricted scopes (inside, the line above checked
    every action)."""

    unread: list[int] = []  # restricted sets left unread: over the count, or out of time

    def restricted_models() -> list[Mapping[str, Any]]:
        from remediation.ancestry import GroupMembers
        from remediation.arm_errors import ArmError
        from remediation.policy import UnplacedPolicy, restriction_for
        from remediation.resources import ScaleSet

        try:
            found = arm.query_scale_sets([subscription])
        except ArmError:
            found = arm.list_scale_sets(subscription)
        groups = GroupMembers.for_policy(settings.policy)  # if the scopes name management groups
        policy = groups.placed(settings.policy, arm.management_group_subscriptions)

        def restricted_or_unknown(scale_set: ScaleSet) -> bool:
            try:
                return restriction_for(scale_set, policy).restricted
            except UnplacedPolicy:  # a group it depends on is unreadable: its links checked all the same
                return True

        restricted = [s.id for s in found if restricted_or_unknown(s)]
        deadline = time.monotonic() + LINK_READS_BUDGET_S
        models = []
        for index, set_id in enumerate(restricted):
            if index >= MAX_SETS_READ or time.monotonic() > deadline:
                unread.append(len(restricted) - index)
                break
            models.append(arm.get_scale_set(set_id))
        return [model.raw for model in models if model is not None]

    try:
        scopes = linked_scopes(restricted_models())
    except Exception as error:
        if not _from_azure(error):
            raise
        return [_failure(f"links {subscription}", error)]
    skipped = (
        [
            Check(
                f"links {subscription}",
                Status.WARN,
                f"{unread[0]} restricted sets' links were not read (at most {MAX_SETS_READ} sets, "
                f"{LINK_READS_BUDGET_S:g} s, per subscription)",
            )
        ]
        if unread
        else []
    )
    outside = {
        scope: actions
        for scope, actions in scopes.items()
        if not any(f"{scope}/".startswith(f"{path.lower()}/") for path in paths)
    }
    return skipped + [
        _guarded(
            f"links {scope}",
            functools.partial(_permissions_line, arm, scope, who, actions, actions, line="links"),
        )
        for scope, actions in sorted(outside.items())
    ]


def _permissions_line(
    arm: ArmGateway,
    scope: str,
    who: str,
    required: Iterable[str],
    linked: Iterable[str],
    *,
    line: str = "permissions",
) -> Check:
    return permissions_check(scope, who, arm.caller_permissions(scope), required, linked, line=line)


def _events_check(settings: Settings, arm: ArmGateway, subscription: str) -> Check:
    topics, found = read_wiring(settings, arm, subscription)
    return events_check(
        subscription, topics, found, settings.function_app_id, restricted_paths(settings, subscription)
    )


def read_wiring(
    settings: Settings, arm: ArmGateway, subscription: str
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]] | None]:
    """A subscription's system topics (in EVENT_TOPIC_RESOURCE_GROUP) and the event subscriptions
    of its topic of resource events (None: no such topic). A resource group that does not exist
    holds no topic (ARM's 404 ResourceGroupNotFound: azd provision, or in management-group mode
    the wiring policy, makes it with the topic)."""
    from remediation.arm_errors import ArmError
    from remediation.arm_rest import SYSTEM_TOPIC_TYPE
    from remediation.resource_ids import ResourceId

    try:
        topics = arm.list_system_topics(subscription, settings.event_topic_resource_group)
    except ArmError as error:
        if error.status != 404 or error.code != "ResourceGroupNotFound":
            raise
        topics = []
    topic = topic_for(subscription, topics)
    if topic is None:
        return topics, None
    topic_id = ResourceId.parse(str(topic.get("id", "")), expected_type=SYSTEM_TOPIC_TYPE)
    return topics, arm.list_topic_event_subscriptions(topic_id)


def as_rows(checks: Iterable[Check]) -> list[dict[str, str]]:
    return [check.as_json() for check in checks]
