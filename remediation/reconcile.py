"""Reconcile one scale set: settle what earlier handlings left, then observe, plan, act, verify.

Level-triggered (DESIGN.md decision 1): whatever asked for it (an event, a re-check, the sweep),
the set's live state is read again and brought into line with its restriction. Before planning,
a reconcile of a restricted set settles its write history (``recovery`` judges, this module reads
and writes):
- every unfinished write of the set (an intent with no outcome older than the grace period, or an
  outcome ``unknown``) gets the outcome ARM's state shows; the sweep does the same from the log
  for every set, gone and unrestricted ones included (``recover_from_log``);
- in strip mode, a NIC an update of ours left ``Failed`` is put again as it is, and a public IP
  remediation detached and did not delete is deleted, each after a live re-check; after the
  plan, a Uniform model that still gives public IPs loses them though no instance needed it
  (``upkeep``, write-ahead like every other write).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediation.act import Confirm, Executor, FindingOutcome
from remediation.ancestry import GroupMembers, ReadGroup
from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError, PreconditionFailed
from remediation.audit import AuditLog
from remediation.exemptions import today_utc
from remediation.model import (
    Action,
    ActionKind,
    Finding,
    Mode,
    ObservedSet,
    Plan,
    Recheck,
    RecordKind,
    Result,
)
from remediation.observe import observe_set
from remediation.plan import confirm_strip, plan, still_creating
from remediation.policy import Policy, UnplacedPolicy, restriction_for
from remediation.records import AuditRecord, Unfinished, unfinished_writes
from remediation.recovery import (
    TargetState,
    ids_of,
    judge,
    nics_in_doubt,
    to_resolve,
)
from remediation.resource_ids import NIC_TYPE, InvalidResourceId, ResourceId
from remediation.resources import NetworkInterface, ScaleSet
from remediation.review import Filters
from remediation.settings import Settings
from remediation.upkeep import delete_leftovers, repair_nics, strip_lone_model
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

log = logging.getLogger(__name__)

# How far back a reconcile looks into its set's writes for unfinished ones and their debris.
HISTORY_LOOKBACK = timedelta(days=1)

# How often a reconcile re-reads and re-plans after a 412 before giving up (and raising).
MAX_REPLANS = 3


@dataclass(frozen=True)
class ReconcileResult:
    scale_set: ResourceId
    mode: Mode | None  # None: the set is not restricted (or is gone)
    reason: str
    findings: int = 0
    outcomes: tuple[FindingOutcome, ...] = ()
    event_id: str = ""  # the event whose handling ran this reconcile (others may have shared it)
    growing: str = ""  # why the set may yet grow instances not seen (``still_creating``), or ""

    @property
    def deferred(self) -> int:
        """Findings whose writes the time budget left for a follow-up reconcile."""
        return sum(1 for outcome in self.outcomes if outcome.deferred)


@dataclass(frozen=True)
class NothingOwed:
    """A set that is gone or not restricted: no reconcile is owed."""

    reason: str  # the result's reason
    decision: str  # the decision record's reason


class SetReconciler:
    def __init__(
        self,
        settings: Settings,
        arm: ArmGateway,
        audit: AuditLog,
        rechecks: RecheckQueue,
        clock: Callable[[], datetime],
        *,
        groups: GroupMembers | None = None,
    ) -> None:
        """``groups``: the process's cache of the subscriptions under management groups."""
        self.settings = settings
        self.arm = arm
        self.audit = audit
        self.rechecks = rechecks
        self.clock = clock
        self.executor = Executor(arm)
        self.groups = groups or GroupMembers.for_policy(settings.policy)

    def policy_for(self, set_id: ResourceId, read: ReadGroup | None = None) -> Policy:
        """The policy, told which subscriptions are under the management groups its scopes name
        (read with ``read``, default this reconciler's gateway; cached: ``ancestry``), and which
        could not be read (``restriction_for`` judges without them where they could not change
        the verdict). Raises ``ArmError`` only while the first read of them is under way."""
        policy = self.settings.policy
        if not policy.scope_groups:
            return policy
        read = read or self.arm.management_group_subscriptions
        return self.groups.placed(policy, read, set_id=set_id)

    def gate(
        self, set_id: ResourceId, scale_set: ScaleSet | None, context: Context
    ) -> ReconcileResult | tuple[ScaleSet, Mode, str]:
        """A set that is gone or not restricted: its result (recorded). A restricted one: the set,
        its mode and why. The gate before a reconcile, so an event about an unrestricted set
        costs one read and no lease."""
        verdict = self.verdict(scale_set)
        if isinstance(verdict, NothingOwed):
            return self.record_nothing_owed(set_id, verdict, context)
        return verdict

    def verdict(
        self, scale_set: ScaleSet | None, read: ReadGroup | None = None
    ) -> NothingOwed | tuple[ScaleSet, Mode, str]:
        """The gate, recording nothing: whether the set (as read) is owed a reconcile. ``read``:
        how the management groups are read if the policy's scopes name one (``policy_for``)."""
        if scale_set is None:
            return NothingOwed("scale set no longer exists", "scale set no longer exists")
        policy = self.policy_for(scale_set.id, read)
        try:
            restriction = restriction_for(scale_set, policy)
        except UnplacedPolicy:  # a group its verdict depends on could not be read: an ARM read failed
            raise self.groups.unread_error(policy.unread_groups) from None
        if restriction.mode is None:
            return NothingOwed(restriction.reason, f"not restricted: {restriction.reason}")
        return scale_set, restriction.mode, restriction.reason

    @staticmethod
    def record_nothing_owed(set_id: ResourceId, verdict: NothingOwed, context: Context) -> ReconcileResult:
        context.note(RecordKind.DECISION, scale_set=set_id.value, reason=verdict.decision)
        return ReconcileResult(set_id, None, verdict.reason, event_id=context.event_id)

    def reconcile(
        self,
        set_id: ResourceId,
        context: Context,
        attempt: int = 0,
        deadline: float | None = None,
        watch: int = 0,
    ) -> ReconcileResult:
        """Bring one scale set into line; re-plan after a 412.

        ``attempt`` counts the delayed re-checks that led here (0 for an event or a sweep);
        ``watch`` the looks of a watch of the growing set (whose delayed re-checks are already
        queued); ``deadline`` (monotonic) is the time budget's end: writes not begun by then are
        left for a follow-up (``ReconcileResult.deferred``). ``ReconcileResult.growing`` says
        whether the set may yet grow instances this reconcile did not see.
        """
        deferred: list[ArmError] = []
        history: list[AuditRecord] | None = None
        # NICs written or met changed in an earlier pass, as they are now: a list may still show
        # them as they were (lists lag; reads by id and write answers are current).
        current: dict[ResourceId, NetworkInterface | None] = {}
        for replan in range(MAX_REPLANS):
            gated = self.gate(set_id, self.arm.get_scale_set(set_id), context)
            if isinstance(gated, ReconcileResult):
                return gated
            scale_set, mode, why = gated
            if history is None:
                # Only a restricted set's history is read here (an event about an unrestricted set
                # stays one read); the sweep settles the writes of gone and unrestricted sets.
                now = self.clock()
                window = Filters(now - HISTORY_LOOKBACK, now, scale_set=set_id.value, writes=True)
                history = list(self.audit.search(window))
                self.resolve(to_resolve(unfinished_writes(history, now), now, self._grace()), context)
            policy = self.policy_for(set_id)  # as the gate judged it: cached, no read
            # A Flexible set's strips are confirmed one by one just before each write (``act``):
            # their reads by id overlap the other instances' writes instead of all coming first.
            dry_run = self.settings.dry_run or context.dry_run
            later = mode is Mode.STRIP and scale_set.is_flexible and not dry_run
            observed = self._observe(
                scale_set,
                mode,
                policy,
                history=history,
                current=current,
                context=context,
                deferred=deferred,
                replan=replan,
                later=later,
            )
            the_plan = plan(observed, mode, policy, today_utc())
            self._record_decisions(the_plan, context, len(observed.instances), why)
            growing = still_creating(observed) or ""
            if replan == 0 and not watch:
                self._schedule_recheck(growing, observed, context, attempt)
            outcomes: tuple[FindingOutcome, ...] = ()
            if not self.settings.dry_run and the_plan.actions:
                confirm = self._confirmer(observed, policy) if later else None
                outcomes = tuple(self.executor.carry_out(the_plan, context, deadline, confirm))
            conflict = any(outcome.result is Result.CONFLICT for outcome in outcomes)
            # A Uniform model the plan left with its public IP (no instance needed it): a 412 on
            # it, like a conflict among the plan's writes, means the set is read again.
            settled = not conflict and strip_lone_model(
                self.arm, observed, the_plan, context, policy=policy, dry_run=dry_run
            )
            if settled:
                if deferred:
                    raise deferred[0]
                return ReconcileResult(
                    set_id, mode, why, len(the_plan.findings), outcomes, context.event_id, growing
                )
            log.info("scale set %s changed while we wrote to it: re-reading", set_id)
            for outcome in outcomes:
                nic_id = outcome.finding.nic.id
                if outcome.nic_after is not None:
                    current[nic_id] = outcome.nic_after
                elif outcome.result is Result.CONFLICT and nic_id.is_type(NIC_TYPE):
                    current[nic_id] = self.arm.get_nic(nic_id)

        reason = f"the set's NICs kept changing under us: gave up after {MAX_REPLANS} re-plans"
        context.note(RecordKind.ERROR, scale_set=set_id.value, result=Result.FAILED.value, reason=reason)
        raise PreconditionFailed(412, "PreconditionFailed", reason)  # not a refusal: redelivered

    def _observe(
        self,
        scale_set: ScaleSet,
        mode: Mode,
        policy: Policy,
        *,
        history: list[AuditRecord],
        current: dict[ResourceId, NetworkInterface | None],
        context: Context,
        deferred: list[ArmError],
        replan: int,
        later: bool,
    ) -> ObservedSet:
        """The set as the plan needs it; on the first pass of a strip, what earlier handlings left
        settled first (a Failed NIC put again, a detached public IP deleted)."""
        # Eviction reads them too: one whose minimum refills the set is recorded (or disabled).
        with_autoscale = mode is Mode.EVICT or (mode is Mode.SCALE_TO_ZERO and policy.disable_autoscale)
        if later and replan == 0:
            # An update of ours that did not succeed may have left its NIC Failed, which a
            # lagging list need not show: read by id, so its repair is not missed.
            for nic_id in nics_in_doubt(history):
                current.setdefault(nic_id, self.arm.get_nic(nic_id))
        observed = observe_set(
            self.arm, scale_set, with_autoscale=with_autoscale, current=current, confirmed_later=later
        )
        if replan == 0 and mode is Mode.STRIP and not self.settings.dry_run:
            if repair_nics(self.arm, policy, observed, history, context=context, deferred=deferred):
                observed = observe_set(
                    self.arm, scale_set, with_autoscale=with_autoscale, confirmed_later=later
                )
            delete_leftovers(self.arm, policy, observed, history, context=context, deferred=deferred)
        return observed

    def _confirmer(self, observed: ObservedSet, policy: Policy) -> Confirm:
        """Judges a strip planned from lists again from its VM and NIC read by id (current)."""
        listed = {instance.vm.id: instance.nics for instance in observed.instances}
        today = today_utc()

        def confirm(finding: Finding) -> tuple[Finding, list[Action]] | str:
            vm = self.arm.get_vm(finding.instance.id)
            nic = self.arm.get_nic(finding.nic.id) if vm is not None else None
            others = tuple(each for each in listed.get(finding.instance.id, ()) if each.id != finding.nic.id)
            return confirm_strip(finding, vm, (*others, nic) if nic is not None else others, policy, today)

        return confirm

    def _grace(self) -> timedelta:
        return timedelta(seconds=self.settings.interrupted_write_grace_s)

    # -- unfinished writes -----------------------------------------------------------------

    def recover_from_log(self, context: Context, lookback: timedelta, subscriptions: set[str]) -> int:
        """Judge every unfinished write of these subscriptions in the log's last ``lookback``,
        whatever its set (gone, no longer restricted, or restricted): the sweep's pass. Returns
        how many were judged."""
        now = self.clock()
        unfinished = [
            write
            for write in to_resolve(self.audit.unfinished_writes(now - lookback, now), now, self._grace())
            if _subscription_of(write.intent) in subscriptions
        ]
        self.resolve(unfinished, context)
        return len(unfinished)

    def resolve(self, unfinished: Sequence[Unfinished], context: Context) -> None:
        """Give each unfinished write the outcome ARM's state shows now (read by id), citing it."""
        for write in unfinished:
            intent = write.intent
            why = (
                "its answer did not say whether it applied"
                if write.unknown
                else f"the handling of {intent.event_id} stopped after announcing it"
            )
            try:
                resolution = judge(intent, self._target_state(intent))
            except (ArmError, InvalidResourceId) as error:  # judged again by the next reconcile
                context.note(
                    RecordKind.ERROR,
                    scale_set=intent.scale_set,
                    target=intent.target,
                    action=intent.action,
                    intent_id=intent.record_id,
                    result=Result.FAILED.value,
                    error=str(error),
                    reason=f"unfinished write could not be judged ({why}); the next reconcile tries again",
                )
                continue
            if resolution.result is None:
                context.note(
                    RecordKind.DECISION,
                    scale_set=intent.scale_set,
                    target=intent.target,
                    action=intent.action,
                    reason=f"unfinished write not judged yet ({why}): {resolution.seen}; "
                    "the next reconcile looks again",
                )
                continue
            context.journal.write(
                context.outcome(
                    intent,
                    resolution.result,
                    reason=f"resolved: {why}; ARM shows {resolution.seen}",
                    state_after=resolution.seen,
                )
            )

    def _target_state(self, intent: AuditRecord) -> TargetState:
        """What ``judge`` needs about the write's target, read by id (reads by id are current)."""
        action = intent.action
        target = ResourceId.parse(intent.target) if intent.target else None
        if action in (ActionKind.DETACH_PUBLIC_IP.value, ActionKind.REPAIR_NIC.value):
            return TargetState(nic=self.arm.get_nic(target or ResourceId.parse(intent.nic)))
        if action == ActionKind.DELETE_PUBLIC_IP.value:
            return TargetState(public_ip=self.arm.get_public_ip(target or ids_of(intent.public_ip)[0]))
        if action == ActionKind.DELETE_VM.value:
            vm_id = target or ResourceId.parse(intent.instance)
            uniform = vm_id.is_type("Microsoft.Compute/virtualMachineScaleSets/virtualMachines")
            return TargetState(vm=self.arm.get_uniform_instance(vm_id) if uniform else self.arm.get_vm(vm_id))
        if action == ActionKind.DISABLE_AUTOSCALE.value and target is not None:
            return TargetState(autoscale=self.arm.get_autoscale_setting(target))
        set_id = target or ResourceId.parse(intent.scale_set)
        scale_set = self.arm.get_scale_set(set_id)
        if action == ActionKind.UPGRADE_INSTANCES.value and scale_set is not None:
            instances = tuple(self.arm.list_uniform_instances(set_id))
            nics = tuple(self.arm.list_uniform_nics(set_id)) if instances else ()
            return TargetState(scale_set=scale_set, instances=instances, instance_nics=nics)
        return TargetState(scale_set=scale_set)

    # -- records and re-checks -------------------------------------------------------------

    def _schedule_recheck(self, why: str, observed: ObservedSet, context: Context, attempt: int) -> None:
        """Look again later if instances may still appear; bounded by RECHECK_DELAYS_SECONDS. The
        fallback of the watch (``worker``), should a look of it be lost."""
        if not why:
            return
        delays = self.settings.recheck_delays_s
        set_id = observed.scale_set.id
        if attempt >= len(delays):
            reason = f"{why}; no re-check left after {attempt} (the sweep will look again)"
        else:
            later = Recheck(set_id, attempt + 1, why, origin=context.event_id, dry_run=context.dry_run)
            self.rechecks.schedule(later, delays[attempt])
            reason = f"{why}: re-check {attempt + 1} in {delays[attempt]:g} s"
        context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)

    @staticmethod
    def _record_decisions(the_plan: Plan, context: Context, instances: int, why_restricted: str) -> None:
        set_id = the_plan.scale_set.id.value
        mode = the_plan.mode.value
        for note in the_plan.notes:
            context.note(RecordKind.DECISION, scale_set=set_id, mode=mode, reason=note)
        if not the_plan.findings:
            reason = f"restricted ({why_restricted}); no public IP on any of {instances} instances"
            context.note(RecordKind.DECISION, scale_set=set_id, mode=mode, reason=reason)
            return
        for finding, action, left_alone in the_plan.per_finding():
            reason = left_alone or (
                "dry run: would remediate" if context.dry_run else f"restricted ({why_restricted}): remediate"
            )
            context.note(RecordKind.DECISION, finding, mode=mode, action=action, reason=reason)


def _subscription_of(intent: AuditRecord) -> str | None:
    """The subscription an intent's write went to (None if it names no resource)."""
    try:
        return ResourceId.parse(intent.target or intent.scale_set).subscription.lower()
    except InvalidResourceId:
        return None
