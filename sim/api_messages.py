"""One request and its response as `ArmApi` sees them (no sockets), and the answers routes share.

A `Response` also says what the socket layer must do for an injected fault (sim/https_server.py
carries it out): wait, hold, or close the connection without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim.documents import JsonDict
from sim.errors import ArmError
from sim.faults import FaultKind


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received: datetime = field(default_factory=lambda: datetime.now(UTC))  # when it arrived


@dataclass
class Response:
    status: int
    body: JsonDict | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resource_type: str = ""
    operation: str = ""
    principal: str = ""
    # What the socket layer must do (faults): wait, then hold, then answer or close.
    delay_s: float = 0.0
    hold_s: float = 0.0
    close: bool = False  # close the connection instead of answering (after delay and hold)
    after_work: FaultKind = FaultKind.NONE  # an after-work fault to apply once the work is done


def operation_name(resource_type: str, method: str) -> str:
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "action")
    return f"{resource_type}/{verb}"


class Dropped(Exception):
    """An injected dropped connection: no work, no answer."""


def injected_failure() -> ArmError:
    return ArmError(
        500,
        "InternalExecutionError",
        "An internal execution error occurred. Please retry later (injected fault).",
    )


def api_version_of(query: dict[str, str]) -> str:
    api_version = query.get("api-version")
    if not api_version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    return api_version


def method_not_allowed(method: str) -> ArmError:
    return ArmError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported for this path.")
