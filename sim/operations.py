"""How ARM answers a write it accepted: at once, or as a long-running operation to poll.

Calibrated against ARM traffic recorded from Azure (shared/fixtures/recorded-arm,
api-versions 2025-05-01 Network and 2025-04-01 Compute; tests/sim/test_sim_recorded_operations.py
replays each against the simulator):

| request | answer |
|---|---|
| NIC create (PUT) | 201, `Succeeded`, no operation (synchronous) |
| NIC update (PUT) | 200, `Succeeded`, no operation (the default; `nic_update_long_running`: 200 `Updating`) |
| public IP, virtual network create (PUT) | 201, `Updating`, `Azure-AsyncOperation` |
| scale set, VM create (PUT) | 201, `Creating`, `Azure-AsyncOperation`, `Etag` |
| scale set update (PUT; PATCH alike) | 200, `Updating`, `Azure-AsyncOperation`, `Etag` |
| DELETE (NIC, public IP, VM, scale set, instance) | 202 (a NIC 200 too), `Azure-AsyncOperation`, `Location` |

No `Retry-After` on any of them: the client polls at its own interval. Every long-running answer
also carries `Azure-AsyncNotification: Enabled`. The status URL is
`{endpoint}/subscriptions/{s}/providers/{namespace}/locations/{region}/operations/{id}`;
Network's `Location` is the same path under `operationResults`, Compute's is the status URL
with `monitor=true`. Network's status body is `{"status": ...}` only (with `error` when it
failed); Compute's also names the operation and its start and end times.

Which writes complete in the request is each resource type's `Behaviour.synchronous_put` /
`synchronous_delete` (sim/behaviour.py); this module is what the HTTP answer says about it, and
`OperationRoutes` serves the status URLs (`operations`, `operationResults`) that ArmApi routes here.
"""

from __future__ import annotations

import copy
from urllib.parse import quote

from sim import ids
from sim.admission import FrontDoor
from sim.api_messages import Response
from sim.documents import JsonDict
from sim.errors import ArmError
from sim.long_running import Operation, OperationStatus

COMPUTE = "microsoft.compute"


def announce(headers: dict[str, str], op: Operation, endpoint: str, api_version: str, method: str) -> None:
    """The headers of an accepted long-running write: where to poll it (no Retry-After)."""
    headers["Azure-AsyncOperation"] = operation_url(op, endpoint, api_version)
    headers["Azure-AsyncNotification"] = "Enabled"
    if method in ("DELETE", "POST"):
        headers["Location"] = operation_url(op, endpoint, api_version, results=True)


def operation_url(op: Operation, endpoint: str, api_version: str, *, results: bool = False) -> str:
    """Status URL; results=True: the Location URL (Network: operationResults; Compute: its status URL
    with `monitor=true`, as the recorded Compute answers give it, authorized as operations/read)."""
    subscription = ids.subscription_of(op.resource_id)
    compute = op.namespace.lower() == COMPUTE
    kind = "operationResults" if results and not compute else "operations"
    monitor = "&monitor=true" if results and compute else ""
    return (
        f"{endpoint}/subscriptions/{subscription}/providers/{op.namespace}/locations/"
        f"{quote(op.location)}/{kind}/{op.op_id}?api-version={quote(api_version)}{monitor}"
    )


def status_body(op: Operation) -> JsonDict:
    """What the status URL answers: Compute names the operation and its times, Network only its status."""
    if op.namespace.lower() == COMPUTE:
        return op.body()
    body: JsonDict = {"status": str(op.status)}
    if op.error is not None:
        body["error"] = copy.deepcopy(op.error)
    return body


def write_headers(headers: dict[str, str], resource_type: str, doc: JsonDict | None) -> None:
    """Compute answers a PUT or PATCH with the resource's `Etag` header; Network does not."""
    if doc is not None and resource_type.split("/", 1)[0].lower() == COMPUTE and doc.get("etag"):
        headers["ETag"] = str(doc["etag"])


class OperationRoutes(FrontDoor):
    """The status URLs of long-running operations, and announcing an accepted one."""

    def _announce(self, response: Response, op: Operation, api_version: str, method: str) -> None:
        announce(response.headers, op, self._endpoint(), api_version, method)

    def _operation(self, response: Response, op_id: str, status_endpoint: bool) -> None:
        op = self._store.operation(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"The operation '{op_id}' was not found.")
        if status_endpoint:
            response.body = status_body(op)
            return
        if op.status is OperationStatus.IN_PROGRESS:
            response.status = 202
            return
        if op.status is OperationStatus.FAILED:
            error = op.error or {}
            raise ArmError(500, str(error.get("code", "InternalServerError")), str(error.get("message", "")))
        doc = self._store.get(op.resource_id)
        if doc is None:
            response.status = 204
        else:
            response.body = doc
