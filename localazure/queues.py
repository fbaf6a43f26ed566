"""Azure Functions' Storage-queue trigger, played for the local host against Azurite (or Azure).

The contract (learn.microsoft.com "Azure Queue storage trigger", host.json section; the WebJobs
SDK's QueueListener and QueueProcessor): a listener fetches up to ``batchSize`` messages with a
10-minute visibility timeout, which it renews at half that period while the function runs, so a
host that dies leaves its message to reappear after that period. It fetches again once the
invocations running drop to ``newBatchThreshold`` (so at most batchSize + newBatchThreshold run at
once). On an empty queue it backs off exponentially from 100 ms to ``maxPollingInterval``. A
function that returns deletes its message; one that raises releases it with ``visibilityTimeout``,
or, at ``maxDequeueCount`` dequeues, moves it to ``<queue>-poison``. A message received with a
dequeue count already over the maximum (its earlier hosts died), or that cannot be decoded (the
default messageEncoding is base64), goes to the poison queue without running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, DecodeError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage, TextBase64DecodePolicy

from localazure.azurite import PROJECT_ROOT

log = logging.getLogger(__name__)

MIN_POLLING_INTERVAL_S = 0.1  # QueuePollingIntervals.Minimum
RUNNING_VISIBILITY_S = 600.0  # the listener's fixed visibility timeout while a function runs
ENV_PREFIX = "AzureFunctionsJobHost__extensions__queues__"  # app settings override host.json
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):([0-5]?\d)(?::([0-5]?\d)(?:\.(\d{1,7}))?)?$")
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 30}


def parse_timespan(value: object, name: str, *, numbers_are_ms: bool = False) -> float:
    """Seconds in a host.json TimeSpan ("[d.]hh:mm[:ss[.fffffff]]", or "d" days, as .NET parses);
    with ``numbers_are_ms`` a number (or a string of digits) is milliseconds, the 1.x form."""
    text = value.strip() if isinstance(value, str) else ""
    if numbers_are_ms and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    if text.isdigit():
        return float(text) / 1000.0 if numbers_are_ms else int(text) * 86400.0
    match = _TIMESPAN.match(text)
    if not match or int(match[2]) > 23:
        raise ValueError(f"{name}: {value!r} is not a TimeSpan 'hh:mm:ss'")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups()[:4])
    fraction = int(match[5]) / 10 ** len(match[5]) if match[5] else 0.0
    return days * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds + fraction


@dataclass(frozen=True)
class QueueHostSettings:
    """The host.json ``extensions.queues`` section, with Azure's defaults (one vCPU)."""

    batch_size: int = 16
    new_batch_threshold: int = 8  # Azure: vCPUs * batchSize / 2
    max_polling_interval_s: float = 60.0
    visibility_timeout_s: float = 0.0  # how long a failed message stays invisible
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 32:
            raise ValueError(f"batchSize must be between 1 and 32, not {self.batch_size}")
        if self.new_batch_threshold < 0 or self.visibility_timeout_s < 0:
            raise ValueError("newBatchThreshold and visibilityTimeout must not be negative")
        if self.max_polling_interval_s < MIN_POLLING_INTERVAL_S:
            raise ValueError("maxPollingInterval must be at least 00:00:00.100")
        if self.max_dequeue_count < 1:
            raise ValueError("maxDequeueCount must be at least 1")
        if self.message_encoding not in ("base64", "none"):
            raise ValueError("messageEncoding must be base64 or none")

    @property
    def max_concurrency(self) -> int:
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_section(cls, section: Mapping[str, object] | None) -> QueueHostSettings:
        """From the section's keys (case-insensitive, as the host's configuration binder reads)."""
        keys = {key.lower(): value for key, value in (section or {}).items()}
        batch = int(str(keys.get("batchsize", cls.batch_size)))
        return cls(
            batch_size=batch,
            new_batch_threshold=int(str(keys.get("newbatchthreshold", batch // 2))),
            max_polling_interval_s=parse_timespan(
                keys.get("maxpollinginterval", "00:01:00"), "maxPollingInterval", numbers_are_ms=True
            ),
            visibility_timeout_s=parse_timespan(
                keys.get("visibilitytimeout", "00:00:00"), "visibilityTimeout"
            ),
            max_dequeue_count=int(str(keys.get("maxdequeuecount", cls.max_dequeue_count))),
            message_encoding=str(keys.get("messageencoding", "base64")).lower(),
        )

    @classmethod
    def from_host_json(
        cls, path: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> QueueHostSettings:
        """``extensions.queues`` of ``path`` (default: the project's host.json), overridden by app
        settings named ``AzureFunctionsJobHost__extensions__queues__<key>`` in ``environ``
        (default: this process's environment)."""
        document = json.loads((path or PROJECT_ROOT / "host.json").read_text(encoding="utf-8"))
        extensions = {k.lower(): v for k, v in (document.get("extensions") or {}).items()}
        section = {k.lower(): v for k, v in (extensions.get("queues") or {}).items()}
        for key, value in (os.environ if environ is None else environ).items():
            if key.lower().startswith(ENV_PREFIX.lower()):
                section[key[len(ENV_PREFIX) :].lower()] = value
        return cls.from_section(section)


@dataclass(frozen=True)
class Invocation:
    """One message handled. ``outcome``: succeeded; retried (raised, released); poisoned (raised at
    the maximum dequeue count); poisoned-unrun (over it); undecodable; storage-error."""

    message_id: str
    dequeue_count: int
    started: float  # time.time()
    ended: float
    outcome: str
    renewals: int = 0  # of the running visibility
    error: str = ""


@dataclass(frozen=True)
class DrainReport:
    delivered: int  # the function returned
    failed: int  # the function raised
    poisoned: int  # moved to the poison queue, run or not
    running: int  # invocations running now
    max_running: int
    timed_out: bool = False
    invocations: tuple[Invocation, ...] = ()


@dataclass(frozen=True)
class PoisonMessage:
    id: str
    content: str  # as it is on the wire (the failed message's base64 text, unchanged)
    text: str  # decoded as the trigger decodes it ("" if it is not base64)
    dequeue_count: int


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}-poison"


def peek_poison(connection_string: str, queue_name: str, max_messages: int = 32) -> list[PoisonMessage]:
    """The visible messages of ``<queue_name>-poison`` (none if it does not exist)."""
    with QueueClient.from_connection_string(connection_string, poison_queue_name(queue_name)) as client:
        try:
            messages = client.peek_messages(max_messages=max_messages)
        except ResourceNotFoundError:
            return []
    return [
        PoisonMessage(m.id, m.content, _base64_text(m.content, strict=False), m.dequeue_count or 0)
        for m in messages
    ]


def _base64_text(content: str | None, *, strict: bool = True) -> str:
    try:
        return str(TextBase64DecodePolicy().decode(content or "", None))  # type: ignore[arg-type]
    except DecodeError:
        if strict:
            raise
        return ""


class _Lease:
    """Keeps a running invocation's message invisible: renewed at half the period, until stopped."""

    def __init__(
        self, queue: QueueClient, message: QueueMessage, visibility_s: int, renewed: Callable[[], None]
    ) -> None:
        self.pop_receipt = str(message.pop_receipt)
        self.renewals = 0
        self._queue, self._id, self._visibility, self._renewed = queue, message.id, visibility_s, renewed
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{message.id}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._done.wait(self._visibility / 2):
            with self._lock:
                if self._done.is_set():
                    return
                try:
                    updated = self._queue.update_message(
                        self._id, pop_receipt=self.pop_receipt, visibility_timeout=self._visibility
                    )
                except AzureError as error:
                    if isinstance(error, HttpResponseError) and error.status_code in (400, 404):
                        return  # taken over by another host, or gone: nothing to keep
                    log.warning("message %s: visibility not renewed: %s", self._id, error)
                    continue
                self.pop_receipt = str(updated.pop_receipt)
                self.renewals += 1
                self._renewed()

    def stop(self) -> str:
        """Stop renewing (after a renewal under way); the latest pop receipt."""
        with self._lock:
            self._done.set()
        self._thread.join(timeout=60)
        return self.pop_receipt


class QueueListener:
    """The queue trigger's listener for one function and queue (``start``/``stop``, or ``drain``)."""

    def __init__(
        self,
        connection_string: str,
        queue_name: str,
        function: Callable[[func.QueueMessage], None],
        *,
        settings: QueueHostSettings | None = None,
        running_visibility_s: float = RUNNING_VISIBILITY_S,
    ) -> None:
        self.settings = settings or QueueHostSettings.from_host_json()
        self.queue_name = queue_name
        self._function = function
        self._visibility = max(1, round(running_visibility_s))  # whole seconds, at least 1 (REST)
        self._queue = QueueClient.from_connection_string(connection_string, queue_name, **_CLIENT_OPTIONS)
        self._poison = QueueClient.from_connection_string(
            connection_string, poison_queue_name(queue_name), **_CLIENT_OPTIONS
        )
        self._changed = threading.Condition()
        self._report = DrainReport(0, 0, 0, 0, 0)
        self._invocations: list[Invocation] = []
        self._last_received = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.capacity_waits = 0  # times fetching paused for the running invocations to drop
        self.waiting_for_capacity = False
        self.renewals = 0  # of running invocations' visibility, so far

    def _count_renewal(self) -> None:
        with self._changed:
            self.renewals += 1

    def start(self) -> None:
        """Poll in a background thread until ``stop``."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._loop, args=(lambda: False, float("inf")), daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop fetching and wait for running invocations; False if some still run at the timeout."""
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(deadline - time.monotonic(), 0))
            self._thread = None
        with self._changed:
            return self._changed.wait_for(
                lambda: self._report.running == 0, timeout=max(deadline - time.monotonic(), 0)
            )

    def drain(
        self, *, idle_s: float = 0.5, timeout_s: float = 60.0, include_invisible: bool = True
    ) -> DrainReport:
        """Run the listener in this thread until nothing has run and the queue has held no message
        for ``idle_s`` (with ``include_invisible``, none at all by the queue's approximate count, so
        a retry waiting out its visibilityTimeout keeps it going), or until ``timeout_s``. Polls at
        least every ``idle_s / 2`` so the idle period is seen."""
        if self._thread is not None:
            raise RuntimeError("drain runs the listener itself: it is started already")
        deadline = time.monotonic() + timeout_s
        idle_since = float("inf")

        def idle() -> bool:
            nonlocal idle_since
            now = time.monotonic()
            if self._report.running or self._last_received or (include_invisible and self._approx_count()):
                idle_since = float("inf")
                return False
            idle_since = min(idle_since, now)
            return now - idle_since >= idle_s

        self._stopping.clear()
        self._loop(idle, deadline, poll_cap_s=max(idle_s / 2, MIN_POLLING_INTERVAL_S))
        return replace(self.report(), timed_out=time.monotonic() >= deadline)

    def report(self) -> DrainReport:
        with self._changed:
            return replace(self._report, invocations=tuple(self._invocations))

    def _loop(self, done: Callable[[], bool], deadline: float, poll_cap_s: float = float("inf")) -> None:
        delay = MIN_POLLING_INTERVAL_S
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if not self._wait_for_capacity(deadline):
                return
            self._last_received = self._poll()
            if done():
                return
            if self._last_received:
                delay = MIN_POLLING_INTERVAL_S  # found messages: fetch again at once
                continue
            self._stopping.wait(min(delay, poll_cap_s, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, self.settings.max_polling_interval_s)

    def _wait_for_capacity(self, deadline: float) -> bool:
        """Wait until the running invocations are at most newBatchThreshold (False: stop/deadline)."""
        threshold = self.settings.new_batch_threshold
        with self._changed:
            if self._report.running <= threshold:
                return True
            self.capacity_waits += 1
            self.waiting_for_capacity = True
            try:
                self._changed.wait_for(
                    lambda: self._stopping.is_set() or self._report.running <= threshold,
                    timeout=None if deadline == float("inf") else max(deadline - time.monotonic(), 0),
                )
                return self._report.running <= threshold and not self._stopping.is_set()
            finally:
                self.waiting_for_capacity = False

    def _poll(self) -> int:
        """Fetch one batch and start an invocation for each message; how many came."""
        try:
            pages = self._queue.receive_messages(
                messages_per_page=self.settings.batch_size, visibility_timeout=self._visibility
            ).by_page()
            messages = list(next(pages, None) or [])
        except ResourceNotFoundError:
            return 0  # no queue yet: back off, as the host does
        except AzureError as error:
            log.warning("queue %s could not be read: %s", self.queue_name, error)
            return 0
        for message in messages:
            with self._changed:
                running = self._report.running + 1
                self._report = replace(
                    self._report, running=running, max_running=max(running, self._report.max_running)
                )
            threading.Thread(target=self._process, args=(message,), daemon=True).start()
        return len(messages)

    def _process(self, message: QueueMessage) -> None:
        started, count = time.time(), int(message.dequeue_count or 0)
        outcome, error, renewals = "storage-error", "", 0
        try:
            if count > self.settings.max_dequeue_count:
                self._to_poison(message, str(message.pop_receipt))
                outcome = "poisoned-unrun"
                return
            try:
                encoded = self.settings.message_encoding == "base64"
                body = _base64_text(message.content) if encoded else message.content or ""
            except DecodeError as problem:
                error = str(problem)
                self._to_poison(message, str(message.pop_receipt))
                outcome = "undecodable"
                return
            lease = _Lease(self._queue, message, self._visibility, self._count_renewal)
            try:
                self._function(self._binding(message, body))
                failed = False
            except Exception as problem:  # noqa: BLE001 - the host fails the invocation for anything
                failed, error = True, f"{type(problem).__name__}: {problem}"
                log.warning("queue %s message %s failed: %s", self.queue_name, message.id, error)
            receipt, renewals = lease.stop(), lease.renewals
            if not failed:
                self._settle(self._queue.delete_message, message.id, receipt)
                outcome = "succeeded"
            elif count >= self.settings.max_dequeue_count:
                self._to_poison(message, receipt)
                outcome = "poisoned"
            else:
                seconds = int(self.settings.visibility_timeout_s)  # whole seconds, as the SDK sends
                self._settle(
                    self._queue.update_message, message.id, pop_receipt=receipt, visibility_timeout=seconds
                )
                outcome = "retried"
        except AzureError as problem:  # the message reappears when its visibility runs out
            error = f"{error}; storage: {problem}" if error else f"storage: {problem}"
            log.warning("queue %s message %s: %s", self.queue_name, message.id, problem)
        finally:
            self._finish(Invocation(message.id, count, started, time.time(), outcome, renewals, error))

    def _finish(self, invocation: Invocation) -> None:
        outcome = invocation.outcome
        with self._changed:
            report = self._report
            self._report = replace(
                report,
                running=report.running - 1,
                delivered=report.delivered + (outcome == "succeeded"),
                failed=report.failed + (outcome in ("retried", "poisoned")),
                poisoned=report.poisoned + (outcome in ("poisoned", "poisoned-unrun", "undecodable")),
            )
            self._invocations.append(invocation)
            self._changed.notify_all()

    @staticmethod
    def _binding(message: QueueMessage, body: str) -> func.QueueMessage:
        """The binding object as the Python worker builds it from the host's trigger metadata."""
        from azure.functions.queue import QueueMessage as WorkerQueueMessage

        return WorkerQueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    @staticmethod
    def _settle(operation: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Delete or release: a pop receipt mismatch (another host took the message over) or a
        message already gone is not an error, as for the host."""
        try:
            operation(*args, **kwargs)
        except HttpResponseError as error:
            if error.status_code not in (400, 404):
                raise

    def _to_poison(self, message: QueueMessage, receipt: str) -> None:
        """Copy the message as it is on the wire to the poison queue (created when missing), then
        delete it from this queue."""
        try:
            self._poison.send_message(message.content)
        except ResourceNotFoundError:
            with contextlib.suppress(AzureError):
                self._poison.create_queue()
            self._poison.send_message(message.content)
        log.warning("message %s moved to %s", message.id, poison_queue_name(self.queue_name))
        self._settle(self._queue.delete_message, message.id, receipt)

    def _approx_count(self) -> int:
        try:
            return int(self._queue.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0
        except AzureError:
            return 1  # unknown: not idle
