"""The HTTP face of the simulator: routing, ARM headers, TLS, keep-alive.

Clients under test are the real azure-mgmt SDKs with only their base URL,
credential and CA bundle changed, so this layer answers the way ARM's front
door does: bearer token required (401 otherwise), `api-version` required (400),
`x-ms-request-id` and correlation ids on every response, LROs announced with
`Azure-AsyncOperation` (and `Location` on DELETE) and no `Retry-After`, lists
paged with an absolute `nextLink`, errors in ARM's body shape. `ArmApi` maps a
request to a response and knows nothing of sockets; `serve()` puts it behind a
loopback-only ThreadingHTTPServer with TLS done in each connection's thread.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from sim import ids
from sim.errors import ArmError, invalid_parameter, not_found
from sim.events import RequestContext, claims_from_authorization
from sim.ids import NAMESPACES, VM_TYPE, ResourceRef
from sim.store import JsonDict, Operation, OperationStatus, RequestRecord, Store, properties

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})

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
_VMSS_FILTER = re.compile(r"^\s*'virtualMachineScaleSet/id'\s+eq\s+'(?P<id>[^']+)'\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Response:
    status: int
    body: JsonDict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resource_type: str = ""
    operation: str = ""


def _operation_name(resource_type: str, method: str) -> str:
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "action")
    return f"{resource_type}/{verb}"


class ArmApi:
    """Maps one request to one response against a Store. Thread-safe (the store is)."""

    def __init__(self, store: Store, endpoint: Callable[[], str]) -> None:
        self._store = store
        self._endpoint = endpoint

    def handle(self, request: Request) -> Response:
        split = urlsplit(request.target)
        path = unquote(split.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
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
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        response.headers["x-ms-correlation-request-id"] = correlation
        if "x-ms-client-request-id" in request.headers:
            response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        self._store.record(
            RequestRecord(
                method=request.method,
                path=path,
                resource_type=response.resource_type,
                operation=response.operation,
                status=response.status,
                time=datetime.now(UTC),
            )
        )
        return response

    # ------------------------------------------------------------------ routing

    def _route(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> Response:
        target = _parse_target(path)
        if target is not None and target.resource_type:
            response.resource_type = target.resource_type
            response.operation = _operation_name(target.resource_type, request.method)
        _authenticate(request)
        api_version = query.get("api-version")
        if not api_version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if target is None:
            raise ArmError(404, "NotFound", f"The path '{path}' is not served by the ARM simulator.")
        if target.namespace.lower() not in NAMESPACES:
            raise ArmError(
                400, "InvalidResourceNamespace", f"The resource namespace '{target.namespace}' is invalid."
            )
        if target.kind in ("operations", "operationResults"):
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            return self._operation(response, str(target.name), target.kind == "operations")
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
            return self._list(
                response,
                path=path,
                subscription=target.subscription,
                resource_group=target.resource_group,
                query=query,
                api_version=api_version,
            )
        assert target.resource_group is not None
        ref = ResourceRef(target.subscription, target.resource_group, target.resource_type, target.name)
        return self._resource(request, response, ref, correlation, api_version)

    def _resource(
        self, request: Request, response: Response, ref: ResourceRef, correlation: str, api_version: str
    ) -> Response:
        if request.method == "GET":
            doc = self._store.get(ref.id)
            if doc is None:
                raise not_found(ref)
            response.body = doc
            response.headers["ETag"] = str(doc.get("etag", ""))
            return response
        context = RequestContext(
            method=request.method,
            url=f"{self._endpoint()}{request.target}",
            client_request_id=request.headers.get("x-ms-client-request-id", ""),
            correlation_id=correlation,
            claims=claims_from_authorization(request.headers.get("authorization")),
        )
        if request.method in ("PUT", "PATCH"):
            result = self._store.put(
                ref,
                _json_body(request.body),
                context,
                if_match=request.headers.get("if-match"),
                if_none_match=request.headers.get("if-none-match"),
                patch=request.method == "PATCH",
            )
        elif request.method == "DELETE":
            result = self._store.delete(ref, context, if_match=request.headers.get("if-match"))
        else:
            raise _method_not_allowed(request.method)
        response.status, response.body = result.status, result.doc
        if result.operation is not None:
            # No Retry-After: the client's own polling interval applies.
            response.headers["Azure-AsyncOperation"] = self._operation_url(result.operation, api_version)
            if request.method == "DELETE":
                response.headers["Location"] = self._operation_url(
                    result.operation, api_version, results=True
                )
        return response

    def _operation(self, response: Response, op_id: str, status_endpoint: bool) -> Response:
        op = self._store.operation(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"The operation '{op_id}' was not found.")
        if status_endpoint:
            response.body = op.body()
            return response
        if op.status is OperationStatus.IN_PROGRESS:
            response.status = 202
            return response
        if op.status is OperationStatus.FAILED:
            error = op.error or {}
            raise ArmError(500, str(error.get("code", "InternalServerError")), str(error.get("message", "")))
        doc = self._store.get(op.resource_id)
        if doc is None:
            response.status = 204
        else:
            response.body = doc
        return response

    def _list(
        self,
        response: Response,
        *,
        path: str,
        subscription: str,
        resource_group: str | None,
        query: dict[str, str],
        api_version: str,
    ) -> Response:
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
        token = query.get("$skiptoken", "0")
        if not token.isdigit():
            raise invalid_parameter(f"The value '{token}' of '$skiptoken' is invalid.", target="$skiptoken")
        start = int(token)
        size = max(self._store.settings.page_size, 1)
        body: JsonDict = {"value": items[start : start + size]}
        if start + size < len(items):
            params = {"api-version": api_version}
            if filter_text:
                params["$filter"] = filter_text
            params["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{self._endpoint()}{quote(path)}?{urlencode(params, quote_via=quote)}"
        response.body = body
        return response

    def _operation_url(self, op: Operation, api_version: str, *, results: bool = False) -> str:
        ref = ids.parse(op.resource_id)
        subscription = ref.subscription if ref else ""
        kind = "operationResults" if results else "operations"
        return (
            f"{self._endpoint()}/subscriptions/{subscription}/providers/{op.namespace}/locations/"
            f"{quote(op.location)}/{kind}/{op.op_id}?api-version={quote(api_version)}"
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


def _json_body(raw: bytes) -> JsonDict:
    try:
        body = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: {exc}",
        ) from exc
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


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
        request = Request(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        response = server.api.handle(request)
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

    def __init__(self, api: ArmApi, context: ssl.SSLContext) -> None:
        # Loopback only: the simulator is never reachable from another machine.
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
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
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpsServer:
    """ArmApi served over HTTPS on 127.0.0.1, on a free port, in daemon threads."""

    def __init__(self, api: ArmApi, cert_path: str, key_path: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        self._server = _TLSServer(api, context)
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
