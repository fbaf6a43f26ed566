"""One background thread that runs the simulator's delayed work in time order.

Long-running operations finish, and scale sets create their instances, some
time after the request that started them. A single scheduler thread (not a
Timer per task) makes that ordering deterministic, lets `stop()`/`reset()` drop
everything pending at once, and lets tests wait until nothing is left to do.
Delays are given in simulated seconds and divided by the time scale, so a test
can run ARM's dynamics ten times faster without changing any number in them.

The scheduler also owns the simulator's clock (`now()`, simulated seconds), which
the lagging views and the throttling buckets read too. `advance(seconds)` moves it
forward at once: what was due meanwhile runs, buckets refill, views catch up, so a
test reaches "later" without sleeping for it, whatever the machine's speed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Scheduler:
    """Run callbacks after a delay on one daemon thread; cancellable and waitable."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._running = 0
        self._held = 0  # while > 0, nothing due runs (see hold)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._offset = 0.0  # real seconds `advance` skipped

    def real_now(self) -> float:
        """Monotonic real seconds, plus what `advance` skipped (the clock every delay is due on)."""
        return time.monotonic() + self._offset

    def now(self) -> float:
        """Simulated seconds: `real_now()` times the time scale (an arbitrary origin)."""
        return self.real_now() * self.time_scale

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` simulated seconds forward now (work due meanwhile runs next)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._cond:
            self._offset += seconds / self.time_scale
            self._cond.notify_all()

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Block until nothing due now is waiting or running (held work does not count); False on
        timeout. After `advance`, this is "everything that was due meanwhile has happened"."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._running or (not self._held and self._heap and self._heap[0][0] <= self.real_now()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="arm-sim-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay_s` simulated seconds (real seconds x time scale)."""
        due = self.real_now() + max(delay_s, 0.0) / self.time_scale
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._order), callback))
            self._cond.notify_all()

    def hold(self) -> None:
        """Run nothing until ``release``: a test can look at a state that would otherwise pass
        (an operation in progress, a scale-out whose instances do not exist yet) on any machine."""
        with self._cond:
            self._held += 1

    def release(self) -> None:
        with self._cond:
            self._held = max(self._held - 1, 0)
            self._cond.notify_all()

    def cancel_all(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify_all()

    def pending(self) -> int:
        """Callbacks waiting or running."""
        with self._cond:
            return len(self._heap) + self._running

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._heap or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    self._held or not self._heap or self._heap[0][0] > self.real_now()
                ):
                    timeout = self._heap[0][0] - self.real_now() if self._heap and not self._held else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, callback = heapq.heappop(self._heap)
                self._running += 1
            try:
                callback()
            except Exception:
                # A bug in one task must not kill the thread that finishes every other operation.
                logger.exception("simulator task failed")
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
