"""The HTTP face of the simulator: one request to one response, routed to what serves its path.

Clients under test are the real azure-mgmt SDKs with only their base URL,
credential and CA bundle changed, so this layer answers the way ARM's front
door does: bearer token required (401 otherwise), `api-version` required (400),
`x-ms-request-id` and correlation ids on every response, LROs announced with
`Azure-AsyncOperation` (and `Location` on DELETE and POST) and no `Retry-After`
(sim/operations.py: what such answers say, the status URLs and bodies), lists paged
with an absolute `nextLink` (sim/listing.py), errors in ARM's body shape, a missing resource answered
by the gateway (no rate-limit headers). Admission (sim/admission.py) is
where ARM's throttling (sim/limits.py), authorization (sim/authorization.py, in that
order) and injected faults (sim/faults.py) meet a request, before any work is done (an
after-work fault replaces the answer once the work is done); request hooks
(sim/hooks.py) see each recorded request before its answer goes out. Microsoft.Authorization
requests are answered by sim/access_api.py, management groups by sim/management_api.py,
Microsoft.EventGrid's system topics and event subscriptions by sim/event_grid.py, a resource by id
by sim/resource_api.py, the endpoints under a scale set by sim/scale_set_routes.py. `ArmApi` maps a
request to a response and knows nothing of sockets; `HttpsServer` (sim/https_server.py) puts it
behind a loopback-only ThreadingHTTPServer with TLS done in each connection's thread, and carries out
what a response asks of the socket (a delay, a hold, a dropped connection).
`/_sim/counters` and `/_sim/requests` (no token needed, outside ARM's paths)
let benchmarks count ARM calls over HTTP.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from sim import access_api, event_grid, graph, ids, management_api, providers
from sim.api_messages import Dropped, Request, Response, api_version_of, method_not_allowed, operation_name
from sim.arm_limits import gateway_not_found
from sim.authorization import Caller, caller_of
from sim.errors import ArmError, json_object
from sim.events import RequestContext
from sim.faults import FaultKind
from sim.ids import NAMESPACES, ResourceRef
from sim.request_log import RequestRecord, counters, record_json
from sim.resource_api import INLINE_CHILD_PATH, INLINE_CHILDREN, ResourceRoutes
from sim.scale_set_routes import SCALE_SET_PATH, ScaleSetChildRoutes

logger = logging.getLogger(__name__)
S = TypeVar("S")  # a provider API a route serves

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


class ArmApi(ScaleSetChildRoutes, ResourceRoutes):
    """Maps one request to one response against a Store. Thread-safe (the store is)."""

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
            body=request.body if request.method in ("PUT", "PATCH") or _GRAPH_PATH.match(path) else b"",
            filter=query.get("$filter", ""),
        )
        self._store.record(record)
        self._hooks.call(record)  # before the socket layer's delay, hold and answer
        return response

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

    # ------------------------------------------------------------------ routing

    def _route(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        try:
            self._dispatch(request, path, query, correlation, response)
        except Dropped:
            response.status, response.body = 0, None

    def _dispatch(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        access = access_api.match(path)
        if access is not None:
            self._authorization_request(request, path, query, correlation, response, access=access)
            return
        grid = event_grid.match(path)
        if grid is not None:
            self._event_grid_request(request, path, query, correlation, response, grid=grid)
            return
        special = (
            self._graph
            if _GRAPH_PATH.match(path)
            else self._management_request
            if management_api.match(path)
            else self._scale_set_child
            if SCALE_SET_PATH.match(path)
            else self._provider
            if _PROVIDER_PATH.match(path)
            else None
        )
        if special is not None:
            special(request, path, query, correlation, response)
            return
        child = INLINE_CHILD_PATH.match(path)
        served = (
            INLINE_CHILDREN.get((child["parent"].lower(), child["collection"].lower())) if child else None
        )
        if child is not None and served is not None:
            response.resource_type = f"{served[0]}/{served[1]}"
            response.operation = operation_name(response.resource_type, request.method)
            context = self._admit(request, path, response, "Microsoft.Network", correlation)
            api_version = api_version_of(query)
            self._inline_child(request, response, child, context, api_version, served=served)
            return
        target = _parse_target(path)
        if target is not None and target.resource_type:
            response.resource_type = target.resource_type
            response.operation = operation_name(target.resource_type, request.method)
        context = self._admit(request, path, response, target.namespace if target else "", correlation)
        api_version = api_version_of(query)
        if target is None:
            raise ArmError(404, "NotFound", f"The path '{path}' is not served by the ARM simulator.")
        if target.namespace.lower() not in NAMESPACES:
            raise ArmError(
                400, "InvalidResourceNamespace", f"The resource namespace '{target.namespace}' is invalid."
            )
        if target.kind in ("operations", "operationResults"):
            if request.method != "GET":
                raise method_not_allowed(request.method)
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
                raise method_not_allowed(request.method)
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

    def _front_door(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        correlation: str,
        response: Response,
        *,
        resource_type: str,
        namespace: str,
        served: S | None,
    ) -> tuple[RequestContext, str, S]:
        """What every route of a provider API shares: the request named for the log, admitted
        (identity, throttling, authorization, faults), its api-version read, and a 404 where this
        simulator was built without the API (``served`` None)."""
        response.resource_type = resource_type
        response.operation = operation_name(resource_type, request.method)
        context = self._admit(request, path, response, namespace, correlation)
        api_version = api_version_of(query)
        if served is None:
            raise ArmError(404, "NotFound", f"The path '{path}' is not served by the ARM simulator.")
        return context, api_version, served

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
        context, _, served_access = self._front_door(
            request,
            path,
            query,
            correlation,
            response,
            resource_type=access.resource_type,
            namespace="Microsoft.Authorization",
            served=self._access,
        )
        caller = _caller(request, context)
        response.status, response.body = served_access.handle(
            request.method, access, query, request.body, caller
        )

    def _event_grid_request(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        correlation: str,
        response: Response,
        *,
        grid: event_grid.EventGridPath,
    ) -> None:
        """System topics and their event subscriptions (sim/event_grid.py)."""
        context, api_version, grid_api = self._front_door(
            request,
            path,
            query,
            correlation,
            response,
            resource_type=grid.resource_type,
            namespace=event_grid.NAMESPACE,
            served=self._event_grid,
        )
        items = grid_api.handle(
            request.method, grid, request.body, context=context, response=response, api_version=api_version
        )
        if items is not None:
            self._page(response, items, path=path, query=query, api_version=api_version)

    def _management_request(
        self,
        request: Request,
        path: str,
        query: dict[str, str],
        correlation: str,
        response: Response,
    ) -> None:
        """Management groups and the subscriptions beneath them (sim/management_api.py)."""
        target = management_api.match(path)
        assert target is not None
        _, _, management = self._front_door(
            request,
            path,
            query,
            correlation,
            response,
            resource_type=target.resource_type,
            namespace=management_api.NAMESPACE,
            served=self._management,
        )
        response.body = management.handle(request.method, target, query, path)

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
        api_version_of(query)
        if request.method != "GET":
            raise method_not_allowed(request.method)
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
        api_version_of(query)
        if request.method != "POST":
            raise method_not_allowed(request.method)
        visible = self._authorizer.readable(_caller(request, context)) if self._authorizer else None
        response.body = graph.run(
            self._store,
            json_object(request.body),
            self._store.settings.tenant_id,
            visible=visible,
            groups=self._management.groups if self._management else None,
        )


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
