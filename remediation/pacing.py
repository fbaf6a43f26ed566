"""Client-side pacing: spend ARM's request budgets without meeting their 429s.

ARM throttles per subscription and principal with token buckets (learn.microsoft.com, "Understand
how Azure Resource Manager throttles requests": reads 250 burst refilled 25 per second, writes
200 / 10, deletes 200 / 10), and Microsoft.Network adds 1,000 writes and deletes per 5 minutes per
subscription. A storm of hundreds of detaches and deletions runs into them; a request answered 429
costs a token of nothing, a retry after Retry-After, and the time in between. So every request
first reserves a token from a local copy of its buckets and waits its turn; the copy is corrected
from what ARM says: an answer's ``x-ms-ratelimit-remaining-subscription-*`` header where ARM
sends one (the caller's count, less the requests of ours still unanswered), the subscription's
``...-global-*`` count (which only lowers ours), and a 429's Retry-After (the bucket is empty until
then). A 429 is charged to Microsoft.Network's budget when its message names that provider, else
to ARM's bucket.

Recorded Azure traffic carries only the global counts, not the caller's own, so a host cannot
learn from ARM what other hosts of the same identity spent: each paces on its own copy, and one
set's reconcile runs on one host at a time (single flight), so a storm is paced by one. Several
hosts writing at once for different sets may meet ARM's 429s; each then waits out Retry-After. No I/O here but
the sleep, which is injectable with the clock; ``PacingPolicy`` (``arm``'s pipeline) calls it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Budget:
    capacity: float
    refill_per_s: float


READS, WRITES, DELETES = "reads", "writes", "deletes"
ARM_BUDGETS = {READS: Budget(250, 25), WRITES: Budget(200, 10), DELETES: Budget(200, 10)}
NETWORK = "Microsoft.Network"
NETWORK_BUDGET = Budget(1000, 1000 / 300)  # writes and deletes per 5 minutes, per subscription

# ARM's remaining counts: the caller's own bucket, and the subscription's global bucket that every
# principal shares (15 times the caller's; recorded traffic may carry only this one).
_OWN = "x-ms-ratelimit-remaining-subscription-{}"
_GLOBAL = "x-ms-ratelimit-remaining-subscription-global-{}"


def request_class(method: str) -> str:
    """ARM's bucket for a request: GET and HEAD read, DELETE deletes, anything else writes."""
    upper = method.upper()
    return READS if upper in ("GET", "HEAD") else DELETES if upper == "DELETE" else WRITES


def scope_of(url: str) -> tuple[str, str]:
    """(subscription, resource provider namespace) a request's URL addresses; '' for either the
    URL does not name (Resource Graph is tenant-level)."""
    parts = [part for part in urlsplit(url).path.split("/") if part]
    lowered = [part.lower() for part in parts]
    subscription = parts[1].lower() if len(parts) > 1 and lowered[0] == "subscriptions" else ""
    namespace = ""
    if "providers" in lowered:
        at = lowered.index("providers")
        namespace = parts[at + 1] if at + 1 < len(parts) else ""
    return subscription, namespace


class Bucket:
    """A local copy of one of ARM's buckets. Reservations may take it below zero: the deficit is
    the queue of requests waiting their turn, each told when its token comes."""

    def __init__(self, budget: Budget, now: float) -> None:
        self.budget = budget
        self.tokens = budget.capacity
        self.stamp = now
        self.outstanding = 0  # reserved and not yet answered

    def _refill(self, now: float) -> None:
        gained = max(now - self.stamp, 0.0) * self.budget.refill_per_s
        self.tokens = min(self.budget.capacity, self.tokens + gained)
        self.stamp = now

    def reserve(self, now: float) -> float:
        """Take a token; seconds until it is really there (0: now)."""
        self._refill(now)
        self.tokens -= 1
        self.outstanding += 1
        return max(-self.tokens, 0.0) / self.budget.refill_per_s

    def release(self, now: float) -> None:
        """A reservation not spent (the request was not sent)."""
        self._refill(now)
        self.tokens = min(self.budget.capacity, self.tokens + 1)
        self.outstanding = max(self.outstanding - 1, 0)

    def answered(
        self,
        now: float,
        own: int | None = None,
        shared: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """One request of ours answered. ARM's count of our own bucket (less our others still
        unanswered) replaces the local guess; the subscription's shared count can only lower it
        (other principals spend it too); a 429 empties the bucket until its Retry-After."""
        self._refill(now)
        self.outstanding = max(self.outstanding - 1, 0)
        if retry_after_s is not None:
            self.tokens = min(self.tokens, -retry_after_s * self.budget.refill_per_s)
            return
        if own is not None:
            self.tokens = min(self.budget.capacity, float(own - self.outstanding))
        if shared is not None:
            self.tokens = min(self.tokens, float(shared - self.outstanding))


@dataclass
class Ticket:
    """The buckets one request reserved a token from."""

    buckets: tuple[Bucket, ...]
    request_class: str
    over_budget: bool = False  # no token within the caller's longest wait: sent at once, or not at all


class Pacer:
    """The buckets of one ARM endpoint, for every subscription this process talks to. Thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def _bucket(self, key: tuple[str, str], budget: Budget, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(budget, now)
        return bucket

    def before(self, method: str, url: str, max_wait_s: float = float("inf")) -> Ticket:
        """Reserve this request's tokens and wait for them. A wait longer than ``max_wait_s`` is
        not made: the reservation is given back and the ticket says ``over_budget`` (the caller
        sends the request now, and ARM may answer 429, or does not send it)."""
        subscription, namespace = scope_of(url)
        wanted = request_class(method)
        with self._lock:
            now = self._clock()
            buckets = [self._bucket((subscription, wanted), ARM_BUDGETS[wanted], now)]
            if wanted != READS and namespace.lower() == NETWORK.lower():
                buckets.append(self._bucket((subscription, NETWORK), NETWORK_BUDGET, now))
            wait = max(bucket.reserve(now) for bucket in buckets)
            if wait > max_wait_s:
                for bucket in buckets:
                    bucket.release(now)
                return Ticket((), wanted, over_budget=True)
        if wait > 0:
            self._sleep(wait)
        return Ticket(tuple(buckets), wanted)

    def after(
        self, ticket: Ticket, status: int | None, headers: Mapping[str, str], message: str = ""
    ) -> None:
        """The request's answer (``status`` None: none came; ``message``: a 429's body)."""
        if not ticket.buckets:
            return
        own = _count(headers, _OWN.format(ticket.request_class))
        shared = _count(headers, _GLOBAL.format(ticket.request_class))
        retry_after = _retry_after(headers) if status == 429 else None
        # Which budget refused a 429: Microsoft.Network's names the provider; ARM's own buckets
        # answer with nothing left in the caller's bucket, where that count is sent.
        by_provider = retry_after is not None and (
            NETWORK.lower() in message.lower() or (own is not None and own > 0)
        )
        with self._lock:
            now = self._clock()
            arm, *network = ticket.buckets
            if status is None:  # no answer: whether ARM counted it, a later header tells
                arm.release(now)
            else:
                arm.answered(now, own, shared, None if by_provider else retry_after)
            for bucket in network:  # no remaining count is sent for Microsoft.Network's budget
                bucket.answered(now, retry_after_s=retry_after if by_provider else None)


def _count(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.strip().isdigit() else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the SDK's retry policy waits for it


_PACERS: dict[str, Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(endpoint: str) -> Pacer:
    """The process's one pacer per ARM endpoint: every gateway in it spends the same budgets."""
    key = endpoint.rstrip("/").lower()
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = Pacer()
        return pacer
