"""Carry out a Plan through the ARM gateway, write-ahead through the audit log, and verify.

Every write goes through ``write_ahead.announced_write``: its intent stored first (if that fails,
AuditUnavailable propagates and ARM is not touched), then the write, then its outcome. Writes run
per finding in order, the findings in parallel: a detach (which ends an instance's exposure), then
at once the deletion of the public IP it detached (ARM refuses to delete an attached one), so no
deletion waits for other instances' detaches.
Each finding is then verified from what ARM returned or by reading it again.

A 412 is not an error here: it means the NIC (or set) changed since it was read. The finding is
recorded as a conflict and reported back, and the engine re-reads and re-plans.

A strip planned from lists (which lag the writes) is confirmed just before its detach: ``confirm``
reads the instance's VM and NIC by id and judges the finding again (``plan.confirm_strip``), so
those reads run beside the other findings' writes, spending the read budget while the write
budget is spent, rather than all before the first write.

A reconcile has a time budget (a deadline on the monotonic clock): a finding whose first write is
not yet begun when it has passed is not begun (it is reported deferred, and a follow-up reconcile
does it), beyond the first round of parallel writes, so every reconcile makes progress. A finding
once begun is finished (its delete follows its detach).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError, PreconditionFailed
from remediation.arm_rest import WriteResult
from remediation.intents import describe, states
from remediation.model import SET_LEVEL_ACTIONS, Action, ActionKind, Finding, Plan, RecordKind, Result
from remediation.records import AuditRecord
from remediation.recovery import TargetState, judge
from remediation.resource_ids import ResourceId
from remediation.resources import NetworkInterface
from remediation.write_ahead import Context, Recovered, announced_write

# Writes in flight at once. ARM's write bucket (200 burst, 10/s) is what bounds the rate; a 429
# past it is retried after its Retry-After. Polls of the writes in flight spend the read bucket.
MAX_PARALLEL_FINDINGS = 16
# A write whose answers were lost is judged from its target read by id; one still in progress is
# read again, this often and this far apart, before the outcome is left unknown.
RECOVERY_READS = 4
RECOVERY_READ_INTERVAL_S = 1.0


@dataclass(frozen=True)
class FindingOutcome:
    finding: Finding
    result: Result
    detached_at: float | None = None  # time.time() when the public IP came off the NIC
    nic_after: NetworkInterface | None = None  # the NIC as ARM answered the detach
    deferred: bool = False  # SKIPPED for the time budget: a follow-up reconcile does it


# Judges a finding again from its VM and NIC read by id: the finding as it is now and its writes,
# or why there is nothing to write now.
Confirm = Callable[[Finding], tuple[Finding, list[Action]] | str]


@dataclass
class _Progress:
    """How far one finding's writes got."""

    finding: Finding
    actions: list[Action]
    conflict: bool = False
    failed: bool = False
    deferred: bool = False  # a write of it was not begun: the time budget had run out
    left_alone: bool = False  # its confirmation found nothing to write now
    detached_at: float | None = None  # time.time() when the public IP came off (exposure ended)
    detached_nic: Mapping[str, Any] | None = None

    @property
    def going(self) -> bool:
        return not (self.conflict or self.failed or self.deferred or self.left_alone)

    def settle(self, action: Action, ended: WriteResult | BaseException) -> BaseException | None:
        """Note how this finding's write ended; returns an error the handling must raise. A 412
        is a conflict (re-plan); a refusal that stands is recorded, not raised: raising would have
        the event delivered again and again for nothing."""
        if isinstance(ended, WriteResult):
            self.done(action, ended)
            return None
        error = ended
        if isinstance(error, _Deferred):
            self.deferred = True
            return None
        if isinstance(error, PreconditionFailed):
            self.conflict = True
            return None
        self.failed = True
        return None if isinstance(error, ArmError) and error.refused else error

    def done(self, action: Action, result: WriteResult) -> None:
        if action.kind in (ActionKind.DETACH_PUBLIC_IP, ActionKind.UPGRADE_INSTANCES):
            self.detached_at = result.completed_at
        if action.kind is ActionKind.DETACH_PUBLIC_IP:
            self.detached_nic = result.body


class _Deferred(Exception):
    """A write not begun: the reconcile's time budget had run out."""


class _Budget:
    """Lets the first ``free`` writes begin whatever the time; later ones only before ``deadline``."""

    def __init__(self, deadline: float | None, free: int, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._begun = itertools.count()
        self._lock = threading.Lock()
        self._free = free
        self._clock = clock

    def begin(self) -> None:
        with self._lock:
            begun = next(self._begun)
        if self._deadline is not None and begun >= self._free and self._clock() >= self._deadline:
            raise _Deferred


class Executor:
    def __init__(
        self,
        arm: ArmGateway,
        max_parallel: int = MAX_PARALLEL_FINDINGS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._arm = arm
        self._max_parallel = max_parallel
        self._clock = clock
        self._sleep = sleep

    def carry_out(
        self, plan: Plan, context: Context, deadline: float | None = None, confirm: Confirm | None = None
    ) -> list[FindingOutcome]:
        """Run every finding's writes in order (its detach, which ends the exposure, then the
        deletion of the IP it detached, as soon as that detach is done: no finding waits for
        another's), the findings in parallel. Then verify. Raises the first hard error once all of
        it is done. A finding whose first write is not begun by ``deadline`` (beyond the first
        round) is left: it comes back ``SKIPPED`` and deferred is recorded. ``confirm``: each
        detach's finding is judged again just before it (see the module); one with nothing to
        write now comes back ``SKIPPED``, its reason recorded."""
        by_finding: dict[int, list[Action]] = {}
        for action in plan.actions:
            by_finding.setdefault(id(action.finding), []).append(action)
        if not by_finding:
            return []
        progress = {key: _Progress(actions[0].finding, actions) for key, actions in by_finding.items()}
        first_error: BaseException | None = None
        workers = min(self._max_parallel, len(by_finding))
        budget = _Budget(deadline, workers, self._clock)
        # A finding whose writes begin by disabling autoscale goes first, so the setting does not
        # scale the set back while the others' writes run.
        first = [
            key for key, actions in by_finding.items() if actions[0].kind is ActionKind.DISABLE_AUTOSCALE
        ]
        for key in first:
            error = self._run_finding(progress[key], plan, context, budget, confirm)
            first_error = first_error or error
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remediate") as pool:
            running = [
                pool.submit(self._run_finding, progress[key], plan, context, budget, confirm)
                for key in by_finding
                if key not in first
            ]
            for future in running:
                first_error = first_error or future.result()
        remaining = self._public_ips_left(progress)
        outcomes: list[FindingOutcome] = []
        for key in by_finding:
            if progress[key].left_alone:
                outcomes.append(FindingOutcome(progress[key].finding, Result.SKIPPED))
            elif progress[key].conflict:
                outcomes.append(FindingOutcome(progress[key].finding, Result.CONFLICT))
            elif progress[key].deferred:
                context.note(
                    RecordKind.DECISION,
                    progress[key].finding,
                    mode=plan.mode.value,
                    result=Result.SKIPPED.value,
                    reason="deferred: the reconcile's time budget ran out first; a follow-up continues",
                )
                outcomes.append(FindingOutcome(progress[key].finding, Result.SKIPPED, deferred=True))
            elif progress[key].failed:
                outcomes.append(FindingOutcome(progress[key].finding, Result.FAILED))
            else:
                try:
                    outcomes.extend(self._verify_remediated(progress[key], plan, context, remaining))
                except ArmError as error:  # recorded; the others are still verified and recorded
                    first_error = first_error or error
        if first_error is not None:
            raise first_error
        return outcomes

    def _run_finding(
        self, progress: _Progress, plan: Plan, context: Context, budget: _Budget, confirm: Confirm | None
    ) -> BaseException | None:
        """One finding's writes, in order, each once the one before it is done; the first is
        gated by the time budget (a finding once begun is finished), then, for a detach that
        ``confirm`` judges, confirmed. Returns an error to raise."""
        try:
            budget.begin()
        except _Deferred:
            progress.deferred = True
            return None
        if confirm is not None and progress.actions[0].kind is ActionKind.DETACH_PUBLIC_IP:
            try:
                confirmed = confirm(progress.finding)
            except Exception as error:  # noqa: BLE001 - judged as a write's error would be
                return progress.settle(progress.actions[0], error)
            if isinstance(confirmed, str):
                progress.left_alone = True
                context.note(
                    RecordKind.DECISION,
                    progress.finding,
                    mode=plan.mode.value,
                    result=Result.SKIPPED.value,
                    reason=f"{confirmed}; read by id just before the write",
                )
                return None
            progress.finding, progress.actions = confirmed
        for action in progress.actions:
            if not progress.going:
                return None
            raised = progress.settle(action, self._attempt(action, plan, context))
            if raised is not None:
                return raised
        return None

    def _attempt(self, action: Action, plan: Plan, context: Context) -> WriteResult | BaseException:
        try:
            return self._write(action, plan, context)
        # _Progress judges which errors stand; any other is raised once every finding is done.
        except Exception as error:  # noqa: BLE001
            return error

    def _public_ips_left(self, progress: dict[int, _Progress]) -> dict[ResourceId, str]:
        """The public IPs whose deletion ARM accepted and that still exist, not being deleted.
        One list per resource group confirms most deletions; a list may lag behind the deletions
        it is asked about, so each IP it still shows as it was is read again by id (current)."""
        deleted = {
            action.target
            for each in progress.values()
            if not (each.failed or each.deferred or each.left_alone)
            for action in each.actions
            if action.kind is ActionKind.DELETE_PUBLIC_IP
        }
        groups = {(ip.subscription.lower(), ip.resource_group.lower()) for ip in deleted}
        listed = [ip for sub, group in sorted(groups) for ip in self._arm.list_public_ips(sub, group)]
        left: dict[ResourceId, str] = {}
        for ip in listed:
            if ip.id not in deleted or ip.provisioning_state.lower() == "deleting":
                continue
            current = self._arm.get_public_ip(ip.id)
            if current is not None and current.provisioning_state.lower() != "deleting":
                left[ip.id] = current.provisioning_state or "Succeeded"
        return left

    def _verify_remediated(
        self,
        progress: _Progress,
        plan: Plan,
        context: Context,
        public_ips_left: dict[ResourceId, str],
    ) -> list[FindingOutcome]:
        """A set-level write (capacity, model, upgrade) remediates every finding the plan did not
        leave alone, so all of them are verified; otherwise the one finding."""
        finding = progress.finding
        if progress.detached_nic is not None:
            # The NIC as ARM returned it once the PUT completed (the poller's final GET): a
            # re-read already made, so verifying it costs no further read.
            still = NetworkInterface.from_arm(progress.detached_nic).public_ip_ids
            problem = "the NIC still carries " + ", ".join(ip.value for ip in still) if still else ""
            undeleted = [ip for ip in finding.public_ip_ids if ip in public_ips_left]
            if undeleted and not problem:
                # Off the NIC (no exposure), but still there: the next reconcile deletes it again.
                for ip in undeleted:
                    context.note(
                        RecordKind.ERROR,
                        finding,
                        mode=plan.mode.value,
                        action=ActionKind.DELETE_PUBLIC_IP.value,
                        public_ip=ip.value,
                        result=Result.FAILED.value,
                        error=f"ARM accepted its deletion, but it still exists ({public_ips_left[ip]})",
                    )
                raise ArmError(
                    None, "VerificationFailed", f"{len(undeleted)} detached public IPs were not deleted"
                )
            self._verify(finding, problem, plan, context)
            after = NetworkInterface.from_arm(progress.detached_nic)
            return [FindingOutcome(finding, Result.SUCCEEDED, progress.detached_at, after)]
        kinds = {action.kind for action in progress.actions}
        left_alone = {id(skipped) for skipped, _ in plan.skipped}
        affected = (
            [f for f in plan.findings if id(f) not in left_alone] if kinds & SET_LEVEL_ACTIONS else [finding]
        )
        problems = self._still_wrong(affected, kinds)
        for each in affected:
            self._verify(each, problems.get(id(each), ""), plan, context)
        return [FindingOutcome(each, Result.SUCCEEDED, progress.detached_at) for each in affected]

    def _perform(self, action: Action) -> WriteResult:
        if action.kind is ActionKind.DETACH_PUBLIC_IP:
            assert action.body is not None
            return self._arm.put_nic(action.target, action.body, action.if_match)
        if action.kind is ActionKind.DELETE_PUBLIC_IP:
            return self._arm.delete_public_ip(action.target)
        if action.kind is ActionKind.DELETE_VM and action.finding.instance.is_uniform_instance:
            return self._arm.delete_uniform_instance(action.target)
        if action.kind is ActionKind.DELETE_VM:
            return self._arm.delete_vm(action.target)
        assert action.body is not None
        if action.kind is ActionKind.UPGRADE_INSTANCES:
            return self._arm.upgrade_instances(action.target, list(action.body["instanceIds"]))
        if action.kind is ActionKind.DISABLE_AUTOSCALE:
            return self._arm.patch_autoscale_setting(action.target, action.body)
        return self._arm.patch_scale_set(action.target, action.body, action.if_match)

    def _write(self, action: Action, plan: Plan, context: Context) -> WriteResult:
        before, after = states(action)
        fields: dict[str, Any] = {}
        if action.kind is ActionKind.DELETE_PUBLIC_IP:  # names the one IP it deletes, not all the NIC had
            fields["public_ip"] = action.target.value
        elif action.kind is ActionKind.UPGRADE_INSTANCES:  # names every instance it upgrades
            assert action.body is not None
            fields["instance"] = ",".join(
                f"{action.target.value}/virtualMachines/{n}" for n in action.body["instanceIds"]
            )
        return announced_write(
            context,
            lambda: self._perform(action),
            action.finding,
            recover=self._read_detach if action.kind is ActionKind.DETACH_PUBLIC_IP else None,
            action=action.kind.value,
            target=action.target,
            reason=describe(action),
            before=before,
            after=after,
            mode=plan.mode.value,
            **fields,
        )

    def _read_detach(self, intent: AuditRecord) -> Recovered:
        """A detach whose answers were lost (a dropped or throttled poll): the NIC read by id says
        whether it applied, and, if it did, the NIC read stands in for the write's answer. A NIC
        still updating is read again a few times, ``RECOVERY_READ_INTERVAL_S`` apart."""
        nic_id = ResourceId.parse(intent.nic)
        for attempt in range(RECOVERY_READS):
            if attempt:
                self._sleep(RECOVERY_READ_INTERVAL_S)
            nic = self._arm.get_nic(nic_id)
            resolution = judge(intent, TargetState(nic=nic))
            if resolution.result is not None:
                break
        if nic is not None and nic.provisioning_state.lower() == "failed":
            # Off the NIC, but the NIC needs repair: the set's next reconcile does both in order.
            return Recovered(None, f"{resolution.seen}, and the NIC needs repair")
        write = WriteResult("", nic.raw, time.time()) if nic is not None else None
        return Recovered(resolution.result, resolution.seen, write)

    def _still_wrong(self, findings: list[Finding], kinds: set[ActionKind]) -> dict[int, str]:
        """Re-read what was written: a remediation counts only if ARM now shows it done.
        Returns what is still wrong, per finding (by ``id``)."""
        problems: dict[int, str] = {}
        scale_set = findings[0].scale_set
        if ActionKind.UPGRADE_INSTANCES in kinds:
            # Each upgraded instance's NIC read by id: the set's list of NIC views lags the upgrade.
            for finding in findings:
                nic = self._arm.get_uniform_nic(finding.nic.id)
                carried = nic.public_ip_ids if nic is not None else ()
                if carried:
                    problems[id(finding)] = "its NICs still carry " + ", ".join(ip.value for ip in carried)
        elif ActionKind.DETACH_PUBLIC_IP in kinds:
            for finding in findings:
                nic = self._arm.get_nic(finding.nic.id)
                remaining = nic.public_ip_ids if nic is not None else ()
                if remaining:
                    problems[id(finding)] = "the NIC still carries " + ", ".join(ip.value for ip in remaining)
        elif ActionKind.DELETE_VM in kinds:
            for finding in findings:
                instance = finding.instance
                exists = (
                    self._arm.get_uniform_instance(instance.id) if instance.is_uniform_instance
                    else self._arm.get_vm(instance.id)
                ) is not None  # fmt: skip
                if exists:
                    problems[id(finding)] = "the VM still exists"
        elif ActionKind.SET_CAPACITY_ZERO in kinds:
            current = self._arm.get_scale_set(scale_set.id)
            if current is not None and current.capacity != 0:
                problems.update((id(f), f"the set's capacity is {current.capacity}, not 0") for f in findings)
        return problems

    def _verify(self, finding: Finding, problem: str, plan: Plan, context: Context) -> None:
        if problem:
            context.note(
                RecordKind.ERROR,
                finding,
                mode=plan.mode.value,
                result=Result.FAILED.value,
                error=f"after remediation {problem}",
            )
            raise ArmError(None, "VerificationFailed", f"{finding.instance.id}: after remediation {problem}")
        context.note(RecordKind.VERIFIED, finding, mode=plan.mode.value, result=Result.SUCCEEDED.value)
