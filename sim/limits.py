"""ARM's request throttling: token buckets per subscription and principal, and Microsoft.Network's.

A remediator that reconciles a large estate runs into ARM's limits long before
it runs into anything else, and its retry behaviour is only tested if
something says no. What ARM documents (the buckets' sizes, the 429's wording,
the `x-ms-ratelimit-remaining-*` headers) is in sim/arm_limits.py; `Throttle` here
keeps the buckets of one simulator and admits each request, or answers it 429
with `Retry-After`.

Time here is simulated time: real monotonic time multiplied by the simulator's
time scale, so a test at scale 10 sees the same refill in a tenth of the time.
How many 429s a run meets from the buckets alone depends on how fast the machine
sends, so a test can make it exact: `Throttle.throttle_next` forces the next N
requests of one principal and class to be answered as an empty bucket answers,
`set_bucket` / `set_network_budget` set a bucket's level, and `freeze_refill`
stops every bucket refilling until it is thawed (the frozen time is left out of
simulated time, so nothing refills for it afterwards either).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.arm_limits import (
    ARM_BUCKETS,
    GLOBAL_BUCKETS,
    NETWORK_WINDOW,
    NETWORK_WRITES,
    RequestClass,
    remaining_headers,
)
from sim.buckets import BucketSpec, TokenBucket, retry_after_header
from sim.compute_limits import ComputeLimits
from sim.errors import ArmError

# Re-exported: code outside sim/ imports them from here (bench/storms.py: ARM_BUCKETS, NETWORK_WRITES,
# RequestClass).
__all__ = [
    "ARM_BUCKETS",
    "NETWORK_WRITES",
    "BucketSpec",
    "RequestClass",
    "Throttle",
    "TokenBucket",
    "retry_after_header",
]


@dataclass(frozen=True)
class Admission:
    """The throttle's verdict on one request, and the headers every answer to it carries."""

    request_class: RequestClass
    headers: dict[str, str] = field(default_factory=dict)
    error: ArmError | None = None


def _checked_level(tokens: float, spec: BucketSpec) -> float:
    if not 0 <= tokens <= spec.capacity:
        raise ValueError(
            f"tokens must be between 0 and the bucket's capacity {spec.capacity:g}, not {tokens}"
        )
    return float(tokens)


class Throttle:
    """All buckets of one simulator. Thread-safe.

    Buckets are keyed by lower-cased subscription ("" for requests without one) and principal;
    the global ones by subscription alone. A bucket is made full on first use, unless
    `set_bucket` without a subscription said at which level that principal's buckets start.
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        principal_headers: bool = False,
    ) -> None:
        self.time_scale = time_scale
        self.principal_headers = principal_headers
        self._clock = clock  # real seconds
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, RequestClass], TokenBucket] = {}
        self._global: dict[tuple[str, RequestClass], TokenBucket] = {}
        self._network: dict[str, TokenBucket] = {}
        # Levels (tokens, stamp) set for a principal's buckets in every subscription, for those not made yet.
        self._templates: dict[tuple[str, RequestClass], tuple[float, float]] = {}
        # Forced 429s still to answer, by (subscription or None for all, principal, class).
        self._forced: dict[tuple[str | None, str, RequestClass], int] = {}
        self._paused_s = 0.0  # simulated seconds spent frozen, left out of the clock
        self._frozen_at: float | None = None
        # Microsoft.Compute's own policies, on the same (freezable) clock.
        self.compute = ComputeLimits(self.now, time_scale)

    def now(self) -> float:
        """Simulated seconds (standing still while refill is frozen)."""
        with self._lock:
            return self._now()

    def _now(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._clock() * self.time_scale - self._paused_s

    def reset(self) -> None:
        """Forget every bucket, level, forced answer, and a freeze."""
        with self._lock:
            self._buckets.clear()
            self._global.clear()
            self._network.clear()
            self._templates.clear()
            self._forced.clear()
            self._thaw()
        self.compute.reset()

    # ------------------------------------------------------------------ what tests set

    def freeze_refill(self, frozen: bool = True) -> None:
        """Stop (or with False, restart) every bucket's refill; the frozen time never refills."""
        with self._lock:
            if frozen and self._frozen_at is None:
                self._frozen_at = self._now()
            elif not frozen:
                self._thaw()

    def _thaw(self) -> None:
        if self._frozen_at is not None:
            self._paused_s = self._clock() * self.time_scale - self._frozen_at
            self._frozen_at = None

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None

    def set_bucket(
        self,
        principal: str | None,
        request_class: RequestClass | str,
        tokens: float,
        subscription: str | None = None,
    ) -> None:
        """Set a bucket's level to exactly `tokens` now; it refills at its normal rate from there.

        principal None: the subscription's global bucket (a subscription is then required).
        subscription None: the principal's bucket of this class in every subscription, those it
        has used and those it uses later (which start from this level, refilled since).
        """
        wanted = RequestClass.named(request_class)
        with self._lock:
            now = self._now()
            if principal is None:
                if subscription is None:
                    raise ValueError("the global bucket is a subscription's: name the subscription")
                spec = GLOBAL_BUCKETS[wanted]
                self._global_bucket(subscription.lower(), wanted, now).set(_checked_level(tokens, spec), now)
                return
            level = _checked_level(tokens, ARM_BUCKETS[wanted])
            who = principal.lower()
            if subscription is not None:
                self._bucket(subscription.lower(), who, wanted, now).set(level, now)
                return
            self._templates[(who, wanted)] = (level, now)
            for (_, owner, kind), bucket in self._buckets.items():
                if owner == who and kind is wanted:
                    bucket.set(level, now)

    def bucket_level(
        self, principal: str | None, request_class: RequestClass | str, subscription: str
    ) -> float:
        """Tokens in a bucket now (a bucket not used yet: full, or the level `set_bucket` gave it).

        principal None: the subscription's global bucket; subscription "": the tenant-level bucket.
        """
        wanted = RequestClass.named(request_class)
        with self._lock:
            now = self._now()
            if principal is None:
                return self._global_bucket(subscription.lower(), wanted, now).tokens
            return self._bucket(subscription.lower(), principal.lower(), wanted, now).tokens

    def set_network_budget(self, subscription: str, tokens: float) -> None:
        """Set the subscription's Microsoft.Network write budget to exactly `tokens` now."""
        with self._lock:
            now = self._now()
            self._network_bucket(subscription.lower(), now).set(_checked_level(tokens, NETWORK_WRITES), now)

    def network_budget(self, subscription: str) -> float:
        """Tokens left now in the subscription's Microsoft.Network write budget."""
        with self._lock:
            return self._network_bucket(subscription.lower(), self._now()).tokens

    def throttle_next(
        self, principal: str, request_class: RequestClass | str, count: int, subscription: str | None = None
    ) -> None:
        """Answer the next `count` requests of this class by this principal 429, as an empty bucket does.

        `principal` is the bucket key (`principal_of`: the token's appid, else oid); `subscription`
        None means in any subscription. After them the request's bucket is empty (0 tokens, stamped
        at the last one) and refills at its normal rate. A later call replaces the count.
        """
        wanted = RequestClass.named(request_class)
        if count < 0:
            raise ValueError("count must not be negative")
        key = (subscription.lower() if subscription is not None else None, principal.lower(), wanted)
        with self._lock:
            if count:
                self._forced[key] = count
            else:
                self._forced.pop(key, None)

    # ------------------------------------------------------------------ buckets (lock held)

    def _bucket(
        self, subscription: str, principal: str, request_class: RequestClass, now: float
    ) -> TokenBucket:
        """The principal's bucket, made on first use, refilled to `now`."""
        key = (subscription, principal, request_class)
        bucket = self._buckets.get(key)
        if bucket is None:
            template = self._templates.get((principal, request_class))
            spec = ARM_BUCKETS[request_class]
            if template is None:
                bucket = TokenBucket(spec, now)
            else:
                bucket = TokenBucket(spec, template[1], template[0])
            self._buckets[key] = bucket
        bucket.refill(now)
        return bucket

    def _global_bucket(self, subscription: str, request_class: RequestClass, now: float) -> TokenBucket:
        bucket = self._global.get((subscription, request_class))
        if bucket is None:
            bucket = self._global[(subscription, request_class)] = TokenBucket(
                GLOBAL_BUCKETS[request_class], now
            )
        bucket.refill(now)
        return bucket

    def _network_bucket(self, subscription: str, now: float) -> TokenBucket:
        bucket = self._network.get(subscription)
        if bucket is None:
            bucket = self._network[subscription] = TokenBucket(NETWORK_WRITES, now)
        bucket.refill(now)
        return bucket

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

    # ------------------------------------------------------------------ admission

    def admit(
        self, *, subscription: str, principal: str, actor: str, method: str, network_write: bool
    ) -> Admission:
        """Take a token for this request from each of its buckets, or say why not (a 429 with Retry-After)."""
        request_class = RequestClass.of(method)
        sub, who = subscription.lower(), principal.lower()
        with self._lock:
            now = self._now()
            bucket = self._bucket(sub, who, request_class, now)
            overall = self._global_bucket(sub, request_class, now) if sub else None
            if self._take_forced(sub, who, request_class):
                bucket.set(0.0, now)
                one_token = 1 / bucket.spec.refill_per_s
                forced = self._arm_error(subscription, actor, request_class, one_token)
                return Admission(
                    request_class,
                    remaining_headers(sub, request_class, bucket, overall, self.principal_headers),
                    forced,
                )
            network = self._network_bucket(sub, now) if network_write else None
            error: ArmError | None = None
            if bucket.tokens < 1:
                error = self._arm_error(subscription, actor, request_class, bucket.wait_s())
            elif overall is not None and overall.tokens < 1:
                error = self._global_error(subscription, request_class, overall.wait_s())
            elif network is not None and network.tokens < 1:
                error = self._network_error(subscription, network.wait_s())
            else:
                for taken in (bucket, overall, network):
                    if taken is not None:
                        taken.tokens -= 1
            return Admission(
                request_class,
                remaining_headers(sub, request_class, bucket, overall, self.principal_headers),
                error,
            )

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

    def _global_error(self, subscription: str, request_class: RequestClass, wait: float) -> ArmError:
        retry_after = retry_after_header(wait, self.time_scale)
        whole = max(math.ceil(wait), 1)
        return ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of '{request_class.verb}' requests for subscription '{subscription}' by all principals "
            f"exceeded the global subscription limit. Please try again after '{whole}' seconds after "
            "additional tokens are available. Refer to https://aka.ms/arm-throttling for additional "
            "information.",
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
