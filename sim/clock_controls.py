"""The simulator's clock as a test drives it: read it, advance it, hold operations, wait for idle.

Every delay, the lagging views and the buckets' refill are measured on the scheduler's clock
(sim/scheduler.py), in simulated seconds. Mixed into `ArmSimulator`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sim.delivery import EventBus
from sim.scheduler import Scheduler


class ClockControls:
    """Mixed into ArmSimulator, which provides the scheduler and the event bus."""

    _scheduler: Scheduler
    _bus: EventBus

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until no operation, provisioning or event delivery is pending; TimeoutError otherwise."""
        if not self._scheduler.wait_idle(timeout_s):
            raise TimeoutError(f"the simulator still had {self._scheduler.pending()} pending tasks")
        if not self._bus.wait_delivered(timeout_s):
            raise TimeoutError("the simulator's event sinks did not finish delivering")

    def now(self) -> float:
        """The simulator's clock, in simulated seconds (an arbitrary origin): what the lagging views,
        the buckets' refill and every delay are measured on."""
        return self._scheduler.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator's clock `seconds` simulated seconds forward at once: operations and
        provisioning due meanwhile run (unless `operations_held`), buckets refill (unless
        `freeze_refill`), and the lagging views of lists and Resource Graph catch up. A test
        reaches "later" this way rather than by sleeping for it. Returns once what fell due has run
        (TimeoutError if it does not within 10 real seconds)."""
        self._scheduler.advance(seconds)
        if not self._scheduler.settle(10.0):
            raise TimeoutError("the simulator's due work did not finish within 10 s")

    @contextmanager
    def operations_held(self) -> Iterator[None]:
        """While inside, no operation completes and no scale-out creates its instances: they stay
        InProgress / Updating whatever the time, and go on afterwards (a deterministic way to act
        while ARM is still working)."""
        self._scheduler.hold()
        try:
            yield
        finally:
            self._scheduler.release()
