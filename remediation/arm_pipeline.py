"""The gateway's HTTP pipeline (arm.py): each request paced in ARM's budgets, each answer's
``Date`` kept, and a connection pool sized for the writes an invocation sends at once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from remediation.pacing import Pacer

# Connections kept open per client: an invocation runs 16 writes and their polls at once, and a
# host several invocations; the transport's default pool (10) drops the rest after each use, and
# every request past it pays a new TLS handshake.
POOL_CONNECTIONS = 64


def pacing_policy(pacer: Pacer, max_wait_s: float) -> Any:
    """A per-retry pipeline policy that waits each request's turn in ARM's budgets (pacing.py). A
    read with no token within ``max_wait_s`` is not sent: it could only be answered 429 (intake
    then hands its event to the work queue, whose worker waits its turn); a write is sent."""
    from azure.core.exceptions import AzureError, ServiceRequestError
    from azure.core.pipeline.policies import HTTPPolicy

    class PacingPolicy(HTTPPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            http = request.http_request
            ticket = pacer.before(http.method, http.url, max_wait_s)
            if ticket.over_budget and http.method.upper() in ("GET", "HEAD"):
                raise ServiceRequestError(
                    f"not sent: ARM's read budget has no token for it within {max_wait_s:g} s"
                )
            try:
                response = self.next.send(request)
            except AzureError:
                pacer.after(ticket, None, {})
                raise
            answer = response.http_response
            message = ""
            if answer.status_code == 429:
                try:  # which budget refused it is in the message
                    message = answer.text()
                except Exception:  # noqa: BLE001 - a body that cannot be read names no provider
                    message = ""
            pacer.after(ticket, answer.status_code, answer.headers, message)
            return response

    return PacingPolicy()


# The ``Date`` of the last answer ARM gave on this thread (``ArmGateway.served``).
answered = threading.local()


def answer_date_policy() -> Any:
    """A per-retry pipeline policy that keeps each answer's ``Date`` header for ``ArmGateway.served``."""
    from azure.core.pipeline.policies import HTTPPolicy

    class AnswerDatePolicy(HTTPPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            response = self.next.send(request)
            answered.date = response.http_response.headers.get("Date")
            return response

    return AnswerDatePolicy()


def pooled_transport(connection: Mapping[str, Any]) -> Any:
    """The SDK's requests transport with a larger pool; ``connection``: its timeouts and CA."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("https://", HTTPAdapter(pool_maxsize=POOL_CONNECTIONS))
    return RequestsTransport(session=session, session_owner=True, **connection)
