"""Microsoft.EventGrid system topics and their event subscriptions, at Event Grid's own ARM paths.

The remediator is fed by one system topic per monitored subscription (topicType
`Microsoft.Resources.Subscriptions`) and an event subscription on it that delivers to its function
(infra/app/event-topic.bicep, infra/app/event-subscription.bicep); tools that check a deployment
read both back with the app's identity. The simulator serves, for any api-version:

    /subscriptions/{s}/providers/Microsoft.EventGrid/systemTopics                    GET list
    /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.EventGrid/systemTopics GET list
        .../systemTopics/{topic}                                     PUT, GET, DELETE
        .../systemTopics/{topic}/eventSubscriptions                  GET list
        .../systemTopics/{topic}/eventSubscriptions/{name}           PUT, GET, DELETE

What the answers say, from the 2025-02-15 REST API (Azure/azure-rest-api-specs,
specification/eventgrid/resource-manager/Microsoft.EventGrid/stable/2025-02-15/EventGrid.json and
its examples SystemTopics_Get.json, SystemTopics_ListBySubscription.json, SystemTopics_Delete.json,
SystemTopicEventSubscriptions_Get.json):
- a topic PUT is long-running (`x-ms-long-running-operation`), 201 when it creates, 200 when it
  updates; an event subscription PUT is long-running too (the Go SDK's
  `SystemTopicEventSubscriptionsClient.BeginCreateOrUpdate`), 201 "EventSubscription CreateOrUpdate
  request accepted." Both answer with the document, `provisioningState` Creating or Updating, and
  `Azure-AsyncOperation` (sim/operations.py: the simulator's status URLs, here under
  `Microsoft.EventGrid/locations/{location}`); the document reaches Succeeded when the operation
  completes after `lro_duration_s` (Failed with an injected `LRO_FAILED` fault);
- a DELETE is long-running, 202 with `Azure-AsyncOperation` and `Location`, 204 when there is
  nothing to delete (the example's 200/202/204); deleting a topic deletes its event subscriptions;
- lists are `{"value": [...]}`, paged at `page_size` with an absolute `nextLink` as every list of
  the simulator (sim/listing.py); unlike the other types' lists they do not lag the writes;
- a missing topic is ARM's 404 `ResourceNotFound`; anything under a missing topic (a PUT, GET,
  DELETE or list of its event subscriptions) ARM's 404 `ParentResourceNotFound` "Can not perform
  requested operation on nested resource. Parent resource '{topic}' not found." (the answer quoted
  in pulumi/pulumi-hugo#58); a missing event subscription 404 `ResourceNotFound` in ARM's form.
What Event Grid refuses in a body, and the documents' shape: sim/event_grid_rules.py.

Every request is admitted as all ARM requests are (sim/admission.py: throttled, authorized as
`Microsoft.EventGrid/systemTopics[/eventSubscriptions]/{read,write,delete}`, fault-injected) and
recorded; Resource Graph, `export()` and the event bus do not see these resources (writes to them
raise no resource events). Ids compare case-insensitively and keep the casing of their creation.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sim import event_grid_rules as rules
from sim.api_messages import Response, injected_failure, method_not_allowed
from sim.documents import JsonDict
from sim.errors import ArmError, json_object
from sim.events import RequestContext
from sim.long_running import Operation, OperationKind, OperationStore
from sim.operations import announce
from sim.scheduler import Scheduler

NAMESPACE = "Microsoft.EventGrid"
_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/Microsoft\.EventGrid/"
    r"systemTopics(?:/(?P<topic>[^/]+)(?P<children>/eventSubscriptions(?:/(?P<name>[^/]+))?)?)?/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class EventGridPath:
    """What an Event Grid request path names: a list of topics, a topic, its event subscriptions, one."""

    subscription: str
    resource_group: str | None
    topic: str | None
    children: bool  # under `.../eventSubscriptions`
    name: str | None  # the event subscription's name

    @property
    def resource_type(self) -> str:
        return rules.SUBSCRIPTION_TYPE if self.children else rules.TOPIC_TYPE

    @property
    def topic_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{rules.TOPIC_TYPE}/{self.topic}"
        )

    @property
    def subscription_id(self) -> str:
        return f"{self.topic_id}/eventSubscriptions/{self.name}"


def match(path: str) -> EventGridPath | None:
    found = _PATH.match(path)
    if found is None or (found["topic"] is not None and found["rg"] is None):
        return None
    return EventGridPath(found["sub"], found["rg"], found["topic"], bool(found["children"]), found["name"])


@dataclass(frozen=True)
class _Call:
    """One request to a topic or an event subscription, as `EventGridApi.handle` was given it."""

    method: str
    target: EventGridPath
    body: bytes
    context: RequestContext
    response: Response
    api_version: str


def _key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


class EventGridApi:
    """System topics and event subscriptions of one simulator, behind a lock of their own.

    Long-running operations are tracked in the simulator's OperationStore (so its status URLs serve
    them) and completed by its scheduler; `reset()` forgets every topic and event subscription.
    """

    def __init__(
        self,
        operations: OperationStore,
        scheduler: Scheduler,
        endpoint: Callable[[], str],
        *,
        lro_duration_s: float,
        tenant_id: str,
    ) -> None:
        self._operations = operations
        self._scheduler = scheduler
        self._endpoint = endpoint
        self._lro_duration_s = lro_duration_s
        self._tenant_id = tenant_id
        self._lock = threading.RLock()
        self._topics: dict[str, JsonDict] = {}  # by lower-cased id, in order of creation
        self._subscriptions: dict[str, JsonDict] = {}
        self._running: dict[str, str] = {}  # resource key -> the operation that settles its state

    def reset(self) -> None:
        with self._lock:
            self._topics.clear()
            self._subscriptions.clear()
            self._running.clear()

    def handle(
        self,
        method: str,
        target: EventGridPath,
        body: bytes,
        *,
        context: RequestContext,
        response: Response,
        api_version: str,
    ) -> list[JsonDict] | None:
        """Answer one request into `response`; a list's items are returned for the caller to page."""
        method = method.upper()
        if target.topic is None or (target.children and target.name is None):
            if method != "GET":
                raise method_not_allowed(method)
            return self._list(target)
        if method not in ("GET", "PUT", "DELETE"):
            raise method_not_allowed(method)
        call = _Call(method, target, body, context, response, api_version)
        with self._lock:
            if target.children:
                self._subscription(call)
            else:
                self._topic(call)
        return None

    def wired(self, subscription: str) -> bool:
        """Whether a subscription's events reach anyone: a Succeeded system topic with the
        subscription as its source holds a Succeeded event subscription (`events_need_wiring`)."""
        source = f"/subscriptions/{subscription}".lower()
        with self._lock:
            for key, topic in self._topics.items():
                props = topic["properties"]
                if str(props["source"]).rstrip("/").lower() != source:
                    continue
                if props.get("provisioningState") != "Succeeded":
                    return False
                prefix = key + "/eventsubscriptions/"
                return any(
                    k.startswith(prefix) and d["properties"].get("provisioningState") == "Succeeded"
                    for k, d in self._subscriptions.items()
                )
        return False

    # ------------------------------------------------------------------ lists

    def _list(self, target: EventGridPath) -> list[JsonDict]:
        with self._lock:
            if target.children:
                self._parent(target)
                prefix = _key(target.topic_id) + "/eventsubscriptions/"
                return [copy.deepcopy(d) for k, d in self._subscriptions.items() if k.startswith(prefix)]
            prefix = f"/subscriptions/{target.subscription}/".lower()
            if target.resource_group is not None:
                prefix += f"resourcegroups/{target.resource_group}/".lower()
            return [copy.deepcopy(d) for k, d in self._topics.items() if k.startswith(prefix)]

    # ------------------------------------------------------------------ system topics

    def _topic(self, call: _Call) -> None:
        target, response = call.target, call.response
        key = _key(target.topic_id)
        current = self._topics.get(key)
        if self._read_or_delete(call, current, rules.TOPIC_TYPE, str(target.topic)):
            return
        doc = rules.topic_document(
            json_object(call.body),
            current,
            topic_id=current["id"] if current is not None else target.topic_id,
            name=current["name"] if current is not None else str(target.topic),
            subscription=target.subscription,
            tenant=self._tenant_id,
        )
        source = doc["properties"]["source"].rstrip("/").lower()
        for other_key, other in self._topics.items():
            if other_key != key and str(other["properties"]["source"]).rstrip("/").lower() == source:
                raise rules.duplicate_source(doc["properties"]["source"])
        self._topics[key] = doc
        self._start(doc, OperationKind.WRITE, call, created=current is None)
        response.status = 201 if current is None else 200
        response.body = copy.deepcopy(doc)

    # ------------------------------------------------------------------ event subscriptions

    def _subscription(self, call: _Call) -> None:
        target, response = call.target, call.response
        topic = self._parent(target)
        key = _key(target.subscription_id)
        current = self._subscriptions.get(key)
        if self._read_or_delete(call, current, rules.SUBSCRIPTION_TYPE, f"{topic['name']}/{target.name}"):
            return
        sub_id = current["id"] if current is not None else f"{topic['id']}/eventSubscriptions/{target.name}"
        name = current["name"] if current is not None else str(target.name)
        doc = rules.subscription_document(sub_id, name, topic, json_object(call.body))
        self._subscriptions[key] = doc
        self._start(doc, OperationKind.WRITE, call, created=current is None, location=str(topic["location"]))
        response.status = 201
        response.body = copy.deepcopy(doc)

    def _read_or_delete(self, call: _Call, current: JsonDict | None, resource_type: str, name: str) -> bool:
        """A GET (404 when missing) or a DELETE (long-running; 204 when missing) of a topic or an
        event subscription, answered; False for a PUT, which the caller answers."""
        if call.method == "GET":
            if current is None:
                raise _not_found(call.target, resource_type, name)
            call.response.body = copy.deepcopy(current)
            return True
        if call.method == "DELETE":
            if current is None:
                call.response.status = 204
            else:
                self._start(current, OperationKind.DELETE, call, created=False)
                call.response.status = 202
            return True
        return False

    def _parent(self, target: EventGridPath) -> JsonDict:
        topic = self._topics.get(_key(target.topic_id))
        if topic is None:
            raise ArmError(
                404,
                "ParentResourceNotFound",
                "Can not perform requested operation on nested resource. "
                f"Parent resource '{target.topic}' not found.",
            )
        return topic

    # ------------------------------------------------------------------ long-running operations

    def _start(
        self, doc: JsonDict, kind: OperationKind, call: _Call, *, created: bool, location: str | None = None
    ) -> None:
        """Move the document to its transitional state and track the operation that settles it."""
        deleting = kind is OperationKind.DELETE
        state = "Deleting" if deleting else "Creating" if created else "Updating"
        doc["properties"]["provisioningState"] = state
        region = location if location is not None else str(doc.get("location", ""))
        op = Operation(
            op_id=str(uuid.uuid4()),
            kind=kind,
            resource_id=doc["id"],
            resource_type=str(doc["type"]),
            location=region.replace(" ", "").lower(),
            context=call.context,
            created=created,
        )
        key = _key(doc["id"])
        self._running[key] = op.op_id
        self._operations.track(op)
        error = injected_failure().body()["error"] if call.context.fail_operation else None
        self._scheduler.call_later(
            self._lro_duration_s, lambda: self._complete(op.op_id, key, deleting=deleting, error=error)
        )
        method = "DELETE" if deleting else "PUT"
        announce(call.response.headers, op, self._endpoint(), call.api_version, method)

    def _complete(self, op_id: str, key: str, *, deleting: bool, error: JsonDict | None) -> None:
        with self._lock:
            if not self._operations.settle(op_id, error) or self._running.get(key) != op_id:
                return  # forgotten by reset(), or a later write settles this resource
            del self._running[key]
            store = self._subscriptions if "/eventsubscriptions/" in key else self._topics
            doc = store.get(key)
            if doc is None:
                return
            if error is not None:
                doc["properties"]["provisioningState"] = "Failed"
            elif deleting:
                del store[key]
                for child in [k for k in self._subscriptions if k.startswith(key + "/eventsubscriptions/")]:
                    del self._subscriptions[child]
            else:
                doc["properties"]["provisioningState"] = "Succeeded"


def _not_found(target: EventGridPath, resource_type: str, name: str) -> ArmError:
    """ARM's 404 for a missing resource (sim/errors.py `not_found`), a nested type's name included."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{target.resource_group}' was not "
        "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
