"""ARM's documented request limits: its request classes, bucket sizes, and the headers that report them.

Azure Resource Manager documents a token bucket algorithm
(learn.microsoft.com, "Understand how Azure Resource Manager throttles
requests", section "Regional throttling and token bucket algorithm"): per
subscription and principal, reads 250 burst refilled 25 per second, writes 200
refilled 10 per second, deletes 200 refilled 10 per second; and, per operation
type, a global subscription limit of 15 times the single principal's, shared by
all principals. A request over a limit is answered 429 with `Retry-After` and
the code `SubscriptionRequestsThrottled` (the per-principal wording of sim/limits.py is the
one real ARM answers with, as quoted in public client logs; the global one is
the simulator's). Microsoft.Network adds its own limit of 1,000 writes per 5
minutes per subscription (the same article).

The headers that say what is left, on every answer ARM counted (2xx, 4xx
refusals such as a 412, and 429s; not on the gateway's 404 for a missing
resource, which carries `x-ms-failure-cause: gateway` instead):
- `x-ms-ratelimit-remaining-subscription-global-{reads|writes|deletes}`: the
  subscription's global bucket for the request's class. This is the one the ARM
  traffic recorded from Azure carries, on every counted answer
  (shared/fixtures/recorded-arm: 3749 reads, 2999 writes and deletes left, i.e.
  15 x 250 and 15 x 200 less one, in the Compute cassettes; subscriptions with
  raised limits show more, 16,499 and 11,999 in the Network ones).
- `x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}`: the caller's
  own bucket. The article's "Remaining requests" table names it, and Microsoft's
  Azure PowerShell help for Invoke-AzRestMethod shows one GET answered with both
  (`...-subscription-reads: 249` beside `...-subscription-global-reads: 3749`),
  so both are sent; the recordings do not carry it.
- `x-ms-ratelimit-remaining-tenant-{reads|writes|deletes}` instead of both for
  requests without a subscription (the article's table: tenant scoped requests).
Only the class of the request itself is reported, as ARM does.

The buckets themselves, and the 429s, are sim/limits.py's (`Throttle`).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from sim.buckets import BucketSpec, TokenBucket


class RequestClass(StrEnum):
    """ARM's three buckets; the value is the suffix of its `x-ms-ratelimit-remaining-*` headers."""

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

    @classmethod
    def named(cls, value: RequestClass | str) -> RequestClass:
        """The class called `value` ("reads", "writes" or "deletes"); ValueError otherwise."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(c.value) for c in cls)
            raise ValueError(f"request_class must be one of {names}, not {value!r}") from None

    @property
    def verb(self) -> str:
        """How ARM names the class in its 429 message: 'read', 'write', 'delete'."""
        return self.value[:-1]


ARM_BUCKETS: dict[RequestClass, BucketSpec] = {
    RequestClass.READ: BucketSpec(250, 25),
    RequestClass.WRITE: BucketSpec(200, 10),
    RequestClass.DELETE: BucketSpec(200, 10),
}
# The global subscription limit: 15 times a single principal's, shared by every principal.
GLOBAL_FACTOR = 15
GLOBAL_BUCKETS: dict[RequestClass, BucketSpec] = {
    request_class: BucketSpec(spec.capacity * GLOBAL_FACTOR, spec.refill_per_s * GLOBAL_FACTOR)
    for request_class, spec in ARM_BUCKETS.items()
}
NETWORK_WRITES = BucketSpec(1000, 1000 / 300)
NETWORK_WINDOW = "00:05:00"


def global_header(request_class: RequestClass) -> str:
    """`x-ms-ratelimit-remaining-subscription-global-{class}`: the subscription's global bucket."""
    return f"x-ms-ratelimit-remaining-subscription-global-{request_class.value}"


def principal_header(request_class: RequestClass) -> str:
    """`x-ms-ratelimit-remaining-subscription-{class}`: the caller's own bucket."""
    return f"x-ms-ratelimit-remaining-subscription-{request_class.value}"


def tenant_header(request_class: RequestClass) -> str:
    """`x-ms-ratelimit-remaining-tenant-{class}`: the caller's bucket for a request without a subscription."""
    return f"x-ms-ratelimit-remaining-tenant-{request_class.value}"


RATE_LIMIT_HEADER_PREFIX = "x-ms-ratelimit-"


def principal_of(claims: dict[str, Any], authorization: str) -> tuple[str, str]:
    """(bucket key, actor as ARM names it): the token's appid or oid; a digest for opaque tokens."""
    oid = claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier") or claims.get("oid")
    appid = claims.get("appid") or claims.get("azp")
    if appid or oid:
        return str(appid or oid), str(oid or appid)
    digest = hashlib.sha256(authorization.encode("utf-8")).hexdigest()[:16]
    return f"token-{digest}", f"token-{digest}"


def remaining_headers(
    subscription: str,
    request_class: RequestClass,
    bucket: TokenBucket,
    overall: TokenBucket | None,
    principal_headers: bool = False,
) -> dict[str, str]:
    """The rate-limit headers of one answer: whole tokens left in the request's buckets. The
    recordings (shared/fixtures/recorded-arm) carry only the subscription's global count, never the
    caller's own; ``principal_headers`` adds that one too (whether ARM sends it is a switch)."""
    if not subscription or overall is None:
        return {tenant_header(request_class): str(int(bucket.tokens))}
    headers = {global_header(request_class): str(int(overall.tokens))}
    if principal_headers:
        headers[principal_header(request_class)] = str(int(bucket.tokens))
    return headers


def gateway_not_found(status: int, code: str, headers: dict[str, str]) -> None:
    """ARM's gateway answers a missing resource or group itself: with `x-ms-failure-cause: gateway`
    and none of the rate-limit headers (every such 404 in shared/fixtures/recorded-arm)."""
    if status != 404 or code not in ("ResourceNotFound", "ResourceGroupNotFound"):
        return
    for name in [n for n in headers if n.lower().startswith(RATE_LIMIT_HEADER_PREFIX)]:
        del headers[name]
    headers["x-ms-failure-cause"] = "gateway"
