"""Seeded, bounded fault injection: the failures a remediator meets in Azure, on demand.

ARM answers 500 and 503 now and then, connections drop, a response can take
longer than the client waits, and a long-running operation can end Failed after
it was accepted. Worse for a client that keeps an audit trail: ARM can do a
write and then lose or garble its answer (a 500, or a connection closed after
the work), so the client must find out from ARM's state what happened. Code
that claims to survive these must be tested against them, and a failing test
must be repeatable: every decision here comes from one `random.Random(seed)`,
drawn twice per eligible request in arrival order, so the same requests in the
same order meet the same faults. `max_faults` bounds the total so a fault loop
in a test always ends, and the injector counts what it injected, per kind.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sim.errors import ArmError


class FaultKind(StrEnum):
    NONE = "none"
    ERROR_500 = "500"
    ERROR_503 = "503"
    TIMEOUT = "timeout"
    DROP = "drop"
    LRO_FAILED = "lro-failed"
    ERROR_500_AFTER_WORK = "500-after-work"
    DROP_AFTER_WORK = "drop-after-work"

    @property
    def after_work(self) -> bool:
        """Whether the fault replaces the answer of work already done (rather than the work)."""
        return self in (FaultKind.ERROR_500_AFTER_WORK, FaultKind.DROP_AFTER_WORK)


_WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
# Faults that only make sense for a write: a GET drawing one of these meets no fault.
_WRITE_ONLY = frozenset({FaultKind.LRO_FAILED, FaultKind.ERROR_500_AFTER_WORK, FaultKind.DROP_AFTER_WORK})


@dataclass(frozen=True)
class Faults:
    """What to inject, per request, with which probability (each in [0, 1], summing to at most 1).

    seed: the random seed; the same seed and the same requests give the same faults.
    rate_500 / rate_503: answer with ARM's error body (503 with `Retry-After`) without doing the work.
    rate_timeout: do the work, then hold the response `timeout_hold_s` (simulated seconds), then
        answer it (or close the connection if `timeout_then_close`).
    rate_drop: close the connection without answering and without doing the work.
    rate_lro_failed: accept a write (201/202) and let its operation end Failed.
    rate_500_after_work: do the write (PUT/PATCH/POST/DELETE applied, its operation started), then
        answer 500 `InternalServerError` in ARM's error body instead of the real answer.
    rate_drop_after_work: do the write, then close the connection without an answer (recorded as
        status 0, like a drop).
        Both after-work kinds, like rate_lro_failed, apply to write methods only (a GET drawing one
        meets no fault; a Resource Graph query is a POST, so use only_types to spare it); when the
        work itself is refused (4xx/5xx) that answer is left as it is, and the fault is not counted.
    max_faults: stop injecting after this many faults.
    latency_s / latency_jitter_s: added to every eligible response (simulated seconds; the jitter is
        uniform in [0, latency_jitter_s] and seeded too).
    only_methods / only_types: restrict injection (and latency) to these HTTP methods and resource
        types (ARM casing or any casing, e.g. "Microsoft.Network/networkInterfaces"); None means all.
    """

    seed: int = 0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    rate_lro_failed: float = 0.0
    rate_500_after_work: float = 0.0
    rate_drop_after_work: float = 0.0
    max_faults: int = 100
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    timeout_hold_s: float = 5.0
    timeout_then_close: bool = False
    retry_after_503_s: int = 1
    only_methods: frozenset[str] | None = None
    only_types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        rates = self._rates()
        if any(not 0.0 <= rate <= 1.0 for _, rate in rates):
            raise ValueError("every fault rate must be between 0 and 1")
        if sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ValueError("the fault rates must add up to at most 1")
        if self.max_faults < 0 or self.latency_s < 0 or self.latency_jitter_s < 0 or self.timeout_hold_s < 0:
            raise ValueError("max_faults, latencies and timeout_hold_s must not be negative")
        if self.only_methods is not None:
            object.__setattr__(self, "only_methods", frozenset(m.upper() for m in self.only_methods))
        if self.only_types is not None:
            object.__setattr__(self, "only_types", frozenset(t.lower() for t in self.only_types))

    def _rates(self) -> list[tuple[FaultKind, float]]:
        return [
            (FaultKind.ERROR_500, self.rate_500),
            (FaultKind.ERROR_503, self.rate_503),
            (FaultKind.TIMEOUT, self.rate_timeout),
            (FaultKind.DROP, self.rate_drop),
            (FaultKind.LRO_FAILED, self.rate_lro_failed),
            # Appended last, so every seed keeps drawing the same sequence of the kinds above.
            (FaultKind.ERROR_500_AFTER_WORK, self.rate_500_after_work),
            (FaultKind.DROP_AFTER_WORK, self.rate_drop_after_work),
        ]

    def applies(self, method: str, resource_type: str) -> bool:
        if self.only_methods is not None and method.upper() not in self.only_methods:
            return False
        return self.only_types is None or resource_type.lower() in self.only_types

    def pick(self, draw: float) -> FaultKind:
        """The fault a uniform draw in [0, 1) selects."""
        edge = 0.0
        for kind, rate in self._rates():
            edge += rate
            if draw < edge:
                return kind
        return FaultKind.NONE


@dataclass(frozen=True)
class FaultDecision:
    kind: FaultKind = FaultKind.NONE
    latency_s: float = 0.0  # simulated seconds


class FaultInjector:
    """Decides, per request and in arrival order, which fault (if any) it meets. Thread-safe."""

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: Faults | None = None
        self._random = random.Random(0)  # noqa: S311 (seeded, repeatable; not security)
        self._met: Counter[FaultKind] = Counter()
        self.configure(faults)

    @property
    def faults(self) -> Faults | None:
        return self._faults

    @property
    def injected(self) -> int:
        """Faults injected since the last `configure`, of every kind."""
        with self._lock:
            return sum(self._met.values())

    def met(self) -> dict[str, int]:
        """Faults injected since the last `configure`, by kind value; kinds never met are left out."""
        with self._lock:
            return {kind.value: self._met[kind] for kind in FaultKind if self._met[kind] > 0}

    def configure(self, faults: Faults | None) -> None:
        """Replace the configuration and restart the random sequence (and the counts) from its seed."""
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed if faults is not None else 0)  # noqa: S311
            self._met.clear()

    def decide(self, method: str, resource_type: str) -> FaultDecision:
        with self._lock:
            faults = self._faults
            if faults is None or not faults.applies(method, resource_type):
                return FaultDecision()
            draw, jitter = self._random.random(), self._random.random()
            latency = faults.latency_s + jitter * faults.latency_jitter_s
            kind = faults.pick(draw)
            if kind in _WRITE_ONLY and method.upper() not in _WRITE_METHODS:
                kind = FaultKind.NONE
            if kind is not FaultKind.NONE:
                if sum(self._met.values()) >= faults.max_faults:
                    kind = FaultKind.NONE
                else:
                    self._met[kind] += 1
            return FaultDecision(kind, latency)

    def withdraw(self, kind: FaultKind) -> None:
        """Uncount a decided fault that did not take effect (an after-work fault on refused work)."""
        with self._lock:
            if self._met[kind] > 0:
                self._met[kind] -= 1


def internal_server_error(subscription: str) -> ArmError:
    """ARM's answer to a request that failed inside it (what the 500 faults answer)."""
    return ArmError(
        500,
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: timestamp "
        f"'{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}', subscription id "
        f"'{subscription}', tracking id '{uuid.uuid4()}' (injected fault).",
    )
