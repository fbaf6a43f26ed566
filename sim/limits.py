"""ARM's request throttling: token buckets per subscription and principal, and Microsoft.Network's.

A remediator that reconciles a large estate runs into ARM's limits long before
it runs into anything else, and its retry behaviour is only tested if
something says no. Azure Resource Manager documents a token bucket algorithm
(learn.microsoft.com, "Understand how Azure Resource Manager throttles
requests"): per subscription and principal, reads 250 burst refilled 25 per
second, writes 200 refilled 10 per second, deletes 200 refilled 10 per second;
every answer carries `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`,
and a request over the limit is answered 429 with `Retry-After` and the code
`SubscriptionRequestsThrottled` (the wording below is the one real ARM answers
with, as quoted in public client logs). Microsoft.Network adds its own limit of
1,000 writes per 5 minutes per subscription.

Time here is simulated time: real monotonic time multiplied by the simulator's
time scale, so a test at scale 10 sees the same refill in a tenth of the time.
How many 429s a run meets from the buckets alone depends on how fast the machine
sends, so `Throttle.throttle_next` forces the next N requests of one principal
and class to be answered as an empty bucket answers, whatever the clock says.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sim.errors import ArmError


class RequestClass(StrEnum):
    """ARM's three buckets; the value is the suffix of its `x-ms-ratelimit-remaining-*` header."""

    READ = "reads"
    WRITE = "writes"
    DELETE = "deletes"

    @classmethod
    def of(cls, method: str) -> RequestClass:
        if method.upper() in ("GET", "HEAD"):
            return cls.READ
        if method.upper() == "DELETE":
            return cls.DELETE
        return cls.WRITE

    @property
    def verb(self) -> str:
        """How ARM names the class in its 429 message: 'read', 'write', 'delete'."""
        return self.value[:-1]


@dataclass(frozen=True)
class BucketSpec:
    capacity: float
    refill_per_s: float


ARM_BUCKETS: dict[RequestClass, BucketSpec] = {
    RequestClass.READ: BucketSpec(250, 25),
    RequestClass.WRITE: BucketSpec(200, 10),
    RequestClass.DELETE: BucketSpec(200, 10),
}
NETWORK_WRITES = BucketSpec(1000, 1000 / 300)
NETWORK_WINDOW = "00:05:00"


class TokenBucket:
    """A bucket that starts full and refills continuously up to its capacity."""

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = spec.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        elapsed = max(now - self.stamp, 0.0)
        self.tokens = min(self.spec.capacity, self.tokens + elapsed * self.spec.refill_per_s)
        self.stamp = now

    def wait_s(self) -> float:
        """Simulated seconds until one token is available (0 if one is)."""
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.spec.refill_per_s


@dataclass(frozen=True)
class Admission:
    """The throttle's verdict on one request, and the header every answer carries."""

    request_class: RequestClass
    remaining: int
    error: ArmError | None = None

    @property
    def header(self) -> tuple[str, str]:
        return f"x-ms-ratelimit-remaining-subscription-{self.request_class.value}", str(self.remaining)


def principal_of(claims: dict[str, Any], authorization: str) -> tuple[str, str]:
    """(bucket key, actor as ARM names it): the token's appid or oid; a digest for opaque tokens."""
    oid = claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier") or claims.get("oid")
    appid = claims.get("appid") or claims.get("azp")
    if appid or oid:
        return str(appid or oid), str(oid or appid)
    digest = hashlib.sha256(authorization.encode("utf-8")).hexdigest()[:16]
    return f"token-{digest}", f"token-{digest}"


def retry_after_header(wait_sim_s: float, time_scale: float) -> str:
    """ARM rounds up to whole seconds; the simulator then divides them by its time scale."""
    whole = max(math.ceil(wait_sim_s), 1)
    if time_scale == 1:
        return str(whole)
    return f"{whole / time_scale:.3f}".rstrip("0").rstrip(".")


class Throttle:
    """All buckets of one simulator. Thread-safe."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, RequestClass], TokenBucket] = {}
        self._network: dict[str, TokenBucket] = {}
        # Forced 429s still to answer, by (subscription or None for all, principal, class).
        self._forced: dict[tuple[str | None, str, RequestClass], int] = {}

    def now(self) -> float:
        """Simulated seconds."""
        return time.monotonic() * self.time_scale

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._network.clear()
            self._forced.clear()

    def throttle_next(
        self, principal: str, request_class: RequestClass | str, count: int, subscription: str | None = None
    ) -> None:
        """Answer the next `count` requests of this class by this principal 429, as an empty bucket does.

        `principal` is the bucket key (`principal_of`: the token's appid, else oid); `subscription`
        None means in any subscription. After them the request's bucket is empty (0 tokens, stamped
        at the last one) and refills at its normal rate. A later call replaces the count.
        """
        try:
            wanted = RequestClass(request_class)
        except ValueError:
            names = ", ".join(repr(c.value) for c in RequestClass)
            raise ValueError(f"request_class must be one of {names}, not {request_class!r}") from None
        if count < 0:
            raise ValueError("count must not be negative")
        key = (subscription.lower() if subscription is not None else None, principal.lower(), wanted)
        with self._lock:
            if count:
                self._forced[key] = count
            else:
                self._forced.pop(key, None)

    def _take_forced(self, subscription: str, principal: str, request_class: RequestClass) -> bool:
        """Use up one forced 429 for this request, if one is due (lock held)."""
        for key in ((subscription, principal, request_class), (None, principal, request_class)):
            left = self._forced.get(key, 0)
            if left > 0:
                if left == 1:
                    del self._forced[key]
                else:
                    self._forced[key] = left - 1
                return True
        return False

    def admit(
        self, *, subscription: str, principal: str, actor: str, method: str, network_write: bool
    ) -> Admission:
        """Take a token for this request, or say why not (a 429 with Retry-After)."""
        request_class = RequestClass.of(method)
        now = self.now()
        with self._lock:
            key = (subscription.lower(), principal.lower(), request_class)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(ARM_BUCKETS[request_class], now)
            bucket.refill(now)
            if self._take_forced(key[0], key[1], request_class):
                bucket.tokens, bucket.stamp = 0.0, now
                one_token = 1 / bucket.spec.refill_per_s
                return Admission(
                    request_class, 0, self._arm_error(subscription, actor, request_class, one_token)
                )
            network: TokenBucket | None = None
            if network_write:
                network = self._network.get(subscription.lower())
                if network is None:
                    network = self._network[subscription.lower()] = TokenBucket(NETWORK_WRITES, now)
                network.refill(now)
            if bucket.tokens < 1:
                return Admission(
                    request_class, 0, self._arm_error(subscription, actor, request_class, bucket.wait_s())
                )
            if network is not None and network.tokens < 1:
                return Admission(
                    request_class, int(bucket.tokens), self._network_error(subscription, network.wait_s())
                )
            bucket.tokens -= 1
            if network is not None:
                network.tokens -= 1
            return Admission(request_class, int(bucket.tokens))

    def _arm_error(self, subscription: str, actor: str, request_class: RequestClass, wait: float) -> ArmError:
        retry_after = retry_after_header(wait, self.time_scale)
        whole = max(math.ceil(wait), 1)
        scope = f"subscription '{subscription}'" if subscription else "tenant"
        code = "SubscriptionRequestsThrottled" if subscription else "TenantRequestsThrottled"
        return ArmError(
            429,
            code,
            f"Number of '{request_class.verb}' requests for {scope} actor '{actor}' exceeded. "
            f"Please try again after '{whole}' seconds after additional tokens are available. "
            "Refer to https://aka.ms/arm-throttling for additional information.",
            headers={"Retry-After": retry_after},
        )

    def _network_error(self, subscription: str, wait: float) -> ArmError:
        retry_after = retry_after_header(wait, self.time_scale)
        whole = max(math.ceil(wait), 1)
        return ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of write requests for subscription '{subscription}' and resource provider "
            f"'Microsoft.Network' exceeded the limit of '{int(NETWORK_WRITES.capacity)}' for time "
            f"interval '{NETWORK_WINDOW}'. Please try again after '{whole}' seconds.",
            headers={"Retry-After": retry_after},
        )
