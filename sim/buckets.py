"""A token bucket, the one mechanism every throttling budget of the simulator is made of.

ARM's buckets (sim/limits.py) and Microsoft.Compute's policies (sim/compute_limits.py) both
start full, refill continuously at a fixed rate up to their capacity, and say how long until the
next token; the `Retry-After` they answer with is rounded as ARM rounds it. Times are simulated
seconds, read from whichever clock the owner keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketSpec:
    capacity: float
    refill_per_s: float


class TokenBucket:
    """A bucket that starts full and refills continuously up to its capacity."""

    def __init__(self, spec: BucketSpec, now: float, tokens: float | None = None) -> None:
        self.spec = spec
        self.tokens = spec.capacity if tokens is None else tokens
        self.stamp = now

    def refill(self, now: float) -> None:
        elapsed = max(now - self.stamp, 0.0)
        self.tokens = min(self.spec.capacity, self.tokens + elapsed * self.spec.refill_per_s)
        self.stamp = now

    def set(self, tokens: float, now: float) -> None:
        """Set the level exactly, from `now` on (it refills from there)."""
        self.tokens, self.stamp = tokens, now

    def wait_s(self) -> float:
        """Simulated seconds until one token is available (0 if one is)."""
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.spec.refill_per_s


def retry_after_header(wait_sim_s: float, time_scale: float) -> str:
    """ARM rounds up to whole seconds; the simulator then divides them by its time scale."""
    whole = max(math.ceil(wait_sim_s), 1)
    if time_scale == 1:
        return str(whole)
    return f"{whole / time_scale:.3f}".rstrip("0").rstrip(".")
