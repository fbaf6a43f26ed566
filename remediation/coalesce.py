"""One reconcile in flight per scale set, plus at most one follow-up, whatever the event storm.

A scale-out of 100 instances can bring 100 events for one set at once. Reconciling the set 100
times would spend ARM's read budget for nothing: each reconcile reads the whole set anyway. So
the first event runs a reconcile; an event arriving while it runs schedules one follow-up (the
state it asks us to look at may be newer than what the running reconcile read); every later
event joins that follow-up and returns its result. Each caller therefore returns only after a
reconcile that *started after it arrived* has finished, which is what level-triggered handling
needs, and a failure reaches every caller that shared it (so each event is redelivered).

This is per process. Function instances on other hosts may reconcile the same set at the same
time; that is safe, because every write carries If-Match and a 412 makes the loser re-read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class _Slot(Generic[R]):
    running: Future[R] | None = None
    follow_up: Future[R] | None = None


class Coalescer(Generic[R]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot[R]] = {}
        self.runs = 0  # reconciles actually started (for tests and benchmarks)
        self.joined = 0  # callers that shared a follow-up instead of starting one

    def run(self, key: Hashable, work: Callable[[], R]) -> R:
        wait_for: Future[R] | None = None
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
            if slot.running is None:
                mine = slot.running = Future()
            elif slot.follow_up is None:
                mine = slot.follow_up = Future()
                wait_for = slot.running
            else:
                shared = slot.follow_up
                self.joined += 1
                mine = None
        if mine is None:
            return shared.result()

        if wait_for is not None:
            # Whatever the running reconcile ends with, the follow-up reads afresh afterwards.
            wait_for.exception()
            with self._lock:
                slot.running, slot.follow_up = mine, None
        try:
            with self._lock:
                self.runs += 1
            result = work()
        except BaseException as error:
            mine.set_exception(error)
            raise
        else:
            mine.set_result(result)
            return result
        finally:
            with self._lock:
                if slot.running is mine:
                    slot.running = None
                if slot.running is None and slot.follow_up is None:
                    self._slots.pop(key, None)
