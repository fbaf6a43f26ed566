"""The HTTP face of the simulator: routing, ARM headers, throttling, faults, TLS, keep-alive.

Clients under test are the real azure-mgmt SDKs with only their base URL,
credential and CA bundle changed, so this layer answers the way ARM's front
door does: bearer token required (401 otherwise), `api-version` required (400),
`x-ms-request-id` and correlation ids on every response, LROs announced with
`Azure-AsyncOperation` (and `Location` on DELETE and POST) and no `Retry-After`
(sim/operations.py: what such answers say, the status URLs and bodies), lists paged
with an absolute `nextLink`, errors in ARM's body shape, a missing resource answered
by the gateway (no rate-limit headers). It is also
where ARM's throttling (sim/limits.py), authorization (sim/authorization.py, in that
order) and injected faults (sim/faults.py) meet a request, before any work is done (an
after-work fault replaces the answer once the work is done), and where request hooks
(sim/hooks.py) see each recorded request before its answer goes out. Microsoft.Authorization
requests are answered by sim/access_api.py. `ArmApi` maps a request to a response and
knows nothing of sockets; `HttpsServer` puts it behind a loopback-only
ThreadingHTTPServer with TLS done in each connection's thread, and carries out
what a response asks of the socket (a delay, a hold, a dropped connection).
`/_sim/counters` and `/_sim/requests` (no token needed, outside ARM's paths)
let benchmarks count ARM calls over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from sim import access_api, compute_limits, graph, ids, operations, providers
from sim.access_api import AccessApi
from sim.authorization import Authorizer, Caller, caller_of
from sim.compute import is_flexible, upgrade_instances
from sim.errors import ArmError, invalid_parameter, json_object, not_found
from sim.events import RequestContext, claims_from_authorization
from sim.faults import FaultInjector, FaultKind, internal_server_error
from sim.hooks import RequestHooks
from sim.ids import NAMESPACES, NIC_TYPE, PIP_TYPE, VM_TYPE, VMSS_TYPE, VMSS_VM_TYPE, ResourceRef
from sim.limits import RATE_LIMIT_HEADER_PREFIX, Throttle, gateway_not_found, principal_of
from sim.store import JsonDict, Operation, OperationStatus, RequestRecord, Store, properties

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
GRAPH_TYPE = "Microsoft.ResourceGraph/resources"

_RESOURCE_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)"
    r"(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
_SUBSCRIPTION_LIST = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)/?$", re.I
)
_OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[^/]+)/locations/(?P<loc>[^/]+)/"
    r"(?P<kind>operations|operationResults)/(?P<op>[^/]+)/?$",
    re.IGNORECASE,
)
_GRAPH_PATH = re.compile(r"^/providers/Microsoft\.ResourceGraph/resources/?$", re.IGNORECASE)
_PROVIDER_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[^/]+)/?$", re.IGNORECASE)
_SCALE_SET_PATH = re.compile(
    r"^(?P<set>/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachineScaleSets/(?P<name>[^/]+))/(?P<rest>.+?)/?$",
    re.IGNORECASE,
)
# NRP's inline children served at their own paths, written through their parent's document.
_INLINE_CHILD_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"(?P<parent>virtualNetworks|loadBalancers)/(?P<parentname>[^/]+)/(?P<collection>[^/]+?)"
    r"(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
# (parent type, collection) -> whether the child has PUT and DELETE of its own (the REST API's).
_INLINE_CHILDREN: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("virtualnetworks", "subnets"): (ids.VNET_TYPE, "subnets", True),
    **{
        ("loadbalancers", c.lower()): (ids.LB_TYPE, c, c in ("backendAddressPools", "inboundNatRules"))
        for c in ids.LB_COLLECTIONS
    },
}
_VMSS_FILTER = re.compile(r"^\s*'virtualMachineScaleSet/id'\s+eq\s+'(?P<id>[^']+)'\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received: datetime = field(default_factory=lambda: datetime.now(UTC))  # when it arrived


@dataclass
class Response:
    status: int
    body: JsonDict | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resource_type: str = ""
    operation: str = ""
    principal: str = ""
    # What the socket layer must do (faults): wait, then hold, then answer or close.
    delay_s: float = 0.0
    hold_s: float = 0.0
    close: bool = False  # close the connection instead of answering (after delay and hold)
    after_work: FaultKind = FaultKind.NONE  # an after-work fault to apply once the work is done


def _operation_name(resource_type: str, method: str) -> str:
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "action")
    return f"{resource_type}/{verb}"


def counters(records: list[RequestRecord]) -> JsonDict:
    """Request counts by method, resource type, operation and status (what `/_sim/counters` serves)."""
    return {
        "total": len(records),
        "byMethod": dict(Counter(r.method for r in records)),
        "byResourceType": dict(Counter(r.resource_type or "(none)" for r in records)),
        "byOperation": dict(Counter(r.operation or "(none)" for r in records)),
        "byStatus": {str(k): v for k, v in Counter(r.status for r in records).items()},
        "byPrincipal": dict(Counter(r.principal or "(none)" for r in records)),
    }


def record_json(record: RequestRecord) -> JsonDict:
    return {
        "method": record.method,
        "path": record.path,
        "resourceType": record.resource_type,
        "operation": record.operation,
        "status": record.status,
        "errorCode": record.error_code,
        "principal": record.principal,
        "received": record.received.isoformat().replace("+00:00", "Z"),
        "clientRequestId": record.client_request_id,
        "time": record.time.isoformat().replace("+00:00", "Z"),
    }


class ArmApi:
    """Maps one request to one response against a Store. Thread-safe (the store is)."""

    def __init__(
        self,
        store: Store,
        endpoint: Callable[[], str],
        *,
        throttle: Throttle | None = None,
        faults: FaultInjector | None = None,
        hooks: RequestHooks | None = None,
        authorizer: Authorizer | None = None,
        access: AccessApi | None = None,
    ) -> None:
        self._store = store
        self._endpoint = endpoint
        self._throttle = throttle
        self._faults = faults or FaultInjector()
        self._hooks = hooks or RequestHooks()
        self._authorizer = authorizer
        self._access = access

    def handle(self, request: Request) -> Response:
        split = urlsplit(request.target)
        path = unquote(split.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if path.lower().startswith("/_sim/"):
            return self._sim_endpoint(request, path)
        correlation = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        response = Response(status=200)
        try:
            self._route(request, path, query, correlation, response)
        except ArmError as err:
            response.status, response.body = err.status, err.body()
            response.headers.update(err.headers)
        except Exception:
            logger.exception("simulator failed on %s %s", request.method, request.target)
            response.status = 500
            response.body = ArmError(500, "InternalServerError", "The simulator failed; see its log.").body()
        if response.after_work is not FaultKind.NONE:
            self._after_work(response, ids.subscription_of(path))
        error = response.body.get("error") if isinstance(response.body, dict) else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        gateway_not_found(response.status, code, response.headers)
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        response.headers["x-ms-correlation-request-id"] = correlation
        if "x-ms-client-request-id" in request.headers:
            response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        record = RequestRecord(
            method=request.method,
            path=path,
            resource_type=response.resource_type,
            operation=response.operation,
            status=0 if response.close else response.status,
            time=datetime.now(UTC),
            error_code=code,
            principal=response.principal,
            received=request.received,
            client_request_id=request.headers.get("x-ms-client-request-id", ""),
            if_match=request.headers.get("if-match", ""),
            body=request.body if request.method in ("PUT", "PATCH") else b"",
            filter=query.get("$filter", ""),
        )
        self._store.record(record)
        self._hooks.call(record)  # before the socket layer's delay, hold and answer
        return response

    def _after_work(self, response: Response, subscription: str) -> None:
        """Replace the answer of work done with an injected 500 or drop; a refusal stays as it is."""
        if response.close or response.status >= 400:
            self._faults.withdraw(response.after_work)
            return
        # Only the front door's headers survive (the request ids are added after this).
        response.headers = {
            k: v for k, v in response.headers.items() if k.startswith(RATE_LIMIT_HEADER_PREFIX)
        }
        if response.after_work is FaultKind.DROP_AFTER_WORK:
            response.status, response.body, response.close = 0, None, True
            return
        err = internal_server_error(subscription)
        response.status, response.body = err.status, err.body()

    def _sim_endpoint(self, request: Request, path: str) -> Response:
        """The simulator's own read-only endpoints; not ARM, so not recorded, throttled or faulted."""
        if request.method != "GET":
            return Response(405, ArmError(405, "MethodNotAllowed", "Only GET is served under /_sim/.").body())
        name = path.lower().rstrip("/")
        records = self._store.records()
        if name == "/_sim/counters":
            return Response(200, counters(records))
        if name == "/_sim/requests":
            return Response(200, {"value": [record_json(r) for r in records]})
        return Response(
            404, ArmError(404, "NotFound", f"'{path}': try /_sim/counters or /_sim/requests.").body()
        )

    # ------------------------------------------------------------------ admission

    def _admit(
        self, request: Request, path: str, response: Response, namespace: str, correlation: str
    ) -> RequestContext:
        """Authenticate, throttle, authorize and decide faults; returns the caller's context for events."""
        _authenticate(request)
        authorization = request.headers.get("authorization", "")
        claims = claims_from_authorization(authorization)
        principal, actor = principal_of(claims, authorization)
        response.principal = principal
        if self._throttle is not None:
            admission = self._throttle.admit(
                subscription=ids.subscription_of(path),
                principal=principal,
                actor=actor,
                method=request.method,
                network_write=namespace.lower() == "microsoft.network" and request.method != "GET",
            )
            response.headers.update(admission.headers)
            if admission.error is not None:
                raise admission.error
        if self._authorizer is not None:
            self._authorizer.check(request.method, path, request.body, caller_of(claims, authorization))
        if self._throttle is not None:
            self._compute_admission(request, path, response)
        decision = self._faults.decide(request.method, response.resource_type)
        scale = self._store.settings.time_scale
        response.delay_s = decision.latency_s / scale
        faults = self._faults.faults
        if decision.kind is FaultKind.ERROR_500:
            raise internal_server_error(ids.subscription_of(path))
        if decision.kind is FaultKind.ERROR_503:
            retry = faults.retry_after_503_s if faults is not None else 1
            raise ArmError(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry the request (injected fault).",
                headers={"Retry-After": _seconds(retry / scale)},
            )
        if decision.kind is FaultKind.DROP:
            response.close = True
            raise _Dropped
        if decision.kind is FaultKind.TIMEOUT and faults is not None:
            response.hold_s = faults.timeout_hold_s / scale
            response.close = faults.timeout_then_close
        if decision.kind.after_work:
            response.after_work = decision.kind
        return RequestContext(
            method=request.method,
            url=f"{self._endpoint()}{request.target}",
            client_request_id=request.headers.get("x-ms-client-request-id", ""),
            correlation_id=correlation,
            claims=claims,
            fail_operation=decision.kind is FaultKind.LRO_FAILED,
        )

    def _compute_admission(self, request: Request, path: str, response: Response) -> None:
        """Microsoft.Compute's own policies (sim/compute_limits.py), after ARM let the request in."""
        assert self._throttle is not None
        batch = self._batch_charge(request, path, response.resource_type)
        counted = compute_limits.classify(request.method, path, response.resource_type, batch=batch)
        if counted is None:
            return
        admission = self._throttle.compute.admit(ids.subscription_of(path), counted)
        response.headers.update(admission.headers)
        if admission.error is not None:
            raise admission.error

    def _batch_charge(self, request: Request, path: str, resource_type: str) -> int:
        """How many VMs a scale set request touches: its capacity change, a deleted set's capacity,
        a manual upgrade's instances (1 when it cannot tell)."""
        if resource_type != VMSS_TYPE or request.method == "GET":
            return 1
        if path.rstrip("/").lower().endswith("/manualupgrade"):
            try:
                wanted = json.loads(request.body or b"{}").get("instanceIds")
            except (ValueError, AttributeError):
                return 1
            return max(len(wanted), 1) if isinstance(wanted, list) else 1
        current = self._store.get(path)
        before = _capacity_of(current) if current is not None else 0
        if request.method == "DELETE":
            return max(before, 1)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return 1
        after = _capacity_of(body) if isinstance(body, dict) and isinstance(body.get("sku"), dict) else before
        return max(abs(after - before), 1)

    # ------------------------------------------------------------------ routing

    def _route(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        try:
            self._dispatch(request, path, query, correlation, response)
        except _Dropped:
            response.status, response.body = 0, None

    def _dispatch(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        access = access_api.match(path)
        if access is not None:
            self._authorization_request(request, path, query, correlation, response, access=access)
            return
        special = (
            self._graph
            if _GRAPH_PATH.match(path)
            else self._scale_set_child
            if _SCALE_SET_PATH.match(path)
            else self._provider
            if _PROVIDER_PATH.match(path)
            else None
        )
        if special is not None:
            special(request, path, query, correlation, response)
            return
        child = _INLINE_CHILD_PATH.match(path)
        served = (
            _INLINE_CHILDREN.get((child["parent"].lower(), child["collection"].lower())) if child else None
        )
        if child is not None and served is not None:
            response.resource_type = f"{served[0]}/{served[1]}"
            response.operation = _operation_name(response.resource_type, request.method)
            context = self._admit(request, path, response, "Microsoft.Network", correlation)
            api_version = _api_version(query)
            self._inline_child(request, response, child, context, api_version, served=served)
            return
        target = _parse_target(path)
        if target is not None and target.resource_type:
            response.resource_type = target.resource_type
            response.operation = _operation_name(target.resource_type, request.method)
        context = self._admit(request, path, response, target.namespace if target else "", correlation)
        api_version = _api_version(query)
        if target is None:
            raise ArmError(404, "NotFound", f"The path '{path}' is not served by the ARM simulator.")
        if target.namespace.lower() not in NAMESPACES:
            raise ArmError(
                400, "InvalidResourceNamespace", f"The resource namespace '{target.namespace}' is invalid."
            )
        if target.kind in ("operations", "operationResults"):
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            # Compute's Location is its status URL with monitor=true (the recordings): a result poll.
            results = target.kind == "operationResults" or query.get("monitor", "").lower() == "true"
            self._operation(response, str(target.name), not results)
            return
        if not target.resource_type:
            raise ArmError(
                400,
                "InvalidResourceType",
                f"The resource type '{target.type_segment}' could not be found in the namespace "
                f"'{NAMESPACES[target.namespace.lower()]}' for api version '{api_version}'.",
            )
        if target.name is None:
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            self._list(
                response,
                path=path,
                subscription=target.subscription,
                resource_group=target.resource_group,
                query=query,
                api_version=api_version,
            )
            return
        assert target.resource_group is not None
        ref = ResourceRef(target.subscription, target.resource_group, target.resource_type, target.name)
        self._resource(request, response, ref, context, api_version)

    def _authorization_request(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        correlation: str,
        response: Response,
        *,
        access: access_api.AccessPath,
    ) -> None:
        """Role definitions, role assignments and permissions (sim/access_api.py)."""
        response.resource_type = access.resource_type
        response.operation = _operation_name(access.resource_type, request.method)
        context = self._admit(request, path, response, "Microsoft.Authorization", correlation)
        _api_version(query)
        if self._access is None:
            raise ArmError(404, "NotFound", f"The path '{path}' is not served by the ARM simulator.")
        caller = _caller(request, context)
        response.status, response.body = self._access.handle(
            request.method, access, query, request.body, caller
        )

    def _provider(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        correlation: str,
        response: Response,
    ) -> None:
        """Providers - Get: the registration document of a namespace the simulator serves."""
        match = _PROVIDER_PATH.match(path)
        assert match is not None
        response.resource_type = providers.PROVIDERS_TYPE
        response.operation = f"{providers.PROVIDERS_TYPE}/read"
        self._admit(request, path, response, "Microsoft.Resources", correlation)
        _api_version(query)
        if request.method != "GET":
            raise _method_not_allowed(request.method)
        document = providers.provider_document(match["sub"], match["ns"])
        if document is None:
            raise ArmError(
                404, "InvalidResourceNamespace", f"The resource namespace '{match['ns']}' is invalid."
            )
        response.body = document

    def _graph(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        """A Resource Graph query: the rows of what the caller may read."""
        response.resource_type, response.operation = GRAPH_TYPE, f"{GRAPH_TYPE}/read"
        context = self._admit(request, path, response, "Microsoft.ResourceGraph", correlation)
        _api_version(query)
        if request.method != "POST":
            raise _method_not_allowed(request.method)
        visible = self._authorizer.readable(_caller(request, context)) if self._authorizer else None
        response.body = graph.run(
            self._store, json_object(request.body), self._store.settings.tenant_id, visible=visible
        )

    def _resource(
        self,
        request: Request,
        response: Response,
        ref: ResourceRef,
        context: RequestContext,
        api_version: str,
    ) -> None:
        if request.method == "GET":
            doc = self._store.get(ref.id)
            if doc is None:
                raise not_found(ref)
            response.body = doc
            response.headers["ETag"] = str(doc.get("etag", ""))
            return
        fail_with = _injected_failure() if context.fail_operation else None
        if request.method in ("PUT", "PATCH"):
            result = self._store.put(
                ref,
                json_object(request.body),
                context,
                if_match=request.headers.get("if-match"),
                if_none_match=request.headers.get("if-none-match"),
                patch=request.method == "PATCH",
                fail_with=fail_with,
            )
        elif request.method == "DELETE":
            result = self._store.delete(
                ref.id, context, if_match=request.headers.get("if-match"), fail_with=fail_with
            )
        else:
            raise _method_not_allowed(request.method)
        response.status, response.body = result.status, result.doc
        if request.method != "DELETE":
            operations.write_headers(response.headers, ref.resource_type, result.doc)
        if result.operation is not None:
            self._announce(response, result.operation, api_version, request.method)

    def _announce(self, response: Response, op: Operation, api_version: str, method: str) -> None:
        operations.announce(response.headers, op, self._endpoint(), api_version, method)

    def _operation(self, response: Response, op_id: str, status_endpoint: bool) -> None:
        op = self._store.operation(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"The operation '{op_id}' was not found.")
        if status_endpoint:
            response.body = operations.status_body(op)
            return
        if op.status is OperationStatus.IN_PROGRESS:
            response.status = 202
            return
        if op.status is OperationStatus.FAILED:
            error = op.error or {}
            raise ArmError(500, str(error.get("code", "InternalServerError")), str(error.get("message", "")))
        doc = self._store.get(op.resource_id)
        if doc is None:
            response.status = 204
        else:
            response.body = doc

    def _list(
        self,
        response: Response,
        *,
        path: str,
        subscription: str,
        resource_group: str | None,
        query: dict[str, str],
        api_version: str,
    ) -> None:
        predicate: Callable[[JsonDict], bool] | None = None
        filter_text = query.get("$filter")
        if filter_text:
            match = _VMSS_FILTER.match(filter_text)
            if response.resource_type != VM_TYPE or match is None:
                raise invalid_parameter(
                    f"The filter '{filter_text}' is not supported. The only supported filter is "
                    "'virtualMachineScaleSet/id' eq '<scale set id>', on virtual machines.",
                    target="$filter",
                )
            wanted = ids.key(match["id"])

            def predicate(doc: JsonDict) -> bool:
                ref = properties(doc).get("virtualMachineScaleSet")
                return isinstance(ref, dict) and ids.key(str(ref.get("id", ""))) == wanted

        items = self._store.list_resources(subscription, resource_group, response.resource_type, predicate)
        self._page(response, items, path=path, query=query, api_version=api_version)

    def _page(
        self, response: Response, items: list[JsonDict], *, path: str, query: dict[str, str], api_version: str
    ) -> None:
        token = query.get("$skiptoken", "0")
        if not token.isdigit():
            raise invalid_parameter(f"The value '{token}' of '$skiptoken' is invalid.", target="$skiptoken")
        start = int(token)
        size = max(self._store.settings.page_size, 1)
        body: JsonDict = {"value": items[start : start + size]}
        if start + size < len(items):
            params = {"api-version": api_version}
            if query.get("$filter"):
                params["$filter"] = query["$filter"]
            params["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{self._endpoint()}{quote(path)}?{urlencode(params, quote_via=quote)}"
        response.body = body

    # ------------------------------------------------------------------ scale set children

    def _scale_set_child(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        """Uniform instances, their NICs and public IPs, and manualupgrade, under one scale set."""
        match = _SCALE_SET_PATH.match(path)
        assert match is not None
        parts = [p for p in match["rest"].split("/") if p]
        shape = _child_shape([p.lower() for p in parts])
        if shape is None:
            response.resource_type = VMSS_TYPE
            self._admit(request, path, response, "Microsoft.Compute", correlation)
            raise ArmError(
                400,
                "InvalidResourceType",
                f"The path segment '{match['rest']}' is not served for scale sets.",
            )
        rtype = {"instances": VMSS_VM_TYPE, "instance": VMSS_VM_TYPE, "upgrade": VMSS_TYPE}.get(
            shape, NIC_TYPE if "nic" in shape else PIP_TYPE
        )
        response.resource_type = rtype
        response.operation = (
            f"{VMSS_TYPE}/manualupgrade/action"
            if shape == "upgrade"
            else _operation_name(rtype, request.method)
        )
        context = self._admit(request, path, response, "Microsoft.Compute", correlation)
        api_version = _api_version(query)
        vmss = self._store.get(match["set"])
        if vmss is None:
            if shape.startswith(("nic", "pip", "instance-nics", "ipconfig")):
                raise ArmError(404, "NotFound", f"Resource {match['set']} not found.")
            raise not_found(ResourceRef(match["sub"], match["rg"], VMSS_TYPE, match["name"]))
        if is_flexible(vmss):
            raise ArmError(
                400,
                "OperationNotAllowed",
                f"This operation is not supported for virtual machine scale set {vmss['id']} in Flexible "
                "orchestration mode; use the virtual machines API for its instances.",
            )
        if shape == "upgrade":
            if request.method != "POST":
                raise _method_not_allowed(request.method)
            self._manual_upgrade(request, response, vmss, context, api_version)
        elif request.method == "DELETE" and shape == "instance":
            self._delete_instance(
                request, response, f"{vmss['id']}/virtualMachines/{parts[1]}", context, api_version
            )
        elif request.method != "GET":
            raise _method_not_allowed(request.method)
        elif shape in _CHILD_LISTS:
            items = self._store.list_under(
                _child_id(vmss["id"], parts, _CHILD_LISTS[shape][0]), _CHILD_LISTS[shape][1]
            )
            items.sort(key=_instance_order)
            self._page(response, items, path=path, query=query, api_version=api_version)
        else:
            self._child_get(response, vmss, parts, shape)

    def _delete_instance(
        self,
        request: Request,
        response: Response,
        instance_id: str,
        context: RequestContext,
        api_version: str,
    ) -> None:
        if self._store.get(instance_id) is None:
            response.status = 204
            return
        result = self._store.delete(
            instance_id,
            context,
            if_match=request.headers.get("if-match"),
            fail_with=_injected_failure() if context.fail_operation else None,
        )
        response.status = result.status
        if result.operation is not None:
            self._announce(response, result.operation, api_version, "DELETE")

    def _child_get(self, response: Response, vmss: JsonDict, parts: list[str], shape: str) -> None:
        wanted = _child_id(vmss["id"], parts, len(parts))
        doc = self._store.get(wanted)
        if doc is None:
            if shape == "instance" and not parts[1].isdigit():  # CRP's answer (recorded from Azure)
                raise invalid_parameter(
                    "Virtual Machine Scale Set VM instanceId must be a number.", "instanceId"
                )
            if shape == "instance":
                raise ArmError(
                    404,
                    "NotFound",
                    f"The entity was not found in this Azure location. Instance '{parts[1]}' of scale set "
                    f"'{vmss['name']}' does not exist.",
                )
            raise ArmError(404, "NotFound", f"Resource {wanted} not found.")
        response.body = doc
        response.headers["ETag"] = str(doc.get("etag", ""))

    def _manual_upgrade(
        self, request: Request, response: Response, vmss: JsonDict, context: RequestContext, api_version: str
    ) -> None:
        body = json_object(request.body)
        wanted = body.get("instanceIds")
        if not isinstance(wanted, list) or not wanted or not all(isinstance(i, str) for i in wanted):
            raise invalid_parameter(
                "Required parameter 'instanceIds' is missing (null).", target="instanceIds"
            )
        known = {str(doc.get("instanceId")) for doc in self._store.children_under(vmss["id"], VMSS_VM_TYPE)}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise invalid_parameter(
                f"The instance ids {', '.join(missing)} are not in scale set {vmss['name']}.",
                target="instanceIds",
            )
        instance_ids = list(dict.fromkeys(wanted))

        def work(store: Store, doc: JsonDict, ctx: RequestContext) -> None:
            upgrade_instances(store, doc, instance_ids)

        try:
            op = self._store.start_action(
                vmss["id"],
                context,
                work,
                delay=self._store.settings.lro_duration_s,
                fail_with=_injected_failure() if context.fail_operation else None,
            )
        except KeyError as exc:
            raise not_found(
                ResourceRef(ids.subscription_of(vmss["id"]), "", VMSS_TYPE, vmss["name"])
            ) from exc
        response.status = 202
        self._announce(response, op, api_version, "POST")

    # ------------------------------------------------------------------ inline children

    def _inline_child(
        self,
        request: Request,
        response: Response,
        match: re.Match[str],
        context: RequestContext,
        api_version: str,
        *,
        served: tuple[str, str, bool],
    ) -> None:
        """Subnets and load balancer children, served from (and written through) their parent's
        document, whose rules (a child in use cannot be removed) apply to the write."""
        parent_type, collection, writable_child = served
        parent_ref = ResourceRef(match["sub"], match["rg"], parent_type, match["parentname"])
        parent = self._store.get(parent_ref.id)
        name = match["name"]
        if parent is None:
            raise ArmError(404, "NotFound", f"Resource {parent_ref.id} not found.")
        children = [c for c in properties(parent).get(collection) or [] if isinstance(c, dict)]
        if name is None:
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            response.body = {"value": children}
            return
        existing = next((c for c in children if str(c.get("name", "")).lower() == name.lower()), None)
        child_id = f"{parent['id']}/{collection}/{existing['name'] if existing else name}"
        if request.method == "GET":
            if existing is None:
                raise ArmError(404, "NotFound", f"Resource {child_id} not found.")
            response.body = existing
            response.headers["ETag"] = str(existing.get("etag", ""))
            return
        if not writable_child or request.method not in ("PUT", "DELETE"):
            raise _method_not_allowed(request.method)
        if request.method == "DELETE" and existing is None:
            response.status = 204
            return
        others = [c for c in children if c is not existing]
        if request.method == "PUT":
            given = json_object(request.body)
            given["name"] = existing["name"] if existing else name
            others.append(given)
        # A child shares its parent's etag, so If-Match is checked against the parent.
        result = self._store.put(
            parent_ref,
            {**parent, "properties": {**properties(parent), collection: others}},
            context,
            if_match=request.headers.get("if-match"),
            fail_with=_injected_failure() if context.fail_operation else None,
        )
        response.status = 202 if request.method == "DELETE" else 201 if existing is None else 200
        if request.method == "PUT":
            now = properties(result.doc or {}).get(collection) or []
            response.body = next(c for c in now if str(c.get("name", "")).lower() == name.lower())
        if result.operation is not None:
            self._announce(response, result.operation, api_version, request.method)


def _capacity_of(doc: JsonDict) -> int:
    sku = doc.get("sku")
    value = sku.get("capacity", 0) if isinstance(sku, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _child_key(match: re.Match[str]) -> tuple[str, str]:
    return match["parent"].lower(), match["collection"].lower()


class _Dropped(Exception):
    """An injected dropped connection: no work, no answer."""


def _child_shape(parts: list[str]) -> str | None:
    """Which scale-set child endpoint a path (after the set) names, by its lower-cased segments."""
    shapes: dict[tuple[str, ...], str] = {
        ("virtualmachines",): "instances",
        ("virtualmachines", "*"): "instance",
        ("manualupgrade",): "upgrade",
        ("networkinterfaces",): "nics",
        ("publicipaddresses",): "pips",
        ("virtualmachines", "*", "networkinterfaces"): "instance-nics",
        ("virtualmachines", "*", "networkinterfaces", "*"): "nic",
        (
            "virtualmachines",
            "*",
            "networkinterfaces",
            "*",
            "ipconfigurations",
            "*",
            "publicipaddresses",
        ): "ipconfig-pips",
        (
            "virtualmachines",
            "*",
            "networkinterfaces",
            "*",
            "ipconfigurations",
            "*",
            "publicipaddresses",
            "*",
        ): "pip",
    }
    for pattern, shape in shapes.items():
        if len(pattern) == len(parts) and all(
            p in ("*", part) for p, part in zip(pattern, parts, strict=True)
        ):
            return shape
    return None


# List endpoints under a scale set: (how many path segments name the parent, the type listed).
_CHILD_LISTS: dict[str, tuple[int, str]] = {
    "instances": (0, VMSS_VM_TYPE),
    "nics": (0, NIC_TYPE),
    "pips": (0, PIP_TYPE),
    "instance-nics": (2, NIC_TYPE),
    "ipconfig-pips": (6, PIP_TYPE),
}
# The stored (ARM) casing of the path segments under a scale set.
_SEGMENT_CASING = {
    "virtualmachines": "virtualMachines",
    "networkinterfaces": "networkInterfaces",
    "ipconfigurations": "ipConfigurations",
    "publicipaddresses": "publicIPAddresses",
}


def _child_id(set_id: str, parts: list[str], count: int) -> str:
    """The id named by the first `count` segments after the set (segment names in ARM's casing)."""
    segments = [_SEGMENT_CASING.get(p.lower(), p) if i % 2 == 0 else p for i, p in enumerate(parts[:count])]
    return "/".join([set_id, *segments])


def _instance_order(doc: JsonDict) -> int:
    instance_id = str(doc.get("instanceId", ""))
    return int(instance_id) if instance_id.isdigit() else 0


def _injected_failure() -> ArmError:
    return ArmError(
        500,
        "InternalExecutionError",
        "An internal execution error occurred. Please retry later (injected fault).",
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")


def _api_version(query: dict[str, str]) -> str:
    api_version = query.get("api-version")
    if not api_version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    return api_version


@dataclass(frozen=True)
class _Target:
    """What a request path names: a resource, a collection, or an operation."""

    kind: str  # "resource", "collection", "operations" or "operationResults"
    subscription: str
    namespace: str
    type_segment: str
    resource_type: str  # ARM's casing of a served type, "" if not served
    resource_group: str | None = None
    name: str | None = None  # resource name, or operation id


def _parse_target(path: str) -> _Target | None:
    match = _OPERATION_PATH.match(path)
    if match:
        kind = "operations" if match["kind"].lower() == "operations" else "operationResults"
        namespace = NAMESPACES.get(match["ns"].lower(), match["ns"])
        return _Target(
            kind, match["sub"], match["ns"], "locations", f"{namespace}/locations/{kind}", name=match["op"]
        )
    match = _RESOURCE_PATH.match(path)
    if match:
        rtype = ids.canonical_type(f"{match['ns']}/{match['type']}") or ""
        kind = "resource" if match["name"] else "collection"
        return _Target(kind, match["sub"], match["ns"], match["type"], rtype, match["rg"], match["name"])
    match = _SUBSCRIPTION_LIST.match(path)
    if match:
        rtype = ids.canonical_type(f"{match['ns']}/{match['type']}") or ""
        return _Target("collection", match["sub"], match["ns"], match["type"], rtype)
    return None


def _caller(request: Request, context: RequestContext) -> Caller:
    return caller_of(context.claims, request.headers.get("authorization", ""))


def _authenticate(request: Request) -> None:
    """Any bearer token is accepted (claims are read later, unverified); none at all is a 401."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    raise ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
        headers={
            "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
            'error="invalid_token", error_description="The authentication failed because of '
            "missing 'Authorization' header.\""
        },
    )


def _method_not_allowed(method: str) -> ArmError:
    return ArmError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported for this path.")


# ---------------------------------------------------------------------------------- sockets


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "ArmSimulator/1"
    timeout = 30  # an idle keep-alive connection ends, and its thread with it
    # Headers and body go out as separate TLS records: without this, Nagle and the client's
    # delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.client_address[0], format % args)

    def _serve(self) -> None:
        server = cast(_TLSServer, self.server)
        received = datetime.now(UTC)  # the request line and headers are in; the body follows
        request = Request(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
            received=received,
        )
        response = server.api.handle(request)
        if response.delay_s > 0 or response.hold_s > 0:
            server.stopping.wait(response.delay_s + response.hold_s)
        if response.close:
            # An injected drop (or a held response given up): close without a byte of answer.
            self.close_connection = True
            return
        payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: ArmApi, context: ssl.SSLContext, port: int = 0) -> None:
        # Loopback only: the simulator is never reachable from another machine.
        super().__init__(("127.0.0.1", port), _Handler)
        self.api = api
        self.stopping = threading.Event()
        self.ssl_context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow client blocks no one.
        if not isinstance(request, socket.socket):
            return
        request.settimeout(_Handler.timeout)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        except (ssl.SSLError, OSError):
            pass  # the client went away mid-request
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def close_connections(self) -> None:
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpsServer:
    """ArmApi served over HTTPS on 127.0.0.1, on a free port, in daemon threads."""

    def __init__(self, api: ArmApi, cert_path: str, key_path: str, port: int = 0) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        self._server = _TLSServer(api, context, port)
        # A short poll interval makes stop() quick (shutdown waits for the loop to notice).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="arm-sim-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
