"""The sweep: the backstop for lost events. One Resource Graph query finds the monitored
subscriptions' scale sets (and one at management-group scope those of every subscription under the
monitored groups); a look at each restricted one is queued (whatever its mark says, so a
mark left behind is settled too), and the sweep returns. Unfinished writes of any set are judged
from the audit log first, since the set may be gone or no longer restricted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from remediation.ancestry import GroupMembers
from remediation.archive import EventArchive
from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError
from remediation.intake import hand_over, record_failure
from remediation.journal import Journal
from remediation.model import RecordKind, Result
from remediation.policy import Policy, UnplacedPolicy, restriction_for
from remediation.reconcile import SetReconciler
from remediation.resource_ids import ResourceId
from remediation.resources import ScaleSet
from remediation.settings import Settings
from remediation.single_flight import SetLocks
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

# The operation of a timer's sweep's records: `doctor` counts only these, as the no-sweep alert
# counts only the timer function's log line.
SCHEDULED_SWEEP = "scheduled sweep"
# How far back the sweep looks for unfinished writes of any set: as far as `audit verify` does.
RECOVERY_LOOKBACK = timedelta(days=7)
MONITORED = "policy monitored_subscriptions, monitored_management_groups"


@dataclass(frozen=True)
class SweepResult:
    sweep_id: str
    source: str  # "resource graph", "listing (...)" or "none"
    scale_sets: int
    restricted: tuple[ResourceId, ...]
    queued: int  # looks queued (one per restricted set)
    refused: tuple[str, ...] = ()  # named subscriptions the policy does not monitor


def sweep(
    settings: Settings,
    arm: ArmGateway,
    journal: Journal,
    *,
    sets: SetReconciler,
    locks: SetLocks,
    work: RecheckQueue,
    archive: EventArchive,
    subscriptions: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
    scheduled: bool = False,
    groups: GroupMembers | None = None,
) -> SweepResult:
    """Hand every restricted set of the monitored (or the given) subscriptions to the work queue:
    the listed subscriptions and every one under the monitored management groups (``groups``: the
    process's cache of them), or just the given ones that are monitored."""
    policy = settings.policy
    groups = groups or GroupMembers.for_policy(policy)
    given = sorted({s.lower() for s in subscriptions})
    named = given or sorted(policy.monitored_subscriptions)
    whole_groups = () if given else groups.groups  # swept at management-group scope
    sweep_id = f"sweep-{uuid.uuid4()}"
    context = Context(
        journal,
        dry_run=settings.dry_run,
        event_id=sweep_id,
        event_type="sweep",
        operation=SCHEDULED_SWEEP if scheduled else "sweep",
    )
    try:
        # A subscription the policy does not monitor is refused here as events about it are.
        read = arm.management_group_subscriptions
        chosen = [subscription for subscription in named if groups.monitors(policy, subscription, read)]
    except BaseException as error:
        record_failure(context, error, "the next sweep tries again")
        raise
    refused = tuple(sorted(set(named) - set(chosen)))
    for subscription in refused:  # recorded before anything else is read
        context.note(RecordKind.REJECTED, reason=f"sweep of subscription {subscription}: it is not monitored")
    if not chosen and not whole_groups:
        reason = f"sweep skipped: no subscription named ({MONITORED} or --subscription)"
        if refused:
            reason = f"sweep skipped: no named subscription is monitored ({MONITORED})"
        context.note(RecordKind.DECISION, reason=reason)
        journal.flush()
        return SweepResult(sweep_id, "none", 0, (), 0, refused)
    try:
        # Read afresh (at most a minute old): the sweep is the backstop for sets no event names.
        known = groups.known(read, whole_groups, fresh=True)
        covered = set(chosen) | known.union()
        _note_unread(context, known.unread)
        try:
            scale_sets, source = arm.query_scale_sets(chosen, whole_groups), "resource graph"
        except ArmError as error:
            # Resource Graph may be denied or unavailable: listing costs more calls but needs less.
            scale_sets = [found for sub in sorted(covered) for found in arm.list_scale_sets(sub)]
            source = f"listing (Resource Graph: {error.code})"
        placed = groups.placed(policy, read)  # the subscriptions under the groups scopes name
        restricted = _restricted(scale_sets, placed, context)
        judged = sets.recover_from_log(context, RECOVERY_LOOKBACK, covered)
        scope = f"{len(chosen)} subscriptions"
        if whole_groups:
            scope += f" and management groups {', '.join(whole_groups)} ({len(covered)} subscriptions in all)"
        context.note(
            RecordKind.DECISION,
            reason=f"sweep of {scope} by {source}: {len(scale_sets)} scale sets, "
            f"{len(restricted)} restricted; {judged} unfinished writes judged from the log",
        )
        journal.flush()
        statuses: list[str] = []
        for set_id in restricted:
            statuses.append(
                hand_over(
                    locks, work, set_id, context, f"sweep {sweep_id}", join=False, dry_run=settings.dry_run
                )[0]
            )
            if progress is not None:
                progress(len(statuses), len(restricted))
        archive.prune(datetime.now(UTC))
    except BaseException as error:
        record_failure(context, error, "the next sweep tries again")
        raise
    journal.flush()
    return SweepResult(sweep_id, source, len(scale_sets), restricted, statuses.count("queued"), refused)


def _note_unread(context: Context, unread: Mapping[str, ArmError]) -> None:
    """Record each monitored group that could not be read; the others are swept all the same."""
    for group, error in sorted(unread.items()):
        context.note(
            RecordKind.ERROR,
            result=Result.FAILED.value,
            error=f"ARM {error.status} {error.code}: {error.message}",
            reason=f"management group {group} could not be read: its subscriptions are swept only "
            "as far as Resource Graph shows them; the next sweep reads it again",
        )


def _restricted(scale_sets: Iterable[ScaleSet], placed: Policy, context: Context) -> tuple[ResourceId, ...]:
    """The restricted sets; those whose verdict depends on a management group that could not be
    read are not judged, and recorded so."""
    restricted: list[ResourceId] = []
    unjudged: list[str] = []
    for scale_set in scale_sets:
        try:
            if restriction_for(scale_set, placed).restricted:
                restricted.append(scale_set.id)
        except UnplacedPolicy:
            unjudged.append(scale_set.id.value)
    if unjudged:
        context.note(
            RecordKind.ERROR,
            result=Result.FAILED.value,
            error=f"management group {', '.join(sorted(placed.unread_groups))} could not be read",
            reason=f"{len(unjudged)} scale sets not judged (their verdict depends on an unread "
            f"management group), e.g. {unjudged[0]}; the next sweep tries again",
        )
    return tuple(restricted)
