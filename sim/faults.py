"""Seeded, bounded fault injection: the failures a remediator meets in Azure, on demand.

ARM answers 500 and 503 now and then, connections drop, a response can take
longer than the client waits, and a long-running operation can end Failed after
it was accepted. Code that claims to survive these must be tested against them,
and a failing test must be repeatable: every decision here comes from one
`random.Random(seed)`, drawn twice per eligible request in arrival order, so the
same requests in the same order meet the same faults. `max_faults` bounds the
total so a fault loop in a test always ends.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    NONE = "none"
    ERROR_500 = "500"
    ERROR_503 = "503"
    TIMEOUT = "timeout"
    DROP = "drop"
    LRO_FAILED = "lro-failed"


_WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


@dataclass(frozen=True)
class Faults:
    """What to inject, per request, with which probability (each in [0, 1], summing to at most 1).

    seed: the random seed; the same seed and the same requests give the same faults.
    rate_500 / rate_503: answer with ARM's error body (503 with `Retry-After`) without doing the work.
    rate_timeout: do the work, then hold the response `timeout_hold_s` (simulated seconds), then
        answer it (or close the connection if `timeout_then_close`).
    rate_drop: close the connection without answering and without doing the work.
    rate_lro_failed: accept a write (201/202) and let its operation end Failed.
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
        self._injected = 0
        self.configure(faults)

    @property
    def faults(self) -> Faults | None:
        return self._faults

    @property
    def injected(self) -> int:
        with self._lock:
            return self._injected

    def configure(self, faults: Faults | None) -> None:
        """Replace the configuration and restart the random sequence from its seed."""
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed if faults is not None else 0)  # noqa: S311
            self._injected = 0

    def decide(self, method: str, resource_type: str) -> FaultDecision:
        with self._lock:
            faults = self._faults
            if faults is None or not faults.applies(method, resource_type):
                return FaultDecision()
            draw, jitter = self._random.random(), self._random.random()
            latency = faults.latency_s + jitter * faults.latency_jitter_s
            kind = faults.pick(draw)
            if kind is FaultKind.LRO_FAILED and method.upper() not in _WRITE_METHODS:
                kind = FaultKind.NONE
            if kind is not FaultKind.NONE:
                if self._injected >= faults.max_faults:
                    kind = FaultKind.NONE
                else:
                    self._injected += 1
            return FaultDecision(kind, latency)
