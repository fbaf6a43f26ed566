"""ARM's front door: who is calling, throttling, authorization and injected faults, before any work.

ARM's throttling (sim/limits.py; Microsoft.Compute's own policies after it,
sim/compute_limits.py), authorization (sim/authorization.py, in that order) and injected
faults (sim/faults.py) meet a request here, before any work is done; an after-work fault
replaces the answer once the work is done. `FrontDoor` holds what every route of `ArmApi`
(sim/arm_api.py) works with: the store, the endpoint, the throttle, the fault injector, the
request hooks, the authorizer, the access API, Event Grid's (sim/event_grid.py) and Microsoft.Management's
(sim/management_api.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim import compute_limits, ids
from sim.access_api import AccessApi
from sim.api_messages import Dropped, Request, Response
from sim.arm_limits import RATE_LIMIT_HEADER_PREFIX, principal_of
from sim.authorization import Authorizer, caller_of
from sim.documents import JsonDict
from sim.errors import ArmError
from sim.events import RequestContext, claims_from_authorization
from sim.faults import FaultInjector, FaultKind, internal_server_error
from sim.hooks import RequestHooks
from sim.ids import VMSS_TYPE
from sim.limits import Throttle
from sim.writes import WritableStore

if TYPE_CHECKING:
    from sim.event_grid import EventGridApi  # it imports sim.operations, which imports this module
    from sim.management_api import ManagementApi


class FrontDoor:
    """The base of ArmApi's routes: its collaborators, and the admission of each request."""

    def __init__(
        self,
        store: WritableStore,
        endpoint: Callable[[], str],
        *,
        throttle: Throttle | None = None,
        faults: FaultInjector | None = None,
        hooks: RequestHooks | None = None,
        authorizer: Authorizer | None = None,
        access: AccessApi | None = None,
        event_grid: EventGridApi | None = None,
        management: ManagementApi | None = None,
    ) -> None:
        self._store = store
        self._endpoint = endpoint
        self._throttle = throttle
        self._faults = faults or FaultInjector()
        self._hooks = hooks or RequestHooks()
        self._authorizer = authorizer
        self._access = access
        self._event_grid = event_grid
        self._management = management

    def _after_work(self, response: Response, subscription: str) -> None:
        """Replace the answer of work done with an injected 500 or drop; a refusal stays as it is."""
        if response.close or response.status >= 400:
            self._faults.withdraw(response.after_work)
            return
        # Only the front door's headers survive (the request ids are added after this).
        response.headers = {
            k: v for k, v in response.headers.items() if k.startswith(RATE_LIMIT_HEADER_PREFIX)
        }
        if response.after_work is FaultKind.DROP_AFTER_WORK:
            response.status, response.body, response.close = 0, None, True
            return
        err = internal_server_error(subscription)
        response.status, response.body = err.status, err.body()

    # ------------------------------------------------------------------ admission

    def _admit(
        self, request: Request, path: str, response: Response, namespace: str, correlation: str
    ) -> RequestContext:
        """Authenticate, throttle, authorize and decide faults; returns the caller's context for events."""
        _authenticate(request)
        authorization = request.headers.get("authorization", "")
        claims = claims_from_authorization(authorization)
        principal, actor = principal_of(claims, authorization)
        response.principal = principal
        if self._throttle is not None:
            admission = self._throttle.admit(
                subscription=ids.subscription_of(path),
                principal=principal,
                actor=actor,
                method=request.method,
                network_write=namespace.lower() == "microsoft.network" and request.method != "GET",
            )
            response.headers.update(admission.headers)
            if admission.error is not None:
                raise admission.error
        if self._authorizer is not None:
            self._authorizer.check(request.method, path, request.body, caller_of(claims, authorization))
        if self._throttle is not None:
            self._compute_admission(request, path, response)
        decision = self._faults.decide(request.method, response.resource_type)
        scale = self._store.settings.time_scale
        response.delay_s = decision.latency_s / scale
        faults = self._faults.faults
        if decision.kind is FaultKind.ERROR_500:
            raise internal_server_error(ids.subscription_of(path))
        if decision.kind is FaultKind.ERROR_503:
            retry = faults.retry_after_503_s if faults is not None else 1
            raise ArmError(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry the request (injected fault).",
                headers={"Retry-After": _seconds(retry / scale)},
            )
        if decision.kind is FaultKind.DROP:
            response.close = True
            raise Dropped
        if decision.kind is FaultKind.TIMEOUT and faults is not None:
            response.hold_s = faults.timeout_hold_s / scale
            response.close = faults.timeout_then_close
        if decision.kind.after_work:
            response.after_work = decision.kind
        return RequestContext(
            method=request.method,
            url=f"{self._endpoint()}{request.target}",
            client_request_id=request.headers.get("x-ms-client-request-id", ""),
            correlation_id=correlation,
            claims=claims,
            fail_operation=decision.kind is FaultKind.LRO_FAILED,
        )

    def _compute_admission(self, request: Request, path: str, response: Response) -> None:
        """Microsoft.Compute's own policies (sim/compute_limits.py), after ARM let the request in."""
        assert self._throttle is not None
        batch = self._batch_charge(request, path, response.resource_type)
        counted = compute_limits.classify(request.method, path, response.resource_type, batch=batch)
        if counted is None:
            return
        admission = self._throttle.compute.admit(ids.subscription_of(path), counted)
        response.headers.update(admission.headers)
        if admission.error is not None:
            raise admission.error

    def _batch_charge(self, request: Request, path: str, resource_type: str) -> int:
        """How many VMs a scale set request touches: its capacity change, a deleted set's capacity,
        a manual upgrade's instances (1 when it cannot tell)."""
        if resource_type != VMSS_TYPE or request.method == "GET":
            return 1
        if path.rstrip("/").lower().endswith("/manualupgrade"):
            try:
                wanted = json.loads(request.body or b"{}").get("instanceIds")
            except (ValueError, AttributeError):
                return 1
            return max(len(wanted), 1) if isinstance(wanted, list) else 1
        current = self._store.get(path)
        before = _capacity_of(current) if current is not None else 0
        if request.method == "DELETE":
            return max(before, 1)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return 1
        after = _capacity_of(body) if isinstance(body, dict) and isinstance(body.get("sku"), dict) else before
        return max(abs(after - before), 1)


def _capacity_of(doc: JsonDict) -> int:
    sku = doc.get("sku")
    value = sku.get("capacity", 0) if isinstance(sku, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")


def _authenticate(request: Request) -> None:
    """Any bearer token is accepted (claims are read later, unverified); none at all is a 401."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    raise ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
        headers={
            "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
            'error="invalid_token", error_description="The authentication failed because of '
            "missing 'Authorization' header.\""
        },
    )
