"""Reads that answer later events too, so a backlog of events does not cost a read each.

An event says a write happened by the event's time. ARM's reads by id are current, so a read that
ARM served after that time shows the write: it answers the event as well as a read of its own
would (level-triggered, DESIGN.md decision 1). A burst of events about a few resources therefore
costs a read per resource per moment, not per event: when intake keeps up with Event Grid, each
event is newer than every read and is read for; when events queue up in Event Grid (a backlog:
the case where the cost matters, and where ARM's read budget of 25 per second per principal would
cap a read per event), most are older than a read already made.

Both times are Azure's clocks, never this host's: the event's ``eventTime`` and the read's
``Date`` header. ``Date`` has a resolution of a second, so a read is known to be served at or
after its ``Date``; ``margin`` covers the skew between ARM's front door and Event Grid. An event
with no time is always read for. Only intake's resolution uses this (the owning set and whether it
is restricted); what is planned and written is read fresh by the worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MARGIN = timedelta(seconds=2)
DEFAULT_CAPACITY = 4096


def answers(served_at: datetime, event_time: datetime | None, margin: timedelta = DEFAULT_MARGIN) -> bool:
    """Whether a read ARM served at ``served_at`` (its ``Date``) shows the write of an event
    raised at ``event_time``: served at least ``margin`` after it. An event time without a UTC
    offset says no moment for sure (an event from a file, say): always read for."""
    if event_time is None or event_time.utcoffset() is None:
        return False
    return served_at >= event_time + margin


@dataclass(frozen=True)
class Served(Generic[T]):
    """A read's answer (None: the resource did not exist) and when ARM served it."""

    value: T | None
    served_at: datetime


class RecentReads:
    """The latest read of each resource (by id, case-insensitive), bounded to ``capacity`` entries,
    least recently used out first. Thread-safe: one per process, shared by concurrent events."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, margin: timedelta = DEFAULT_MARGIN) -> None:
        self.capacity = capacity
        self.margin = margin
        self._lock = threading.Lock()
        self._reads: OrderedDict[tuple[str, str], Served[object]] = OrderedDict()
        self.reused = 0  # reads saved, for the host's log

    def read(
        self,
        kind: str,
        resource_id: str,
        event_time: datetime | None,
        fetch: Callable[[], tuple[T | None, datetime | None]],
    ) -> T | None:
        """The resource as a read that answers the event shows it: a kept one, or ``fetch()``
        (the value and ARM's ``Date``; kept when ARM said when)."""
        key = (kind, resource_id.lower())
        with self._lock:
            kept = self._reads.get(key)
            if kept is not None and answers(kept.served_at, event_time, self.margin):
                self._reads.move_to_end(key)
                self.reused += 1
                return kept.value  # type: ignore[return-value]
        value, served_at = fetch()
        if served_at is not None:
            with self._lock:
                kept = self._reads.get(key)
                if kept is None or kept.served_at <= served_at:
                    self._reads[key] = Served(value, served_at)
                    self._reads.move_to_end(key)
                while len(self._reads) > self.capacity:
                    self._reads.popitem(last=False)
        return value
