"""ARM's generic write rules, enforced once for every resource type: PUT, PATCH, DELETE, POST actions.

If-Match / If-None-Match, the refusal while an operation runs on the resource, a new etag per
write (shared by NRP's inline sub-resources), the location required, provisioningState
transitions, 201 for a creation and 200 for an update; the type's `Behaviour` validates the body
and says whether the write completes in the request or as a long-running operation
(sim/long_running.py), whose answer `WriteResult` carries to the HTTP layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from sim import errors, ids
from sim.documents import JsonDict, merge_patch, new_etag, properties, set_state, sub_resources
from sim.errors import ArmError
from sim.events import RequestContext
from sim.ids import ResourceRef
from sim.long_running import ActionWork, Operation, OperationKind, OperationStatus, OperationStore


@dataclass(frozen=True)
class WriteResult:
    """What the HTTP layer needs to answer a write: status, body, and the operation to poll."""

    status: int
    doc: JsonDict | None
    operation: Operation | None


class WritableStore(OperationStore):
    """The store that ARM's API writes through: every write's generic rules, then its operation."""

    def put(
        self,
        ref: ResourceRef,
        body: JsonDict,
        context: RequestContext,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        patch: bool = False,
        fail_with: ArmError | None = None,
    ) -> WriteResult:
        """PUT or PATCH; `fail_with` makes the accepted write's operation end Failed (fault injection)."""
        with self.lock:
            result = self._put(
                ref,
                body,
                context,
                if_match=if_match,
                if_none_match=if_none_match,
                patch=patch,
                fail_with=fail_with,
            )
            events = self._drain()
        self._deliver(events)
        return result

    def delete(
        self,
        resource_id: str,
        context: RequestContext,
        *,
        if_match: str | None = None,
        fail_with: ArmError | None = None,
    ) -> WriteResult:
        """DELETE of any stored resource (top level, or a Uniform instance); 204 if it is not there."""
        k = ids.key(resource_id)
        with self.lock:
            current = self._docs.get(k)
            if current is None:
                if if_match is not None:
                    raise errors.etag_mismatch(resource_id, if_match.strip(), None)
                return WriteResult(204, None, None)
            self._check_preconditions(current, if_match, None)
            if k in self._busy:
                raise errors.another_operation(current["id"])
            behaviour = self._behaviour(current)
            behaviour.check_delete(self, current)
            synchronous = behaviour.synchronous_delete(self, current)
            properties(current)["provisioningState"] = "Deleting"
            self._mark(k)
            op = self._start(
                OperationKind.DELETE,
                current,
                context,
                created=False,
                delay=None if synchronous else self.settings.lro_duration_s,
                fault=fail_with,
            )
            finished = None
            if synchronous:
                self._complete_locked(op.op_id)
                finished = self._ops[op.op_id]
            events = self._drain()
        self._deliver(events)
        if finished is None:
            return WriteResult(202, None, copy.deepcopy(op))
        if finished.status is OperationStatus.FAILED:
            error = finished.error or {}
            raise ArmError(500, str(error.get("code", "InternalServerError")), str(error.get("message", "")))
        return WriteResult(200, None, None)

    def start_action(
        self,
        resource_id: str,
        action: str,
        context: RequestContext,
        work: ActionWork,
        *,
        delay: float,
        fail_with: ArmError | None = None,
    ) -> Operation:
        """A POST `action` (ARM's name, e.g. manualUpgrade) on a resource: it is busy until `work`
        runs; its ResourceActionSuccess is emitted at acceptance or completion (`events_at`)."""
        with self.lock:
            current = self._docs.get(ids.key(resource_id))
            if current is None:
                raise KeyError(resource_id)
            if ids.key(resource_id) in self._busy:
                raise errors.another_operation(current["id"])
            op = self._start(
                OperationKind.ACTION,
                current,
                context,
                created=False,
                delay=delay,
                fault=fail_with,
                work=work,
                action=action,
            )
            accepted = copy.deepcopy(op)
            events = self._drain()
        self._deliver(events)
        return accepted

    def _check_preconditions(
        self, current: JsonDict | None, if_match: str | None, if_none_match: str | None
    ) -> None:
        if if_match is not None:
            given = if_match.strip()
            if current is None:
                raise errors.etag_mismatch("(missing)", given, None)
            accepted = {value.strip() for value in given.split(",")}
            if "*" not in accepted and current.get("etag") not in accepted:
                raise errors.etag_mismatch(current["id"], given, current.get("etag"))
        if if_none_match is not None and if_none_match.strip() == "*" and current is not None:
            raise errors.already_exists(current["id"])

    def _put(
        self,
        ref: ResourceRef,
        body: JsonDict,
        context: RequestContext,
        *,
        if_match: str | None,
        if_none_match: str | None,
        patch: bool,
        fail_with: ArmError | None,
    ) -> WriteResult:
        behaviour = self._behaviours[ref.resource_type.lower()]
        current = self._docs.get(ref.key)
        if if_match is not None and current is None:
            raise errors.etag_mismatch(ref.id, if_match.strip(), None)
        self._check_preconditions(current, if_match, if_none_match)
        if current is not None and ref.key in self._busy:
            raise errors.another_operation(current["id"])
        if patch:
            if current is None:
                raise errors.not_found(ref)
            behaviour.check_patch(self, body)
            body = merge_patch(copy.deepcopy(current), body)
        doc = behaviour.prepare_put(self, ref, copy.deepcopy(body), current)
        doc["id"] = current["id"] if current else ref.id
        doc["name"] = current["name"] if current else ref.name
        doc["type"] = ref.resource_type
        location = doc.get("location") or (current or {}).get("location")
        if not location:
            raise errors.ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        doc["location"] = location
        doc["etag"] = new_etag()
        for sub in sub_resources(doc):
            sub["etag"] = doc["etag"]
        creating = current is None and ref.namespace == "Microsoft.Compute"
        set_state(doc, "Creating" if creating else "Updating")
        synchronous = behaviour.synchronous_put(self, current)
        self.insert(doc)
        behaviour.apply_put(self, doc, current)
        delay = None if synchronous else max(behaviour.put_delay(self, doc, current), 0.0)
        op = self._start(
            OperationKind.WRITE, doc, context, created=current is None, delay=delay, fault=fail_with
        )
        if delay is not None:
            steps = behaviour.provisioning_steps(self, doc, current)
            for step in range(1, steps + 1):
                self._scheduler.call_later(delay * step / (steps + 1), lambda: self._step(op.op_id))
        status = 201 if current is None else 200
        if synchronous:
            self._complete_locked(op.op_id)
            finished = self._ops[op.op_id]
            if finished.status is OperationStatus.FAILED:
                error = finished.error or {}
                raise ArmError(
                    500, str(error.get("code", "InternalServerError")), str(error.get("message", ""))
                )
            return WriteResult(status, self._served(self._docs[ref.key]), None)
        return WriteResult(status, self._served(doc), copy.deepcopy(op))
