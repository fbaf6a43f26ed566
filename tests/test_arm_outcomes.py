"""Specification of what a write's answers say: given every attempt the SDK made (its retries
included) and the error it ended with, the write is refused, a conflict, or its outcome unknown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.polling.base_polling import BadStatus, OperationFailed

from remediation.arm_errors import ArmError, OutcomeUnknown, PreconditionFailed, write_error


class Answer:
    """Just enough of an HTTP response for azure-core to build its error from ARM's body."""

    def __init__(self, status: int, code: str) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers = {"x-ms-request-id": "request-1"}
        self.content_type = "application/json"
        self._body = json.dumps({"error": {"code": code, "message": f"{code} happened"}})

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def json(self) -> Any:
        return json.loads(self._body)


def http_error(status: int, code: str, inner: Exception | None = None) -> HttpResponseError:
    return HttpResponseError(response=Answer(status, code), error=inner)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempts", "error", "kind", "says"),
    [
        # Refused outright: ARM did nothing.
        ([400], http_error(400, "InvalidParameter"), ArmError, "InvalidParameter happened"),
        ([429, 429, 429], http_error(429, "SubscriptionRequestsThrottled"), ArmError, "Throttled"),
        ([403], http_error(403, "LinkedAuthorizationFailed"), ArmError, "LinkedAuthorizationFailed"),
        ([412], http_error(412, "PreconditionFailed"), PreconditionFailed, "PreconditionFailed"),
        # Our own first attempt may have applied: the retry's refusal proves nothing.
        ([None, 412], http_error(412, "PreconditionFailed"), OutcomeUnknown, "earlier attempt"),
        ([500, 412], http_error(412, "PreconditionFailed"), OutcomeUnknown, "earlier attempt"),
        ([503, 409], http_error(409, "AnotherOperationInProgress"), OutcomeUnknown, "earlier attempt"),
        # A 5xx may come after the work.
        ([500, 500], http_error(500, "InternalServerError"), OutcomeUnknown, "InternalServerError"),
        # Accepted, then its completion could not be read, or its operation reported Failed.
        ([201], http_error(429, "Throttled", BadStatus("429")), OutcomeUnknown, "could not be read"),
        (
            [202],
            http_error(500, "Failed", OperationFailed("failed")),
            OutcomeUnknown,
            "reported its operation Failed",
        ),
        # No answer at all.
        ([None, None], ServiceResponseError("Connection aborted."), OutcomeUnknown, "answer was lost"),
        ([None], ServiceRequestError("Connection refused."), OutcomeUnknown, "answer was lost"),
    ],
)
def test_a_writes_answers_tell_refused_conflict_or_unknown(
    attempts: list[int | None], error: Exception, kind: type[ArmError], says: str
) -> None:
    judged = write_error(error, attempts)
    assert type(judged) is kind
    assert says in str(judged)


@pytest.mark.parametrize(
    ("status", "stands"),
    [
        (400, True),
        (403, True),
        (404, True),
        (401, False),
        (408, False),
        (409, False),
        (412, False),
        (429, False),
    ],
)
def test_only_refusals_that_asking_again_cannot_change_stand(status: int, stands: bool) -> None:
    """A standing refusal is recorded and the event answered; any other is raised and redelivered
    (a 412 after the re-plans ran out, an expired token, throttling)."""
    assert ArmError(status, "Code", "message").refused is stands
    assert not PreconditionFailed(412, "PreconditionFailed", "gave up after 3 re-plans").refused
