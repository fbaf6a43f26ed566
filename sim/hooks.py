"""Request hooks: a harness acting at the exact point a request's work is done.

Some failures can only be reproduced at a precise moment: a client killed
after ARM applied its third write but before it read the answer, or storage
failing between a write and the client recording its outcome. Sleeping and
hoping is not precise (and depends on the machine's speed), so the simulator
calls every hook with the request's record, in the request's own thread, once
its work is done and the record stored, and before a byte of the answer (or an
injected delay, hold or drop) reaches the socket. A hook that blocks holds that
one request's answer back, which is the point; a hook that raises is logged and
ignored, so a broken harness never breaks ARM.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sim.request_log import RequestRecord

logger = logging.getLogger(__name__)

RequestHook = Callable[[RequestRecord], None]


class RequestHooks:
    """The hooks of one simulator, called in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: list[RequestHook] = []

    def add(self, hook: RequestHook) -> None:
        with self._lock:
            self._hooks.append(hook)

    def remove(self, hook: RequestHook) -> None:
        """Remove one registration of `hook`; nothing happens if it is not registered."""
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def call(self, record: RequestRecord) -> None:
        with self._lock:
            hooks = list(self._hooks)  # a hook may add or remove hooks without deadlocking
        for hook in hooks:
            try:
                hook(record)
            except Exception:
                logger.exception("request hook %r failed on %s %s", hook, record.method, record.path)
