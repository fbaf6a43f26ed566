"""`remediation doctor`'s reads: a deployment looked at end to end with the app's own settings and
identity (storage, ARM, Event Grid, the audit log), each answer judged by doctor.py. A check that
cannot read what it needs fails with what stopped it; the others still run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remediation.doctor import (
    Check,
    Status,
    SweepSeen,
    events_check,
    longest_gap,
    permissions_check,
    sweep_check,
    topic_for,
    waiting_check,
)
from remediation.permissions import NIC_CONFIGURATION_LINKS, NIC_LINKS, required_permissions
from remediation.settings import Settings, SettingsError
from remediation.worker import POISON_PREFIX

if TYPE_CHECKING:
    from remediation.arm import ArmGateway
    from remediation.engine import Remediator

# How far back doctor looks for the last sweep (an hour of the audit log at a time, newest first).
SWEEP_LOOKBACK_MIN = timedelta(hours=2)
SWEEP_LOOKBACK_CAP = timedelta(days=7)


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

    now = now or datetime.now(UTC)
    remediator = remediator_for(settings)
    chosen = sorted({s.lower() for s in subscriptions} or settings.policy.monitored_subscriptions)
    checks = [settings_check(settings, chosen)]
    checks.append(_guarded("storage", lambda: storage_check(settings, remediator)))
    checks.extend(_arm_checks(settings, remediator, chosen))
    checks.append(_guarded("sweep", lambda: _last_sweep_check(settings, remediator, now)))
    checks.append(_guarded("poison", lambda: _poison_check(settings, remediator)))
    checks.append(_guarded("dead letters", lambda: _dead_letter_check(settings, remediator)))
    return checks


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check whose reads failed fails, naming what stopped it (Azure's code and message)."""
    from azure.core.exceptions import AzureError

    from remediation.arm_errors import ArmError
    from remediation.journal import AuditUnavailable

    try:
        return check()
    except (ArmError, AzureError, AuditUnavailable, OSError) as error:
        text = str(error).strip().splitlines()
        return Check(
            name, Status.FAIL, f"cannot be read: {text[0] if text else type(error).__name__}", _fix_for(error)
        )


def _fix_for(error: BaseException) -> str:
    status = getattr(error, "status", None) or getattr(error, "status_code", None)
    if status == 403:
        return "grant the identity the remediator's custom role where this lives (azd provision)"
    return "check the endpoint settings and that the identity may reach it"


def settings_check(settings: Settings, chosen: Sequence[str]) -> Check:
    policy = settings.policy
    detail = (
        f"{len(policy.scopes)} restricted scopes; monitored subscriptions: "
        f"{', '.join(chosen) if chosen else 'none'}"
    )
    if not chosen:
        return Check(
            "settings",
            Status.FAIL,
            f"{detail}: the sweep has nothing to reconcile and doctor nothing to check",
            "list them in the policy's monitored_subscriptions (infra: monitoredSubscriptionIds)",
        )
    if settings.dry_run:
        return Check(
            "settings", Status.WARN, f"{detail}; REMEDIATION_DRY_RUN is on: nothing is written to ARM"
        )
    return Check("settings", Status.OK, detail)


def storage_check(settings: Settings, remediator: Remediator) -> Check:
    remediator.audit.reachable()
    work, _ = remediator.rechecks.backlog()
    missing = remediator.archive.missing_containers(
        [settings.ledger_container, settings.dead_letter_container]
    )
    queues = f"work queue: {'not yet created' if work is None else f'{work} waiting'}"
    if missing:
        return Check(
            "storage",
            Status.FAIL,
            f"table and queues reached ({queues}); containers missing: {', '.join(missing)}",
            "azd provision creates them (the ledger's under its immutability policy)",
        )
    return Check(
        "storage",
        Status.OK,
        f"table {settings.audit_table}, {queues}, ledger and dead-letter containers reached",
    )


def _arm_checks(settings: Settings, remediator: Remediator, chosen: Sequence[str]) -> list[Check]:
    arm = remediator.arm
    try:
        caller = arm.identity()
    except Exception as error:  # noqa: BLE001 - any failure to get a token is this check's finding
        return [
            Check("arm", Status.FAIL, f"no ARM token: {error}", "check ARM_CREDENTIAL and AZURE_CLIENT_ID")
        ]
    who = caller.name or caller.app_id or "the identity"
    checks = [Check("arm", Status.OK, f"{settings.arm_endpoint} as {who} ({caller.app_id or 'no appid'})")]
    required = required_permissions()
    linked = set(NIC_LINKS) | set(NIC_CONFIGURATION_LINKS)
    for subscription in chosen:
        for scope in restricted_paths(settings, subscription) or [f"/subscriptions/{subscription}"]:
            checks.append(
                _guarded(
                    f"permissions {scope}",
                    lambda scope=scope: permissions_check(  # type: ignore[misc]
                        scope, who, arm.caller_permissions(scope), required, linked
                    ),
                )
            )
        checks.append(
            _guarded(f"events {subscription}", lambda s=subscription: _events_check(settings, arm, s))  # type: ignore[misc]
        )
    return checks


def restricted_paths(settings: Settings, subscription: str) -> list[str]:
    """The policy's scopes in ``subscription`` (lower case paths)."""
    prefix = f"/subscriptions/{subscription.lower()}"
    return [s.path for s in settings.policy.scopes if s.path == prefix or s.path.startswith(prefix + "/")]


def _events_check(settings: Settings, arm: ArmGateway, subscription: str) -> Check:
    from remediation.arm import SYSTEM_TOPIC_TYPE
    from remediation.resource_ids import ResourceId

    topics = arm.list_system_topics(subscription)
    topic = topic_for(subscription, topics)
    found = None
    if topic is not None:
        found = arm.list_topic_event_subscriptions(
            ResourceId.parse(str(topic.get("id", "")), expected_type=SYSTEM_TOPIC_TYPE)
        )
    return events_check(
        subscription, topics, found, settings.function_app_id, restricted_paths(settings, subscription)
    )


def _last_sweep_check(settings: Settings, remediator: Remediator, now: datetime) -> Check:
    try:
        # Further back than the judgement (twice the gap), so a stale sweep is named by its age.
        look_back = min(max(4 * longest_gap(settings.sweep_schedule), SWEEP_LOOKBACK_MIN), SWEEP_LOOKBACK_CAP)
    except ValueError:
        look_back = SWEEP_LOOKBACK_MIN  # sweep_check reports the schedule
    return sweep_check(last_sweep(remediator, now, look_back), now, settings.sweep_schedule, look_back)


def last_sweep(remediator: Remediator, now: datetime, look_back: timedelta) -> SweepSeen | None:
    """The newest sweep in the audit log within ``look_back``, read an hour at a time from now."""
    from remediation.model import RecordKind
    from remediation.review import Filters

    end = now
    while end > now - look_back - timedelta(hours=1):
        start = max(end - timedelta(hours=1), now - look_back)
        sweeps = [r for r in remediator.audit.search(Filters(start, end)) if r.event_type == "sweep"]
        failed = {r.event_id: r.error or r.reason for r in sweeps if r.kind is RecordKind.ERROR}
        finished = [r for r in sweeps if r.kind is RecordKind.DECISION or r.event_id in failed]
        if finished:
            newest = max(finished, key=lambda r: r.time)
            return SweepSeen(newest.time, newest.event_id, failed.get(newest.event_id, ""))
        if start <= now - look_back:
            return None
        end = start
    return None


def _poison_check(settings: Settings, remediator: Remediator) -> Check:
    _, in_queue = remediator.rechecks.backlog()
    kept = remediator.archive.waiting(POISON_PREFIX) or 0
    days = settings.archive_retention_days
    check = waiting_check(
        "poison",
        kept + (in_queue or 0),
        f"the poison queue ({in_queue or 0}) and the archive's kept poison messages ({kept})",
        f"remediation replay --poison {days}d",
    )
    return check


def _dead_letter_check(settings: Settings, remediator: Remediator) -> Check:
    container = settings.dead_letter_container
    waiting = remediator.archive.waiting(container=container)
    if waiting is None:
        return Check(
            "dead letters",
            Status.FAIL,
            f"container {container} does not exist",
            "azd provision creates it (Event Grid dead-letters there)",
        )
    return waiting_check(
        "dead letters", waiting, f"container {container}", f"remediation replay --dead-letter {container}"
    )


def as_rows(checks: Iterable[Check]) -> list[dict[str, str]]:
    return [check.as_json() for check in checks]
