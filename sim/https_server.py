"""`HttpsServer`: `ArmApi` served over HTTPS on 127.0.0.1, with keep-alive, in daemon threads.

A loopback-only ThreadingHTTPServer with TLS done in each connection's thread (a slow client
blocks no one), HTTP/1.1 keep-alive (every response carries Content-Length), and what a
response asks of the socket carried out here: an injected delay, a hold, a dropped connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from sim.api_messages import Request

if TYPE_CHECKING:
    from sim.arm_api import ArmApi

logger = logging.getLogger(__name__)


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
