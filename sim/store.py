"""The simulator's state: resources, etags, long-running operations, events.

Everything ARM keeps between requests lives here, behind one lock: the resource
documents (keyed by lower-cased id, kept in the caller's casing), the running
operations, the request log and the event outbox. `Store` holds that state, answers
the reads (by id now, lists from the lagging view), seeds an estate, and offers
behaviours what they may do with the lock held. The generic rules every ARM write
obeys are enforced once, by `WritableStore` (sim/writes.py: If-Match / If-None-Match,
the 429 lock while an operation runs, a new etag per write, provisioningState
transitions) and `OperationStore` (sim/long_running.py: one event per completed write);
what is particular to a resource type (references, back-references, Flex instances) is
delegated to a `Behaviour` (sim/behaviour.py) from network.py, virtual_machines.py and
the other types' modules. Events go to the publisher (the event bus) after the lock is
released.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, new_etag, properties, sub_resources
from sim.errors import ArmError
from sim.events import RequestContext, resource_event
from sim.lagging_view import LONG_AGO, LaggingView
from sim.request_log import RequestRecord
from sim.scheduler import Scheduler
from sim.settings import Settings

if TYPE_CHECKING:
    from sim.long_running import Operation

EventPublisher = Callable[[list[JsonDict]], None]

logger = logging.getLogger(__name__)

# Re-exported: code outside sim/ imports RequestRecord from here (tests/hosts.py and others).
__all__ = ["EventPublisher", "Meta", "RequestRecord", "Store", "now_utc"]


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
        self,
        doc: JsonDict,
        context: RequestContext,
        *,
        deleted: bool,
        include_http_request: bool,
        action: str = "",
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
                action=action,
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


def _seed_items(document: JsonDict | list[JsonDict]) -> list[JsonDict]:
    if isinstance(document, list):
        return list(document)
    if isinstance(document.get("value"), list) and "id" not in document:
        return list(document["value"])
    return [document]


def now_utc() -> datetime:
    return datetime.now(UTC)
