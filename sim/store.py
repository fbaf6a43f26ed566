"""The simulator's state: resources, etags, long-running operations, events.

Everything ARM keeps between requests lives here, behind one lock: the resource
documents (keyed by lower-cased id, kept in the caller's casing), the running
operations, the request log and the event outbox. The generic rules every ARM
write obeys are enforced here once (If-Match / If-None-Match, the 429 lock while
an operation runs, a new etag per write, provisioningState transitions, one
event per completed write); what is particular to a resource type (references,
back-references, Flex instances) is delegated to a `Behaviour` from network.py
or compute.py. Events go to the publisher (the event bus) after the lock is released.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sim import errors, ids
from sim.errors import ArmError
from sim.events import RequestContext, resource_event, utc_now_iso
from sim.ids import ResourceRef
from sim.lagging_view import LONG_AGO, LaggingView
from sim.scheduler import Scheduler

JsonDict = dict[str, Any]
EventPublisher = Callable[[list[JsonDict]], None]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The simulator's switches (see ArmSimulator for what each one means)."""

    provision_delay_s: float = 0.3
    lro_duration_s: float = 0.05
    page_size: int = 20
    child_events: bool = False
    manual_vms_count_in_capacity: bool = False
    tenant_id: str = "00000000-0000-0000-0000-000000000000"
    time_scale: float = 1.0
    throttling: bool = True
    require_known_subnets: bool = False
    autoscale_patch_needs_profiles: bool = True
    nic_update_long_running: bool = False
    # Simulated seconds that lists (list_lag_s) and Resource Graph (graph_lag_s) lag the writes.
    list_lag_s: float = 1.0
    graph_lag_s: float = 5.0
    # When a write's event is published: when ARM accepts it, or when its operation completes.
    events_at: str = "acceptance"

    def __post_init__(self) -> None:
        if self.list_lag_s < 0 or self.graph_lag_s < 0:
            raise ValueError("list_lag_s and graph_lag_s must not be negative")
        if self.events_at not in EVENTS_AT:
            raise ValueError(f"events_at must be one of {', '.join(EVENTS_AT)}, not {self.events_at!r}")


EVENTS_AT = ("acceptance", "completion")


class OperationStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class OperationKind(StrEnum):
    WRITE = "write"
    DELETE = "delete"
    ACTION = "action"  # a POST such as manualupgrade: custom work, then the resource's write event


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


@dataclass
class Meta:
    """What the simulator knows about a resource that ARM does not put in its document."""

    seq: int
    # Ground truth the remediator has to infer from evidence: did a Flex set create this VM?
    created_by_scale_set: bool = False
    # When the VM became a member of its set (creation, or a later hand attach): "newest" order.
    joined_seq: int = 0
    # A Uniform scale set's next instance id (ids are never reused).
    next_instance: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What the HTTP layer needs to answer a write: status, body, and the operation to poll."""

    status: int
    doc: JsonDict | None
    operation: Operation | None


_UNSET_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for counters and assertions.

    received: when the request arrived, before admission (throttling, faults) or any work;
    time: when it was answered (recorded). A record built without `received` gets `time`.
    """

    method: str
    path: str
    resource_type: str
    operation: str
    status: int  # 0: the connection was closed without an answer (an injected drop)
    time: datetime
    error_code: str = ""
    principal: str = ""
    # The client's x-ms-client-request-id: the SDK sends the same one on each retry of a call.
    client_request_id: str = ""
    received: datetime = _UNSET_TIME
    # What a write sent: its If-Match header and its body, as the server read them.
    if_match: str = ""
    body: bytes = b""
    # The query's $filter, as the server read it (a list of a scale set's VMs names the set there).
    filter: str = ""

    def __post_init__(self) -> None:
        if self.received == _UNSET_TIME:
            object.__setattr__(self, "received", self.time)


class Behaviour:
    """What is particular to one resource type. Every method runs with the store lock held.

    The defaults are what most types do (nothing more on write, complete after the LRO duration,
    nothing to refuse or clean up); a type overrides what is particular to it.
    """

    resource_type: str
    # True: writes complete in the request (200/201, no operation to poll), as Microsoft.Insights does.
    synchronous: bool = False

    def synchronous_put(self, store: Store, previous: JsonDict | None) -> bool:
        """Whether a PUT or PATCH (previous None: a creation) completes in the request, answered
        200/201 with no operation to poll, rather than as a long-running operation."""
        return self.synchronous

    def synchronous_delete(self, store: Store, doc: JsonDict) -> bool:
        """Whether a DELETE completes in the request (200, no operation to poll)."""
        return self.synchronous

    def check_patch(self, store: Store, patch: JsonDict) -> None:
        """Refuse a PATCH body the provider refuses before merging it (raise ArmError)."""
        return None

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        """Validate a PUT body and build the document to store; raise ArmError; no side effects."""
        raise NotImplementedError(f"{type(self).__name__} must say how a PUT body becomes a document")

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        """Side effects of an accepted PUT on other resources (back-references)."""
        return None

    def put_delay(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> float:
        """Seconds until the PUT's operation completes."""
        return store.settings.lro_duration_s

    def complete_put(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        """Work done when the PUT's operation completes (e.g. Flex instances); may raise ArmError."""
        return None

    def provisioning_steps(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> int:
        """How many steps of work a long-running PUT does while it runs, spread evenly over its
        duration before it completes (a scale-out creates its instances one at a time)."""
        return 0

    def provision_step(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        """One of those steps (e.g. one instance), run while the operation is still in progress."""
        return None

    def check_delete(self, store: Store, doc: JsonDict) -> None:
        """Refuse a DELETE ARM would refuse (raise ArmError)."""
        return None

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        """Clean up references and cascade before the document goes; requested=False for cascades."""
        return None

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        """Add missing server fields to a seeded document."""
        return None

    def link(self, store: Store, doc: JsonDict) -> None:
        """Make back-references consistent after seeding (only where both ends exist)."""
        return None

    def view(self, store: Store, doc: JsonDict) -> None:
        """Fill what the server derives from other resources into a copy about to be served."""
        return None


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def merge_patch(target: JsonDict, patch: Mapping[str, Any]) -> JsonDict:
    """RFC 7386 JSON merge patch: objects merge, everything else (lists too) replaces, null removes."""
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(target.get(name), dict):
            merge_patch(target[name], value)
        else:
            target[name] = copy.deepcopy(value)
    return target


def writable(body: JsonDict, server_owned: tuple[str, ...], current: JsonDict | None) -> JsonDict:
    """A client's body without server fields, with the server-owned properties carried over."""
    doc = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "name", "type", "etag")}
    given = doc.get("properties")
    props: JsonDict = copy.deepcopy(given) if isinstance(given, dict) else {}
    doc["properties"] = props
    props.pop("provisioningState", None)
    previous = properties(current) if current is not None else {}
    for name in server_owned:
        props.pop(name, None)
        if name in previous:
            props[name] = copy.deepcopy(previous[name])
    return doc


def properties(doc: JsonDict) -> JsonDict:
    """`doc["properties"]`, created if missing (ARM always returns it)."""
    props = doc.get("properties")
    if not isinstance(props, dict):
        props = {}
        doc["properties"] = props
    return props


def sub_resources(doc: JsonDict) -> list[JsonDict]:
    """NRP's inline child resources (a NIC's ipConfigurations, a virtual network's subnets, a load
    balancer's pools, rules and frontends): they share their parent's etag."""
    props = properties(doc)
    found: list[JsonDict] = []
    for name in ("ipConfigurations", "subnets", *ids.LB_COLLECTIONS):
        found.extend(sub for sub in props.get(name) or [] if isinstance(sub, dict))
    return found


def reference_id(value: Any) -> str | None:
    """The `id` of a `{"id": ...}` sub-resource reference, else None."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


class Store:
    """All resources and operations of one simulator, behind one lock."""

    def __init__(self, settings: Settings, scheduler: Scheduler, behaviours: Iterable[Behaviour]) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self._scheduler = scheduler
        self._behaviours = {b.resource_type.lower(): b for b in behaviours}
        self._docs: dict[str, JsonDict] = {}
        self._meta: dict[str, Meta] = {}
        self._ops: dict[str, Operation] = {}
        self._busy: dict[str, str] = {}
        self._faults: dict[str, ArmError] = {}
        self._records: list[RequestRecord] = []
        self._outbox: list[JsonDict] = []
        self._publish: EventPublisher | None = None
        self._seq = itertools.count(1)
        self._addresses = itertools.count(1)
        self._private_addresses = itertools.count(4)
        self._view = LaggingView()
        self._dirty: set[str] = set()
        self._commits = 0

    # ------------------------------------------------------------------ public, takes the lock

    def set_publisher(self, publish: EventPublisher) -> None:
        """Hand completed events to `publish` (the event bus: sim/delivery.py), outside the lock."""
        with self.lock:
            self._publish = publish

    def reset(self) -> None:
        with self.lock:
            self._scheduler.cancel_all()
            self._docs.clear()
            self._meta.clear()
            self._ops.clear()
            self._busy.clear()
            self._faults.clear()
            self._records.clear()
            self._outbox.clear()
            self._view.reset()
            self._dirty.clear()
            self._seq = itertools.count(1)
            self._addresses = itertools.count(1)
            self._private_addresses = itertools.count(4)

    def get(self, resource_id: str) -> JsonDict | None:
        with self.lock:
            doc = self._docs.get(ids.key(resource_id))
            return self._served(doc) if doc is not None else None

    def list_resources(
        self,
        subscription: str,
        resource_group: str | None,
        resource_type: str,
        predicate: Callable[[JsonDict], bool] | None = None,
    ) -> list[JsonDict]:
        """Copies of the top-level resources of one type in a subscription (and group), oldest first.

        A Uniform set's NICs and public IPs have the same types but are not listed here: ARM lists them
        only under their scale set.
        """
        prefix = f"/subscriptions/{subscription}/".lower()
        if resource_group is not None:
            prefix += f"resourcegroups/{resource_group}/".lower()
        with self.lock:
            return [
                self._served(doc)
                for k, doc in self._listed(self.settings.list_lag_s)
                if k.startswith(prefix)
                and str(doc.get("type", "")).lower() == resource_type.lower()
                and ids.parse(k) is not None
                and (predicate is None or predicate(doc))
            ]

    def list_under(self, parent_id: str, resource_type: str) -> list[JsonDict]:
        """Copies of the resources of one type whose id starts with `parent_id/`, oldest first, as
        a list shows them (lagging the writes by `list_lag_s`)."""
        with self.lock:
            return [self._served(doc) for doc in self._under(parent_id, resource_type, lagged=True)]

    def children_under(self, parent_id: str, resource_type: str) -> list[JsonDict]:
        """`list_under` as things are now (for the simulator's own rules, never for a list)."""
        with self.lock:
            return [self._served(doc) for doc in self._under(parent_id, resource_type, lagged=False)]

    def visible(self, lag_s: float) -> list[JsonDict]:
        """Copies of every stored document as a view `lag_s` behind the writes shows it (0: now)."""
        with self.lock:
            return [copy.deepcopy(doc) for _, doc in self._listed(lag_s)]

    def export(self) -> JsonDict:
        with self.lock:
            return {"value": [copy.deepcopy(doc) for doc in self._docs.values()]}

    def operation(self, op_id: str) -> Operation | None:
        with self.lock:
            op = self._ops.get(op_id.lower())
            return copy.deepcopy(op) if op is not None else None

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self._records.append(record)

    def update(self, resource_id: str, change: Callable[[Store, JsonDict], None]) -> None:
        """Apply `change` to a live document under the lock, and deliver any events it emitted."""
        with self.lock:
            doc = self._docs.get(ids.key(resource_id))
            if doc is None:
                raise KeyError(resource_id)
            change(self, doc)
            self._mark(doc["id"])
            events = self._drain()
        self._deliver(events)

    def records(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._records)

    def fail_next_operation(self, resource_id: str, code: str, message: str) -> None:
        """Make the next operation on `resource_id` end Failed (fault injection for tests)."""
        with self.lock:
            self._faults[ids.key(resource_id)] = ArmError(500, code, message)

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
        context: RequestContext,
        work: ActionWork,
        *,
        delay: float,
        fail_with: ArmError | None = None,
    ) -> Operation:
        """A POST action on a resource: it is busy until `work` runs, then its write event is emitted."""
        with self.lock:
            current = self._docs.get(ids.key(resource_id))
            if current is None:
                raise KeyError(resource_id)
            if ids.key(resource_id) in self._busy:
                raise errors.another_operation(current["id"])
            op = self._start(
                OperationKind.ACTION, current, context, created=False, delay=delay, fault=fail_with
            )
            op.work = work
            accepted = copy.deepcopy(op)
            events = self._drain()
        self._deliver(events)
        return accepted

    def seed(self, document: JsonDict | list[JsonDict]) -> int:
        """Load ARM JSON (one resource, a list, or `{"value": [...]}`); returns how many were loaded."""
        items = _seed_items(document)
        with self.lock:
            seeded: list[JsonDict] = []
            for item in items:
                resource_id = str(item.get("id", ""))
                ref = ids.parse(resource_id)
                child = ids.parse_scale_set_child(resource_id)
                if ref is not None:
                    name, rtype = ref.name, ref.resource_type
                elif child is not None:
                    name, rtype = resource_id.rstrip("/").rsplit("/", 1)[1], child.resource_type
                else:
                    raise ValueError(f"cannot seed {item.get('id')!r}: not a resource id of a simulated type")
                doc = copy.deepcopy(item)
                doc.setdefault("name", name)
                doc.setdefault("type", rtype)
                doc.setdefault("etag", new_etag())
                properties(doc).setdefault("provisioningState", "Succeeded")
                self._behaviours[rtype.lower()].seed_fill(self, doc)
                self.insert(doc)
                seeded.append(doc)
            for doc in seeded:
                self._behaviour(doc).link(self, doc)
            # A seeded estate has been there a while: every view shows it at once. What linking
            # changed in resources already here is a change now.
            seeded_keys = {ids.key(doc["id"]) for doc in seeded}
            for k in seeded_keys:
                self._view.record(k, LONG_AGO, self._docs.get(k), self._meta[k].seq if k in self._meta else 0)
            self._dirty.update(k for k in self._docs if k not in seeded_keys)
            self._commit()
            return len(seeded)

    # ------------------------------------------------------------------ for behaviours (lock held)

    def doc(self, resource_id_or_key: str) -> JsonDict | None:
        """The live document (not a copy)."""
        return self._docs.get(ids.key(resource_id_or_key))

    def docs_of_type(self, resource_type: str) -> list[JsonDict]:
        """Live documents of one type, oldest first."""
        wanted = resource_type.lower()
        return [doc for doc in self._docs.values() if str(doc.get("type", "")).lower() == wanted]

    def meta(self, resource_id_or_key: str) -> Meta | None:
        return self._meta.get(ids.key(resource_id_or_key))

    def next_seq(self) -> int:
        return next(self._seq)

    def next_public_address(self) -> str:
        """A fresh address in 20.0.0.0/8 (Azure's public space), never reused within a run."""
        n = next(self._addresses)
        return f"20.{(n >> 16) & 0xFF}.{(n >> 8) & 0xFF}.{n & 0xFF or 1}"

    def next_private_address(self) -> str:
        """A fresh private address in 10.0.0.0/16 (the first four of a subnet are Azure's)."""
        n = next(self._private_addresses)
        return f"10.0.{(n >> 8) & 0xFF}.{n & 0xFF}"

    def insert(self, doc: JsonDict, *, created_by_scale_set: bool = False) -> Meta:
        """Store a document (new or replacing), keeping its meta if it existed."""
        k = ids.key(doc["id"])
        meta = self._meta.get(k)
        if meta is None:
            seq = self.next_seq()
            meta = Meta(seq=seq, created_by_scale_set=created_by_scale_set, joined_seq=seq)
            self._meta[k] = meta
        self._docs[k] = doc
        self._dirty.add(k)
        return meta

    def touch(self, doc: JsonDict) -> None:
        """A server-side change to a document: new etag, shared by its sub-resources (as NRP does)."""
        etag = new_etag()
        doc["etag"] = etag
        self._mark(doc["id"])
        for sub in sub_resources(doc):
            if "etag" in sub:
                sub["etag"] = etag

    def is_busy(self, resource_id_or_key: str) -> bool:
        return ids.key(resource_id_or_key) in self._busy

    def create_child(
        self, doc: JsonDict, context: RequestContext, *, created_by_scale_set: bool = False
    ) -> None:
        """A resource the platform creates itself; its event only if child events are switched on."""
        self.insert(doc, created_by_scale_set=created_by_scale_set)
        if self.settings.child_events:
            self.emit(doc, context, deleted=False, include_http_request=False)

    def remove_child(self, resource_id_or_key: str, context: RequestContext, *, emit: bool = True) -> None:
        """Delete a resource as a side effect of another write (cascade), with its own cleanup.

        emit=False for resources that never have events of their own (a Uniform instance's NICs).
        """
        k = ids.key(resource_id_or_key)
        doc = self._docs.get(k)
        if doc is None:
            return
        self._behaviour(doc).complete_delete(self, doc, context, requested=False)
        self._docs.pop(k, None)
        self._meta.pop(k, None)
        self._dirty.add(k)
        if emit and self.settings.child_events:
            self.emit(doc, context, deleted=True, include_http_request=False)

    def emit(
        self, doc: JsonDict, context: RequestContext, *, deleted: bool, include_http_request: bool
    ) -> None:
        self._outbox.append(
            resource_event(
                deleted=deleted,
                resource_id=doc["id"],
                resource_type=str(doc.get("type", "")),
                subscription_id=ids.subscription_of(doc["id"]),
                tenant_id=self.settings.tenant_id,
                context=context,
                include_http_request=include_http_request,
            )
        )

    # ------------------------------------------------------------------ internals

    def _mark(self, resource_id_or_key: str) -> None:
        """A document changed (or went): the lagging view records it at the next commit."""
        self._dirty.add(ids.key(resource_id_or_key))

    def _commit(self) -> None:
        """Record every changed document in the lagging view, as of now (lock held)."""
        if not self._dirty:
            return
        now = self._scheduler.now()
        for k in self._dirty:
            meta = self._meta.get(k)
            self._view.record(k, now, self._docs.get(k), meta.seq if meta is not None else 0)
        self._dirty.clear()
        self._commits += 1
        if self._commits % 64 == 0:
            self._view.prune(now - max(self.settings.list_lag_s, self.settings.graph_lag_s))

    def _listed(self, lag_s: float) -> Iterable[tuple[str, JsonDict]]:
        """(key, stored document) of what a view `lag_s` behind shows, oldest first (lock held)."""
        if lag_s <= 0:
            return list(self._docs.items())
        self._commit()
        return list(self._view.as_of(self._scheduler.now() - lag_s))

    def _under(self, parent_id: str, resource_type: str, *, lagged: bool) -> list[JsonDict]:
        prefix = ids.key(parent_id) + "/"
        wanted = resource_type.lower()
        return [
            doc
            for k, doc in self._listed(self.settings.list_lag_s if lagged else 0.0)
            if k.startswith(prefix) and str(doc.get("type", "")).lower() == wanted
        ]

    def _served(self, doc: JsonDict) -> JsonDict:
        """A copy of a document as ARM serves it, derived back-references filled in."""
        served = copy.deepcopy(doc)
        behaviour = self._behaviours.get(str(doc.get("type", "")).lower())
        if behaviour is not None:
            behaviour.view(self, served)
        return served

    def _behaviour(self, doc: JsonDict) -> Behaviour:
        behaviour = self._behaviours.get(str(doc.get("type", "")).lower())
        if behaviour is None:
            raise ArmError(500, "InternalServerError", f"no behaviour for {doc.get('type')!r}")
        return behaviour

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
        _set_state(doc, "Creating" if creating else "Updating")
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

    def _start(
        self,
        kind: OperationKind,
        doc: JsonDict,
        context: RequestContext,
        *,
        created: bool,
        delay: float | None,
        fault: ArmError | None = None,
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
        self.emit(doc, op.context, deleted=deleted, include_http_request=include_http_request)

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
                _set_state(doc, "Failed")
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
            _set_state(doc, "Succeeded")
            self._publish_event(op, doc)
            return
        if deleted:
            behaviour.complete_delete(self, doc, op.context, requested=True)
            self._docs.pop(ids.key(doc["id"]), None)
            self._meta.pop(ids.key(doc["id"]), None)
            self._mark(doc["id"])
        else:
            behaviour.complete_put(self, doc, op.context)
            _set_state(doc, "Succeeded")
        self._publish_event(op, doc)

    def _drain(self) -> list[JsonDict]:
        """The events to deliver once the lock is released; the changes made are committed."""
        self._commit()
        events, self._outbox = self._outbox, []
        return events

    def _deliver(self, events: list[JsonDict]) -> None:
        if not events:
            return
        with self.lock:
            publish = self._publish
        if publish is None:
            logger.debug("no event publisher; %d events dropped", len(events))
            return
        publish(events)


def _set_state(doc: JsonDict, state: str) -> None:
    props = properties(doc)
    props["provisioningState"] = state
    for sub in sub_resources(doc):
        properties(sub)["provisioningState"] = state


def _seed_items(document: JsonDict | list[JsonDict]) -> list[JsonDict]:
    if isinstance(document, list):
        return list(document)
    if isinstance(document.get("value"), list) and "id" not in document:
        return list(document["value"])
    return [document]


def now_utc() -> datetime:
    return datetime.now(UTC)
