"""Long-running operations: registered when ARM accepts a write, completed when they are due.

An `Operation` is what `.../locations/{loc}/operations/{id}` serves (sim/operations.py says how).
`OperationStore` adds running them to the store: an accepted write's resource is busy until its
operation completes; a long-running PUT may do its work in steps while it runs (a scale-out's
instances, one at a time); on completion the type's `Behaviour` finishes the work (or an
injected fault fails it), the document reaches Succeeded (or Failed) and the write's one event
is emitted, at acceptance or at completion (`events_at`). Everything here runs with the store
lock held, except the scheduler's callbacks, which take it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sim import ids
from sim.documents import JsonDict, set_state
from sim.errors import ArmError
from sim.events import RequestContext, utc_now_iso
from sim.store import Store


class OperationStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class OperationKind(StrEnum):
    WRITE = "write"
    DELETE = "delete"
    ACTION = "action"  # a POST such as manualUpgrade: custom work, then its ResourceActionSuccess


# The work of an ACTION operation, run with the lock held when the operation completes.
ActionWork = Callable[["Store", JsonDict, RequestContext], None]


@dataclass
class Operation:
    """One long-running operation, as served by `.../locations/{loc}/operations/{id}`."""

    op_id: str
    kind: OperationKind
    resource_id: str
    resource_type: str
    location: str
    context: RequestContext
    created: bool
    start_time: str = field(default_factory=utc_now_iso)
    status: OperationStatus = OperationStatus.IN_PROGRESS
    end_time: str | None = None
    error: JsonDict | None = None
    work: ActionWork | None = field(default=None, repr=False, compare=False)
    action: str = ""  # an ACTION's name in ARM's casing, e.g. manualUpgrade
    event_published: bool = False  # at acceptance (`events_at`): not again at completion

    @property
    def namespace(self) -> str:
        return self.resource_type.split("/", 1)[0]

    def body(self) -> JsonDict:
        body: JsonDict = {"name": self.op_id, "status": str(self.status), "startTime": self.start_time}
        if self.end_time is not None:
            body["endTime"] = self.end_time
        if self.error is not None:
            body["error"] = copy.deepcopy(self.error)
        return body


class OperationStore(Store):
    """The store's long-running operations: their start, steps, completion, and status."""

    def operation(self, op_id: str) -> Operation | None:
        with self.lock:
            op = self._ops.get(op_id.lower())
            return copy.deepcopy(op) if op is not None else None

    def track(self, op: Operation) -> None:
        """Serve the status of an operation whose resource another store holds (sim/event_grid.py);
        its owner ends it with `settle`. `reset()` forgets it like the rest."""
        with self.lock:
            self._ops[op.op_id.lower()] = op

    def settle(self, op_id: str, error: JsonDict | None = None) -> bool:
        """End a tracked operation: Succeeded, or Failed with `error`. False if it is not running
        (forgotten by `reset()`, or ended already)."""
        with self.lock:
            op = self._ops.get(op_id.lower())
            if op is None or op.status is not OperationStatus.IN_PROGRESS:
                return False
            op.status = OperationStatus.FAILED if error is not None else OperationStatus.SUCCEEDED
            op.error = copy.deepcopy(error)
            op.end_time = utc_now_iso()
            return True

    def fail_next_operation(self, resource_id: str, code: str, message: str) -> None:
        """Make the next operation on `resource_id` end Failed (fault injection for tests)."""
        with self.lock:
            self._faults[ids.key(resource_id)] = ArmError(500, code, message)

    def _start(
        self,
        kind: OperationKind,
        doc: JsonDict,
        context: RequestContext,
        *,
        created: bool,
        delay: float | None,
        fault: ArmError | None = None,
        work: ActionWork | None = None,
        action: str = "",
    ) -> Operation:
        """Register an operation; `delay` None: the caller completes it in the request."""
        op = Operation(
            op_id=str(uuid.uuid4()),
            kind=kind,
            resource_id=doc["id"],
            resource_type=str(doc["type"]),
            location=str(doc.get("location", "")).replace(" ", "").lower(),
            context=context,
            created=created,
            work=work,
            action=action,
        )
        self._ops[op.op_id] = op
        self._busy[ids.key(doc["id"])] = op.op_id
        if fault is not None:
            self._faults[ids.key(doc["id"])] = fault
        if delay is not None:
            if self.settings.events_at == "acceptance":
                self._publish_event(op, doc)
            self._scheduler.call_later(delay, lambda: self._complete(op.op_id))
        return op

    def _publish_event(self, op: Operation, doc: JsonDict) -> None:
        """The operation's resource event, once (at acceptance or at completion, `events_at`)."""
        if op.event_published:
            return
        op.event_published = True
        deleted = op.kind is OperationKind.DELETE
        # Real events carry httpRequest on updates, deletes and actions, not on creations.
        include_http_request = op.kind is not OperationKind.WRITE or not op.created
        self.emit(
            doc, op.context, deleted=deleted, include_http_request=include_http_request, action=op.action
        )

    def _step(self, op_id: str) -> None:
        """One provisioning step of an operation still in progress (nothing once it is over)."""
        with self.lock:
            op = self._ops.get(op_id)
            doc = self._docs.get(ids.key(op.resource_id)) if op is not None else None
            if op is None or doc is None or op.status is not OperationStatus.IN_PROGRESS:
                return
            self._behaviour(doc).provision_step(self, doc, op.context)
            events = self._drain()
        self._deliver(events)

    def _complete(self, op_id: str) -> None:
        with self.lock:
            self._complete_locked(op_id)
            events = self._drain()
        self._deliver(events)

    def _complete_locked(self, op_id: str) -> None:
        op = self._ops.get(op_id)
        if op is None or op.status is not OperationStatus.IN_PROGRESS:
            return  # forgotten by reset()
        k = ids.key(op.resource_id)
        doc = self._docs.get(k)
        try:
            self._finish(op, doc, self._faults.pop(k, None))
        except ArmError as err:
            op.status = OperationStatus.FAILED
            op.error = err.body()["error"]
            if doc is not None and k in self._docs:
                set_state(doc, "Failed")
        else:
            op.status = OperationStatus.SUCCEEDED
        finally:
            op.end_time = utc_now_iso()
            self._mark(k)
            if self._busy.get(k) == op_id:
                del self._busy[k]

    def _finish(self, op: Operation, doc: JsonDict | None, fault: ArmError | None) -> None:
        """Complete an operation's work and emit its event; raise ArmError to fail it."""
        if doc is None:
            raise ArmError(500, "InternalServerError", f"resource {op.resource_id} vanished mid-operation")
        if fault is not None:
            raise fault
        behaviour = self._behaviour(doc)
        deleted = op.kind is OperationKind.DELETE
        if op.kind is OperationKind.ACTION:
            if op.work is not None:
                op.work(self, doc, op.context)
            set_state(doc, "Succeeded")
            self._publish_event(op, doc)
            return
        if deleted:
            behaviour.complete_delete(self, doc, op.context, requested=True)
            self._docs.pop(ids.key(doc["id"]), None)
            self._meta.pop(ids.key(doc["id"]), None)
            self._mark(doc["id"])
        else:
            behaviour.complete_put(self, doc, op.context)
            set_state(doc, "Succeeded")
        self._publish_event(op, doc)
