"""ARM error responses as exceptions.

Every refusal the simulator gives has to reach the client in ARM's wire shape
(`{"error": {"code", "message", "details"}}` plus the right status), because the
Azure SDK turns exactly that into `HttpResponseError.error.code`, and the code
under test branches on those codes. Raising one exception type from anywhere in
the store and rendering it in one place keeps the shape identical everywhere.
"""

from __future__ import annotations

import json
from typing import Any

from sim.ids import ResourceRef


class ArmError(Exception):
    """A request ARM would refuse: HTTP status, ARM error code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = dict(headers or {})
        self.details = list(details or [])

    def body(self) -> dict[str, Any]:
        """The JSON body ARM sends with this error (valid for both CRP and NRP schemas)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": self.details}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (an empty body is ``{}``); 400 otherwise."""
    try:
        body = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: {exc}",
        ) from exc
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def not_found(ref: ResourceRef) -> ArmError:
    """404 for a missing top-level resource: ARM's own answer, the same for every resource provider
    (shared/fixtures/recorded-arm: Compute and Network alike; NRP's `NotFound` is only for the
    children it serves inline, such as subnets and backend pools)."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{ref.resource_type}/{ref.name}' under resource group "
        f"'{ref.resource_group}' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix",
    )


def another_operation(resource_id: str) -> ArmError:
    """429 for a write that collides with a running operation: a lock, not throttling."""
    return ArmError(
        429,
        "RetryableErrorDueToAnotherOperation",
        f"Operation on resource {resource_id} cannot proceed because another operation "
        "is in progress on the same resource. Retry the request after some time.",
        headers={"Retry-After": "1"},
    )


def etag_mismatch(resource_id: str, given: str, current: str | None) -> ArmError:
    """412 for a failed If-Match: someone else changed the resource since it was read. Worded as
    each provider words it (shared/fixtures/recorded-arm): NRP's "Precondition failed." with a
    `PreconditionFailedEtagMismatch` detail naming its data store, CRP's one sentence."""
    if current is None:
        message = (
            f"Precondition failed: the If-Match header value {given} was specified but "
            f"resource {resource_id} does not exist."
        )
        return ArmError(412, "PreconditionFailed", message)
    if "/providers/microsoft.network/" in resource_id.lower():
        detail = (
            f"Etag provided in if-match header {given} does not match etag {current} of resource "
            f"{resource_id} in NRP data store."
        )
        return ArmError(
            412,
            "PreconditionFailed",
            "Precondition failed.",
            details=[{"code": "PreconditionFailedEtagMismatch", "message": detail}],
        )
    return ArmError(
        412,
        "PreconditionFailed",
        f"Etag provided in if-match header {given} does not match etag {current} of resource.",
    )


def already_exists(resource_id: str) -> ArmError:
    """412 for `If-None-Match: *` on a resource that exists."""
    return ArmError(
        412,
        "PreconditionFailed",
        f"Precondition failed: If-None-Match: * was specified but resource {resource_id} already exists.",
    )


def invalid_reference(referenced: str, referrer: str) -> ArmError:
    """400 InvalidResourceReference: a body names a resource that does not exist (or is going)."""
    return ArmError(
        400,
        "InvalidResourceReference",
        f"Resource {referenced} referenced by resource {referrer} was not found. Please make sure that "
        "the referenced resource exists, and that both resources are in the same region.",
    )


def invalid_parameter(message: str, target: str | None = None) -> ArmError:
    """400 InvalidParameter, the usual code for a bad request body or query."""
    return ArmError(400, "InvalidParameter", message, target=target)
