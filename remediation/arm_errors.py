"""What ARM's answers say about a request, as the project's own errors (``arm`` raises them).

A read either answers or fails. A write can also end without saying whether it applied, and the
audit log must not guess: a dropped connection or a read timeout loses the answer; a 5xx may come
after the work was done; a retry of a write whose first attempt was lost or answered 5xx may meet
our own applied write (a 412, or a 409 because it is still in progress); and a write ARM accepted
(201/202) may fail to report its completion (a lost or throttled poll) or report its operation
Failed after changing the resource. All of these are ``OutcomeUnknown``: the caller records
``unknown`` and the set's next reconcile reads what ARM shows. Only a refusal whose every earlier
attempt was refused too is ``failed`` (a 412 alone: ``PreconditionFailed``).

The SDK retries inside its pipeline, out of the caller's sight, so a per-retry pipeline policy
notes the status of every attempt of the write being made (``AttemptLog``; one per client, since
a pipeline binds its policies to itself) and ``write_error`` judges from all of them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

R = TypeVar("R")


# Refusals that asking again soon may change: an expired or not yet valid token (401), a timeout, a
# conflict with an operation in progress, a changed etag (412: re-read and re-planned), throttling.
# Any other 4xx (403 AuthorizationFailed, 400 InvalidParameter, 404) stands until something else
# changes (the role, the resource): retrying it is a loop, not a remedy.
_PASSING_REFUSALS = frozenset({401, 408, 409, 412, 429})


class ArmError(Exception):
    """ARM refused a request; ``code`` is ARM's error code (e.g. PublicIPAddressCannotBeDeleted)."""

    def __init__(self, status: int | None, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"ARM {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def refused(self) -> bool:
        """ARM said no for a reason that will stand: record it, do not retry it (the set's next
        reconcile tries again, once the role or the resource may have changed)."""
        status = self.status or 0
        return type(self) is ArmError and 400 <= status < 500 and status not in _PASSING_REFUSALS


class PreconditionFailed(ArmError):
    """412: the resource's etag changed since we read it."""


class OutcomeUnknown(ArmError):
    """ARM may or may not have applied the write: its answers do not say (see the module docstring)."""


# The status of every attempt of the write being made in this context (None: no answer came).
# LRO polls (GETs) are not attempts of the write.
_ATTEMPTS: contextvars.ContextVar[list[int | None] | None] = contextvars.ContextVar(
    "arm_write_attempts", default=None
)


def attempt_log() -> Any:
    """A new per-retry pipeline policy noting each write attempt's status (one per client)."""
    from azure.core.exceptions import AzureError
    from azure.core.pipeline.policies import HTTPPolicy

    class AttemptLog(HTTPPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            attempts = _ATTEMPTS.get()
            if attempts is None or request.http_request.method.upper() == "GET":
                return self.next.send(request)
            try:
                response = self.next.send(request)
            except AzureError:
                attempts.append(None)
                raise
            attempts.append(response.http_response.status_code)
            return response

    return AttemptLog()


def attempted(call: Callable[[], R]) -> R:
    """Run one write with its attempts noted; its failure becomes what the answers tell."""
    from azure.core.exceptions import AzureError

    attempts: list[int | None] = []
    token = _ATTEMPTS.set(attempts)
    try:
        return call()
    except AzureError as error:
        raise write_error(error, attempts) from error
    finally:
        _ATTEMPTS.reset(token)


def arm_error(error: Exception) -> ArmError:
    """A read's (or a definitive refusal's) error, with ARM's status, code, message and request id."""
    from azure.core.exceptions import HttpResponseError

    if not isinstance(error, HttpResponseError):  # no answer: a dropped connection, a timeout
        return ArmError(None, type(error).__name__, str(error))
    status = error.status_code
    code = ""
    message = error.message or str(error)
    if error.error is not None:
        code = error.error.code or ""
        message = error.error.message or message
    response: Any = error.response
    request_id = ""
    if response is not None:
        request_id = response.headers.get("x-ms-request-id", "")
        if not code:
            try:
                code = str(response.json().get("error", {}).get("code", ""))
            except (ValueError, AttributeError):
                code = ""
    kind = PreconditionFailed if status == 412 else ArmError
    return kind(status, code or str(status), message, request_id)


def write_error(error: Exception, attempts: Sequence[int | None]) -> ArmError:
    """What a failed write's answers tell: refused (``ArmError``), 412, or ``OutcomeUnknown``.

    ``attempts``: the status of each attempt, oldest first (None: no answer); the last is the one
    that ended in ``error``, unless the error came after ARM accepted the write (a poll's).
    """
    from azure.core.exceptions import HttpResponseError
    from azure.core.polling.base_polling import OperationFailed

    if not isinstance(error, HttpResponseError):
        return OutcomeUnknown(None, type(error).__name__, f"the write's answer was lost: {error}")
    known = arm_error(error)
    if any(status is not None and 200 <= status < 300 for status in attempts):
        what = (
            "reported its operation Failed (what it changed is read by the next reconcile)"
            if isinstance(error.inner_exception, OperationFailed)
            else "then its completion could not be read"
        )
        return OutcomeUnknown(
            known.status, known.code, f"ARM accepted the write, {what}: {known.message}", known.request_id
        )
    earlier_unclear = any(status is None or status >= 500 for status in attempts[:-1])
    if (known.status or 0) >= 500 or earlier_unclear:
        after = " (after an earlier attempt whose answer was lost or 5xx)" if earlier_unclear else ""
        return OutcomeUnknown(known.status, known.code, known.message + after, known.request_id)
    return known
