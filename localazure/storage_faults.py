"""Make the local storage fail at precise points of the remediator's work, deterministically.

The fault matrix must break storage exactly "right after the k-th audit batch that stores an
intent succeeded" (that intent's ARM write goes out, but what parallel writers store next cannot
be stored) or "from now", when the ARM simulator sees a write. Stopping Azurite or sleeping is
neither precise nor independent of the machine's speed, and the product must not know it is
tested. So this is an HTTP proxy in front of Azurite, one loopback port per service: the product
only gets ``connection_string``, with the proxy's endpoints and the same account. Shared-key
signatures cover the method, some headers and ``/account/path``, never the host or port, so the
SDKs' requests authenticate through it unchanged (the Host header is passed on as sent).

Each request is read whole, then answered with an injected failure or forwarded; Azurite's
status, headers and body are relayed unchanged (re-framed with Content-Length). A ``fail_after``
trigger fires once Azurite has answered the matching request and before a byte of that answer
reaches the client, so the client's next request already fails. The failure is 503 ServerBusy in
the service's own error shape, which the SDKs' retry policies treat as transient (azure-core
retries a 503 even for POST), as they would in Azure.

If Azurite is down, or drops the connection mid-request, the proxy closes the client's connection
without an answer: the client meets a dropped connection (azure-core ``ServiceResponseError``),
as when storage is unreachable. Such a request is recorded with status 0.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from localazure.azurite import Azurite, AzuritePorts, connection_string

logger = logging.getLogger(__name__)

SERVICES = ("blob", "queue", "table")
MAX_BODY = 256 * 1024 * 1024  # more than any single storage request the product sends
TIMEOUT_S = 30.0  # an idle client connection is closed; an Azurite this slow counts as down
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
_INNER_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})", re.MULTILINE)
_BUSY = "The server is currently unable to receive requests. Please retry your request."

Answer = tuple[int, str, list[tuple[str, str]], bytes]  # status, reason, headers, body
_Request = socket.socket | tuple[bytes, socket.socket]  # what socketserver hands a server


@dataclass(frozen=True)
class StorageRequest:
    """One request the proxy handled. ``status``: what the client was answered (0: its connection
    was closed, Azurite being down). ``body`` is only given to ``fail_after`` predicates; the
    records ``requests()`` returns carry none, to keep the log small."""

    service: str  # blob, queue or table
    method: str
    path: str  # with the query string, as sent
    status: int
    injected: bool
    time: float  # time.time() once the request had been read
    seq: int  # the order in which the proxy decided the requests' fate
    body: bytes = field(default=b"", repr=False)


Match = Callable[[StorageRequest], bool]


def _is_batch(request: StorageRequest) -> bool:
    path = unquote(urlsplit(request.path).path)
    return request.service == "table" and request.method == "POST" and path.endswith("/$batch")


def table_batch_containing(text: str) -> Match:
    """A Table entity-group transaction (``POST .../$batch``) whose body contains ``text``.
    azure-data-tables writes entities with ``json.dumps`` defaults: ``'"kind": "intent"'``."""
    wanted = text.encode()
    return lambda request: _is_batch(request) and wanted in request.body


def table_write_containing(text: str) -> Match:
    """A Table request that writes entities and whose body contains ``text``: an entity-group
    transaction, or one entity's insert (``POST /<table>``) or upsert (``PATCH``/``PUT``/``MERGE``
    ``/<table>(PartitionKey=..,RowKey=..)``). The audit log stores a partition that holds a single
    entity of its group commit's wave as a plain insert or upsert, not as a transaction."""
    wanted = text.encode()
    writes = {"POST", "PUT", "PATCH", "MERGE"}
    return lambda request: request.service == "table" and request.method in writes and wanted in request.body


def _succeeded(request: StorageRequest, body: bytes) -> bool:
    """2xx, and for a Table batch also each operation in it (a failed one is answered 202)."""
    if not 200 <= request.status < 300:
        return False
    return not _is_batch(request) or all(200 <= int(s) < 300 for s in _INNER_STATUS.findall(body))


@dataclass(eq=False)  # compared by identity: two equal registrations are two triggers
class _Trigger:
    match: Match
    count: int
    occurrences_left: int


class StorageFaults:
    """A fault-injecting proxy in front of one ``Azurite``. Every control is thread-safe."""

    def __init__(self, azurite: Azurite, *, history: int = 100_000) -> None:
        self.azurite = azurite
        self.ports: AzuritePorts | None = None  # kept by stop(), so start() again keeps the string
        self._lock = threading.Lock()
        self._budget = 0  # requests still to fail
        self._triggers: list[_Trigger] = []
        self._losses: list[_Trigger] = []  # requests whose answer is lost after Azurite did them
        self._refusals: list[Match] = []  # requests refused whenever they match (until reset)
        self._answers_lost = 0
        self._failures = dict.fromkeys(SERVICES, 0)
        self._log: deque[StorageRequest] = deque(maxlen=history)
        self._seq = 0
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` requests (any service) with ServerBusy, after any pending."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._budget += count

    def fail_after(self, match: Match, count: int, *, occurrence: int = 1) -> None:
        """Once the ``occurrence``-th request matching ``match`` (from now) has been forwarded and
        answered 2xx, fail the next ``count`` requests (those read after that answer; requests
        already in flight are not); that request itself succeeds. One-shot. A predicate that
        raises is logged and counts as no match."""
        if count < 0 or occurrence < 1:
            raise ValueError("count must be >= 0 and occurrence >= 1")
        with self._lock:
            self._triggers.append(_Trigger(match, count, occurrence))

    def refuse(self, match: Match) -> None:
        """Answer every request matching ``match`` with ServerBusy, from now until ``reset``: a part
        of the account down while the rest answers (a container, one service). ``match`` sees the
        request as read (``status`` 0). A predicate that raises is logged and counts as no match."""
        with self._lock:
            self._refusals.append(match)

    def lose_answer(self, match: Match, *, occurrence: int = 1) -> None:
        """Forward the ``occurrence``-th request matching ``match`` (from now), let Azurite do it,
        then close the client's connection without its answer: stored, but the client cannot
        know (as when a connection drops after the service committed). One-shot."""
        if occurrence < 1:
            raise ValueError("occurrence must be >= 1")
        with self._lock:
            self._losses.append(_Trigger(match, 0, occurrence))

    @property
    def answers_lost(self) -> int:
        with self._lock:
            return self._answers_lost

    @property
    def failures(self) -> int:
        with self._lock:
            return sum(self._failures.values())

    @property
    def pending_failures(self) -> int:
        """Failures armed (by ``fail_next`` or a fired trigger) that no request has met yet."""
        with self._lock:
            return self._budget

    def failures_by_service(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failures)

    def requests(self) -> list[StorageRequest]:
        """The last ``history`` requests, in the order they were answered."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget pending failures, triggers, counts and the request log."""
        with self._lock:
            self._budget = 0
            self._triggers.clear()
            self._losses.clear()
            self._refusals.clear()
            self._answers_lost = 0
            self._failures = dict.fromkeys(SERVICES, 0)
            self._log.clear()

    @property
    def connection_string(self) -> str:
        if self.ports is None:
            raise RuntimeError("StorageFaults has not been started")
        return connection_string(self.ports)

    def _decide(self, probe: StorageRequest) -> tuple[int, bool]:
        """The request's place in the order, and whether it is to fail."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            inject = self._budget > 0
            if inject:
                self._budget -= 1
            refusals = list(self._refusals)
        if not inject and refusals:
            refused = [_Trigger(match, 0, 1) for match in refusals]
            inject = bool(self._matching(refused, probe))
        if inject:
            with self._lock:
                self._failures[probe.service] += 1
        return seq, inject

    def _answered(self, request: StorageRequest, body: bytes) -> bool:
        """Log the request; if Azurite answered it with success, advance the triggers it matches.
        Returns whether its answer is to be lost (``lose_answer``)."""
        with self._lock:
            self._log.append(replace(request, body=b""))
            triggers, losses = list(self._triggers), list(self._losses)
        if not (triggers or losses) or request.injected or not _succeeded(request, body):
            return False
        matched = self._matching(triggers + losses, request)
        lost = False
        with self._lock:
            for trigger in matched:
                queue = self._triggers if trigger in self._triggers else self._losses
                if trigger not in queue:  # fired meanwhile, or reset
                    continue
                trigger.occurrences_left -= 1
                if trigger.occurrences_left == 0:
                    queue.remove(trigger)
                    self._budget += trigger.count
                    if queue is self._losses:
                        lost = True
                        self._answers_lost += 1
        return lost

    @staticmethod
    def _matching(triggers: list[_Trigger], request: StorageRequest) -> list[_Trigger]:
        matched = []
        for trigger in triggers:  # user code, run outside the lock
            try:
                if trigger.match(request):
                    matched.append(trigger)
            except Exception:
                logger.exception("storage fault predicate failed on %s %s", request.method, request.path)
        return matched

    def start(self) -> StorageFaults:
        if self._servers:
            return self
        wanted = self.ports or AzuritePorts(0, 0, 0)
        try:
            for service in SERVICES:
                self._servers.append(_Server(("127.0.0.1", getattr(wanted, service)), self, service))
        except BaseException:
            self.stop()
            raise
        self.ports = AzuritePorts(*(server.server_address[1] for server in self._servers))
        for server in self._servers:
            name = f"storage-faults-{server.service}"
            self._threads.append(threading.Thread(target=server.serve_forever, args=(0.1,), name=name))
            self._threads[-1].start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection (both sides) and join every thread."""
        servers, self._servers = self._servers, []
        threads, self._threads = self._threads, []
        for server in servers:
            if threads:
                server.shutdown()  # returns once serve_forever has
            server.close_connections()
            server.server_close()  # closes the listening socket and joins the handler threads
        for thread in threads:
            thread.join()

    def __enter__(self) -> StorageFaults:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the handler threads
    block_on_close = True

    def __init__(self, address: tuple[str, int], faults: StorageFaults, service: str) -> None:
        super().__init__(address, _Handler)
        self.faults, self.service = faults, service
        self.closing = False
        self._sockets_lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def track(self, sock: _Request | None, add: bool) -> None:
        if isinstance(sock, socket.socket):
            with self._sockets_lock:
                (self._sockets.add if add else self._sockets.discard)(sock)

    def close_connections(self) -> None:
        """Unblock every handler: shut down its client's socket and its Azurite socket."""
        with self._sockets_lock:
            self.closing = True
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # its handler closed it meanwhile
                sock.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: _Request, client_address: Any) -> None:
        self.track(request, True)  # in the serving thread, so stop() sees every accepted connection
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        self.track(request, False)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("storage proxy: a connection from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = TIMEOUT_S
    _upstream: http.client.HTTPConnection | None = None  # to Azurite, kept alive too

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._close_upstream()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("storage proxy: %s", format % args)

    def _close_upstream(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            self._server.track(upstream.sock, False)
            upstream.close()

    def _read_body(self) -> bytes:
        """The body, by Content-Length or chunked (the socket timeout bounds every read)."""
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                raise ValueError("bad Content-Length")
            body = self.rfile.read(length)
            if len(body) < length:
                raise ConnectionError("the client went away")
            return body
        chunks: list[bytes] = []
        total = 0
        while (size := int(self.rfile.readline(1024).split(b";")[0], 16)) > 0:  # at most MAX_BODY times
            chunks.append(self.rfile.read(size))
            self.rfile.readline(16)  # the chunk's CRLF
            total += size
            if total > MAX_BODY or len(chunks[-1]) < size:
                raise ValueError("chunked body too large or cut short")
        for _ in range(100):  # trailers, up to the empty line
            if not self.rfile.readline(65536).strip():
                break
        return b"".join(chunks)

    def _forward(self, body: bytes) -> Answer | None:
        """Azurite's answer, or None if it cannot be reached or drops the connection."""
        port = getattr(self._server.faults.azurite.ports, self._server.service, None)
        skip = _HOP_BY_HOP | {"content-length"}
        headers = [(name, value) for name, value in self.headers.items() if name.lower() not in skip]
        if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
            headers.append(("Content-Length", str(len(body))))
        for _attempt in range(2):  # a kept-alive connection Azurite closed meanwhile is opened again once
            reused = self._upstream is not None
            try:
                if self._upstream is None:
                    if port is None or self._server.closing:
                        return None
                    self._upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
                    self._upstream.connect()
                    self._server.track(self._upstream.sock, True)
                self._upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    self._upstream.putheader(name, value)
                self._upstream.endheaders(body or None)
                response = self._upstream.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self._close_upstream()
                stale = isinstance(
                    error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                )
                if reused and stale:
                    continue
                return None
            if response.will_close:
                self._close_upstream()
            return response.status, response.reason, response.getheaders(), data
        return None

    def _injected(self) -> Answer:
        request_id = str(uuid.uuid4())
        now = formatdate(usegmt=True)
        detail = f"{_BUSY} (injected by localazure.storage_faults)\nRequestId:{request_id}\nTime:{now}"
        if self._server.service == "table":
            content_type = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
            error = {"odata.error": {"code": "ServerBusy", "message": {"lang": "en-US", "value": detail}}}
            data = json.dumps(error).encode()
        else:
            content_type = "application/xml"
            data = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
            data += f"<Message>{detail}</Message></Error>".encode()
        headers = [("Content-Type", content_type), ("x-ms-error-code", "ServerBusy")]
        headers += [("x-ms-request-id", request_id), ("Date", now)]
        for echoed in ("x-ms-version", "x-ms-client-request-id"):
            if echoed in self.headers:
                headers.append((echoed, self.headers[echoed]))
        return 503, "Server Busy", headers, b"" if self.command == "HEAD" else data

    def _proxy(self) -> None:
        faults = self._server.faults
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "bad request body")
            return
        except OSError:  # the client went away or stalled
            self.close_connection = True
            return
        received = time.time()
        probe = StorageRequest(self._server.service, self.command, self.path, 0, False, received, 0, body)
        seq, inject = faults._decide(probe)
        answer = self._injected() if inject else self._forward(body)
        status, reason, headers, data = answer or (0, "", [], b"")
        request = StorageRequest(self._server.service, self.command, self.path, status, inject, received, seq)
        lost = faults._answered(replace(request, body=body), data)
        if answer is None or lost:
            self.close_connection = True
            return
        self.send_response_only(status, reason)
        keep_length = self.command == "HEAD" or status in (204, 304)  # no body; the header says more
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and (keep_length or name.lower() != "content-length"):
                self.send_header(name, value)
        if not keep_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_MERGE = do_OPTIONS = _proxy
