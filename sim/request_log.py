"""The request log: one `RequestRecord` per served request, and what is counted from it.

The store keeps the records (sim/store.py); tests and benchmarks read them through
`ArmSimulator.requests()`, and `counters` / `record_json` are what `/_sim/counters` and
`/_sim/requests` serve (sim/arm_api.py) and `ArmSimulator.counters()` returns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sim.documents import JsonDict

# The methods of a write, as `ArmSimulator.write_count` counts them (sim/observation.py).
WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})

_UNSET_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for counters and assertions.

    received: when the request arrived, before admission (throttling, faults) or any work;
    time: when it was answered (recorded). A record built without `received` gets `time`.
    """

    method: str
    path: str
    resource_type: str
    operation: str
    status: int  # 0: the connection was closed without an answer (an injected drop)
    time: datetime
    error_code: str = ""
    principal: str = ""
    # The client's x-ms-client-request-id: the SDK sends the same one on each retry of a call.
    client_request_id: str = ""
    received: datetime = _UNSET_TIME
    # What a write sent: its If-Match header and its body, as the server read them; and a Resource
    # Graph query's body (its scope, query and options: `$top`, `$skipToken`), so a reader of the log
    # sees which page each query asked for.
    if_match: str = ""
    body: bytes = b""
    # The query's $filter, as the server read it (a list of a scale set's VMs names the set there).
    filter: str = ""

    def __post_init__(self) -> None:
        if self.received == _UNSET_TIME:
            object.__setattr__(self, "received", self.time)


def harness_record(method: str, path: str, resource_type: str, status: int) -> RequestRecord:
    """The record of a change a test harness makes without HTTP (the PUT or DELETE it stands for,
    as a tenant's administrator would make it), answered now."""
    now = datetime.now(UTC)
    verb = "write" if method == "PUT" else "delete"
    return RequestRecord(
        method=method,
        path=path,
        resource_type=resource_type,
        operation=f"{resource_type}/{verb}",
        status=status,
        time=now,
        received=now,
    )


def counters(records: list[RequestRecord]) -> JsonDict:
    """Request counts by method, resource type, operation and status (what `/_sim/counters` serves)."""
    return {
        "total": len(records),
        "byMethod": dict(Counter(r.method for r in records)),
        "byResourceType": dict(Counter(r.resource_type or "(none)" for r in records)),
        "byOperation": dict(Counter(r.operation or "(none)" for r in records)),
        "byStatus": {str(k): v for k, v in Counter(r.status for r in records).items()},
        "byPrincipal": dict(Counter(r.principal or "(none)" for r in records)),
    }


def record_json(record: RequestRecord) -> JsonDict:
    return {
        "method": record.method,
        "path": record.path,
        "resourceType": record.resource_type,
        "operation": record.operation,
        "status": record.status,
        "errorCode": record.error_code,
        "principal": record.principal,
        "received": record.received.isoformat().replace("+00:00", "Z"),
        "clientRequestId": record.client_request_id,
        "time": record.time.isoformat().replace("+00:00", "Z"),
    }
