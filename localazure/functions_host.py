"""Several Functions hosts, each its own process, as Azure runs a scaled-out app.

A host (``python -m localazure.functions_host --port-file F``) indexes ``function_app.app`` (or
``--app module:attribute``), starts a ``QueueListener`` for each queue-triggered function (queue
name and connection read from the binding; ``%SETTING%`` resolved from the environment, the
connection setting holding a connection string), and serves the Event Grid webhook on a free
loopback port, as the host's Event Grid extension does: ``POST /runtime/webhooks/eventgrid?
functionName=NAME`` with the ``aeg-event-type`` header. ``Notification``: each event of the JSON
array (or the one CloudEvent object) runs the function, in parallel; 202 Accepted when all
returned, 500 when one raised. ``SubscriptionValidation``: 200 with the validation code.
``Unsubscribe``: 202. No or another header: 400; an unknown function: 404. (No function keys are
checked: loopback only.) SIGTERM stops it cleanly: the webhook closes and the listeners stop,
waiting for running invocations. Tests may SIGKILL it.

``HostPool(n, env)`` starts n hosts with those app settings and delivers events to one chosen at
random; ``handler()`` adapts it to ``EventGridPlayer``, which expects a callable that raises.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localazure.azurite import PROJECT_ROOT

log = logging.getLogger("localazure.functions_host")

WEBHOOK = "/runtime/webhooks/eventgrid"
MAX_BODY = 64 * 2**20  # Event Grid sends at most 1 MB; anything far larger is refused
_SETTING = re.compile(r"%([^%]+)%")


class HostDeliveryError(RuntimeError):
    """The host did not answer 2xx (Event Grid's success codes are 200-204)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the host answered {status}: {body[:200]}")
        self.status = status


def index(app: str | None = None) -> dict[str, Any]:
    """The app's functions by name: ``function_app.app`` (indexed once, as ``localazure.host``
    does), or ``module:attribute``."""
    if app is None:
        from localazure.host import indexed_functions

        return indexed_functions()
    module, _, attribute = app.partition(":")
    function_app = getattr(importlib.import_module(module), attribute or "app")
    return {str(f.get_function_name()): f for f in function_app.get_functions()}


def resolve(value: str, environ: Mapping[str, str]) -> str:
    """A binding property's ``%SETTING%`` names replaced by their app settings (KeyError: missing)."""
    return _SETTING.sub(lambda match: environ[match.group(1)], value)


def _call(function: Any, trigger_name: str, value: object) -> None:
    """Call the user function with its trigger argument by name, as the Python worker does."""
    function.get_user_function()(**{trigger_name: value})


def _bound(function: Any, trigger_name: str) -> Callable[[Any], None]:
    return lambda value: _call(function, trigger_name, value)


def queue_listeners(functions: Mapping[str, Any], environ: Mapping[str, str], **options: Any) -> list[Any]:
    """A listener for each queue-triggered function (one whose binding does not resolve is left
    out and logged, as the host reports it in error and runs the others)."""
    from localazure.queues import QueueHostSettings, QueueListener

    settings = options.pop("settings", None) or QueueHostSettings.from_host_json(environ=environ)
    listeners = []
    for name, function in functions.items():
        trigger = function.get_trigger()
        if trigger is None or trigger.type != "queueTrigger":
            continue
        queue, connection = (
            _resolved(trigger.queue_name, environ),
            _resolved(trigger.connection or "AzureWebJobsStorage", environ),
        )
        if queue is None or connection is None or connection not in environ:
            log.error("function %s: its queue or connection setting is missing; not listening", name)
            continue
        listeners.append(
            QueueListener(
                environ[connection], queue, _bound(function, trigger.name), settings=settings, **options
            )
        )
    return listeners


def _resolved(value: str, environ: Mapping[str, str]) -> str | None:
    try:
        return resolve(value, environ)
    except KeyError:
        return None


class _Webhook(BaseHTTPRequestHandler):
    functions: dict[str, Any] = {}  # noqa: RUF012 - set once per process, before serving

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def _answer(self, status: int, body: str = "", content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/admin/host/status":
            self._answer(200, json.dumps({"state": "Running", "processId": os.getpid()}), "application/json")
        else:
            self._answer(404)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        name = parse_qs(url.query).get("functionName", [""])[0]
        length = int(self.headers.get("Content-Length") or 0)
        if url.path.lower() != WEBHOOK or length > MAX_BODY:
            self._answer(404 if length <= MAX_BODY else 413)
            return
        body = self.rfile.read(length)
        function = self.functions.get(name)
        trigger = function.get_trigger() if function is not None else None
        if trigger is None or trigger.type != "eventGridTrigger":
            self._answer(404, f"cannot find function: '{name}'")
            return
        kind = (self.headers.get("aeg-event-type") or "").lower()
        try:
            if kind == "subscriptionvalidation":
                code = json.loads(body)[0]["data"]["validationCode"]
                self._answer(200, json.dumps({"validationResponse": code}), "application/json")
            elif kind == "notification":
                self._notify(function, trigger.name, json.loads(body))
            elif kind == "unsubscribe":
                self._answer(202)
            else:
                self._answer(400)
        except (ValueError, LookupError, TypeError) as error:  # unreadable: the host fails the request
            self._answer(500, f"{type(error).__name__}: {error}")

    def _notify(self, function: Any, argument: str, payload: object) -> None:
        from localazure.host import event_grid_event

        events = payload if isinstance(payload, list) else [payload]
        errors: list[str] = []

        def run(event: object) -> None:
            if not isinstance(event, dict):
                errors.append(f"an event is a JSON object, not {type(event).__name__}")
                return
            try:
                _call(function, argument, event_grid_event(event))
            except Exception as error:
                log.warning("event %s failed", event.get("id"), exc_info=True)
                errors.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=run, args=(event,), daemon=True) for event in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self._answer(500, errors[0])
        else:
            self._answer(202)


def serve(arguments: Sequence[str] | None = None) -> int:
    """The host process's main: index, listen, serve until SIGTERM (or its parent is gone)."""
    parser = argparse.ArgumentParser(prog="python -m localazure.functions_host")
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--app", default=None, help="module:attribute (default function_app:app)")
    parser.add_argument("--host-json", type=Path, default=None)
    parser.add_argument("--running-visibility-s", type=float, default=600.0)
    parser.add_argument("--max-lifetime-s", type=float, default=6 * 3600.0)
    options = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # not every storage request
    from localazure.queues import QueueHostSettings

    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    functions = index(options.app)
    _Webhook.functions = functions
    settings = QueueHostSettings.from_host_json(options.host_json, os.environ)
    listeners = queue_listeners(
        functions, os.environ, settings=settings, running_visibility_s=options.running_visibility_s
    )
    # A listen backlog of 5 (socketserver's) refuses connections under a storm's concurrent
    # deliveries; the real host queues them.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
    for listener in listeners:
        listener.start()
    port = server.server_address[1]
    partial = options.port_file.with_name(options.port_file.name + ".partial")
    partial.write_text(str(port), encoding="utf-8")
    partial.replace(options.port_file)  # whole, or not at all
    print(f"ready {port}", flush=True)
    parent, deadline = os.getppid(), time.monotonic() + options.max_lifetime_s
    while not stopping.wait(0.5):
        if os.getppid() != parent or time.monotonic() > deadline:
            break  # orphaned, or lived long enough: nobody will stop it
    server.shutdown()
    server.server_close()
    drained = all([listener.stop(timeout_s=60) for listener in listeners])
    log.info("host %d stopped (invocations finished: %s)", os.getpid(), drained)
    return 0


class HostPool:
    """n host processes on loopback with the given app settings (see the module's docstring)."""

    def __init__(
        self,
        n: int,
        env: Mapping[str, str],
        *,
        app: str | None = None,
        host_json: Path | None = None,
        running_visibility_s: float = 600.0,
        seed: int = 0,
        pythonpath: Sequence[Path] = (),
        log_dir: Path | None = None,
        start_timeout_s: float = 120.0,
        request_timeout_s: float = 120.0,
    ) -> None:
        self.n, self.env, self.app = n, dict(env), app
        self.host_json, self.running_visibility_s = host_json, running_visibility_s
        self.pythonpath = [PROJECT_ROOT, *pythonpath]
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="functions-hosts-"))
        self.start_timeout_s, self.request_timeout_s = start_timeout_s, request_timeout_s
        self._random = random.Random(seed)  # noqa: S311 - which host gets an event: not a secret
        self._random_lock = threading.Lock()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.log_paths: list[Path] = []

    def start(self) -> HostPool:
        environment = {**os.environ, **self.env}
        environment["PYTHONPATH"] = os.pathsep.join(str(path) for path in self.pythonpath)
        port_files = []
        try:
            for i in range(self.n):
                port_file, log_path = self.log_dir / f"host-{i}.port", self.log_dir / f"host-{i}.log"
                port_file.unlink(missing_ok=True)
                command = [sys.executable, "-m", "localazure.functions_host", "--port-file", str(port_file)]
                command += ["--running-visibility-s", str(self.running_visibility_s)]
                command += ["--app", self.app] if self.app else []
                command += ["--host-json", str(self.host_json)] if self.host_json else []
                with log_path.open("wb") as output:
                    self.processes.append(
                        subprocess.Popen(  # noqa: S603 - this project's own module
                            command,
                            cwd=PROJECT_ROOT,
                            env=environment,
                            stdin=subprocess.DEVNULL,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                        )
                    )
                port_files.append(port_file)
                self.log_paths.append(log_path)
            self.ports = [self._wait_for_port(i, path) for i, path in enumerate(port_files)]
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self, i: int, port_file: Path) -> int:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if port_file.exists():
                return int(port_file.read_text(encoding="utf-8"))
            if self.processes[i].poll() is not None:
                break
            time.sleep(0.05)  # polling a file another process writes: bounded by the deadline
        raise RuntimeError(f"host {i} did not start; its log:\n{self.log(i)[-4000:]}")

    def alive(self) -> list[int]:
        return [i for i, process in enumerate(self.processes) if process.poll() is None]

    def log(self, i: int) -> str:
        return self.log_paths[i].read_text(encoding="utf-8", errors="replace")

    def post(
        self, i: int, body: object, function: str = "on_resource_event", event_type: str = "Notification"
    ) -> tuple[int, str]:
        """POST ``body`` (JSON) to host ``i``'s webhook; the status and the answer's text."""
        connection = http.client.HTTPConnection("127.0.0.1", self.ports[i], timeout=self.request_timeout_s)
        try:
            headers = {"Content-Type": "application/json", "aeg-event-type": event_type} if event_type else {}
            connection.request("POST", f"{WEBHOOK}?functionName={function}", json.dumps(body), headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def deliver(self, event: Mapping[str, Any], function: str = "on_resource_event") -> int:
        """Deliver one event (as a one-event array) to a live host chosen at random; the status."""
        alive = self.alive()
        if not alive:
            raise RuntimeError("no host is running")
        with self._random_lock:
            i = self._random.choice(alive)
        return self.post(i, [dict(event)], function)[0]

    def handler(self, function: str = "on_resource_event") -> Callable[[dict[str, Any]], None]:
        """A handler for ``EventGridPlayer``: delivers, and raises unless the host answered 2xx."""

        def deliver(event: dict[str, Any]) -> None:
            status = self.deliver(event, function)
            if not 200 <= status <= 204:
                raise HostDeliveryError(status, "")

        return deliver

    def kill(self, i: int) -> None:
        """SIGKILL host ``i`` (a host dying mid-invocation)."""
        self.processes[i].kill()
        self.processes[i].wait(timeout=30)

    def stop(self, timeout_s: float = 60.0) -> list[int | None]:
        """SIGTERM every live host, wait for it to stop (SIGKILL past the timeout); exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        return [process.returncode for process in self.processes]

    def __enter__(self) -> HostPool:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(serve())
