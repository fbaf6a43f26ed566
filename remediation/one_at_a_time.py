"""One reconcile of a set at a time, whichever host runs it: the orchestration around the set's
lease (``single_flight``), and what is recorded and queued for each way it ends.

A set that is gone or unrestricted is settled from one read, without a lease. A restricted one is
reconciled under its lease, which reads it again (what was asked for before the lease's mark was
read must be seen by the reconcile that clears the mark). When another reconcile holds the set,
the set is left marked for it, and a way back is queued (a re-check after a lease period, which
reconciles the set if it is still marked): by each look that finds the set taken (intake keeps
those few: one look per marking), and by a holder that could not settle the mark; the way back,
if that reconcile's host dies before it looks at the mark.
"""

from __future__ import annotations

from collections.abc import Callable

from remediation.arm import ArmGateway
from remediation.model import Recheck, RecordKind
from remediation.reconcile import ReconcileResult, SetReconciler
from remediation.resource_ids import ResourceId
from remediation.settings import Settings
from remediation.single_flight import Held, SetLocks, Unguarded
from remediation.work_queue import RecheckQueue
from remediation.write_ahead import Context

BUSY = (
    "busy: a reconcile of the set is running (on this or another host); the set is left marked "
    "for it to look at again, and a way back is queued should it not"
)


class OneAtATime:
    def __init__(
        self,
        settings: Settings,
        arm: ArmGateway,
        sets: SetReconciler,
        locks: SetLocks,
        rechecks: RecheckQueue,
    ) -> None:
        self.settings = settings
        self.arm = arm
        self.sets = sets
        self.locks = locks
        self.rechecks = rechecks

    def reconcile(
        self,
        set_id: ResourceId,
        context: Context,
        attempt: int = 0,
        *,
        way_back: bool = False,
        deadline: float | None = None,
        guarded: bool = True,
        watch: int = 0,
    ) -> ReconcileResult | None:
        """The set reconciled (or settled: gone, unrestricted), or None when another reconcile
        holds it. ``way_back``: this is a way back, whose mark is already there; ``deadline``:
        the time budget's end (``SetReconciler.reconcile``); ``guarded=False``: a dry-run look in
        an app that writes, which takes no lease and touches no mark (it writes nothing, and must
        not settle a mark that a real reconcile owes)."""
        gated = self.sets.gate(set_id, self.arm.get_scale_set(set_id), context)
        if isinstance(gated, ReconcileResult):
            if guarded:
                self.locks.clear(set_id)  # settled: nothing asked for it needs a reconcile
            return gated

        def work() -> ReconcileResult:
            return self.sets.reconcile(set_id, context, attempt, deadline, watch)

        return self.run(set_id, context, work, way_back=way_back) if guarded else work()

    def run(
        self,
        set_id: ResourceId,
        context: Context,
        work: Callable[[], ReconcileResult],
        *,
        way_back: bool = False,
    ) -> ReconcileResult | None:
        """``work()`` under the set's lease; None (recorded, a way back queued) if it is taken."""
        outcome = self.locks.run(set_id, work, mark=not way_back)
        if isinstance(outcome, Unguarded):
            reason = f"reconciled without the set's lease (Blob storage unreachable: {outcome.why})"
            context.note(RecordKind.DECISION, scale_set=set_id.value, reason=reason)
            return outcome.result
        if isinstance(outcome, Held):
            if outcome.left_marked:
                self._queue_way_back(set_id, context.event_id)
            return outcome.result
        context.note(RecordKind.DECISION, scale_set=set_id.value, reason=BUSY)
        self._queue_way_back(set_id, context.event_id)
        return None

    def _queue_way_back(self, set_id: ResourceId, origin: str) -> None:
        # attempt 0: a way back is no growth re-check, and must not use up one of their delays.
        later = Recheck(set_id, attempt=0, reason="the set was busy", if_marked=True, origin=origin)
        self.rechecks.schedule(later, self.settings.set_lease_seconds + 5)
