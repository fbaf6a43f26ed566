"""Authorizing each ARM request as Azure Resource Manager does, linked access included.

The remediator runs in Azure with a custom role of exactly the actions its code
performs; the simulator refuses what that role would be refused, in ARM's words,
so a missing action fails a test here instead of a deployment there. For every
request (after authentication and throttling, before any injected fault or any
work) the caller, the `oid` of its bearer token, must have the request's action
(sim/actions.py) at the request's scope (sim/rbac.py); a PUT or PATCH must also
have, at each resource its body references, the action linked access demands
(sim/linked_access.py). A PATCH is checked on what it sends: resource providers
declare their linked access checks as paths into the request's content (ARM's
provider registration, `LinkedAccessCheck.linkedProperty`, learn.microsoft.com
"ProviderResourceType.LinkedAccessChecks"). Azure does not say so of PATCH in as
many words, so `linked_access_on_patch="merged"` checks the stored resource merged
with the patch instead (switchable on a running simulator); the product's strips and
scale-to-zero under the deployed role are tested under both readings.

Ordering, and why: ARM's front door throttles per principal and subscription from
the token alone (learn.microsoft.com, "Understand how Azure Resource Manager
throttles requests"), before it evaluates role assignments, so a refused request
still spends a token and a 429 can come before a 403; the resource provider only
sees requests ARM authorized, so injected faults (which stand for the provider
and its connection) never hit a 403'd request.

Answers: 403 `AuthorizationFailed` ("The client '{client}' with object id '{oid}'
does not have authorization to perform action '{action}' over scope '{scope}' or
the scope is invalid. If access was recently granted, please refresh your
credentials.") and 403 `LinkedAuthorizationFailed` ("... has permission to
perform action '{action}' on scope '{scope}'; however, it does not have
permission to perform action(s) '{actions}' on the linked scope(s) '{scopes}'
(respectively) or the linked scope(s) are invalid."), worded as public reports of
real ARM answers quote them (Azure/mpf's error parsers and their tests,
Azure/CloudShell#561), with `x-ms-failure-cause: gateway` as ARM sends on its
own refusals. The client is the token's `upn`/`unique_name`, else its `appid`,
else the object id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.actions import GRAPH_ACTION, RequestAction, request_action
from sim.arm_limits import principal_of
from sim.documents import JsonDict, merge_patch
from sim.errors import ArmError
from sim.linked_access import linked_references
from sim.long_running import OperationStore
from sim.rbac import AccessControl

PATCH_LINK_MODES = ("merged", "sent")
# Anyone may ask what they themselves may do (Microsoft.Authorization/permissions).
_UNCHECKED = frozenset({"microsoft.authorization/permissions/read"})
_RESOURCE_GROUP = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+", re.IGNORECASE)
_FAILURE_CAUSE = {"x-ms-failure-cause": "gateway"}


@dataclass(frozen=True)
class Caller:
    """Who is asking: the object id role assignments name, and the client ARM's messages name."""

    object_id: str
    client: str


def caller_of(claims: dict[str, Any], authorization: str) -> Caller:
    """The caller of a request from its token's claims (`oid`, else `appid`; a digest if opaque)."""
    _, object_id = principal_of(claims, authorization)
    client = next(
        (str(claims[k]) for k in ("upn", "unique_name", "appid", "azp") if claims.get(k)),
        object_id,
    )
    return Caller(object_id, client)


def authorization_failed(caller: Caller, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{caller.client}' with object id '{caller.object_id}' does not have authorization "
        f"to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
        headers=_FAILURE_CAUSE,
    )


def linked_authorization_failed(
    caller: Caller, action: str, scope: str, missing: list[tuple[str, str]]
) -> ArmError:
    actions = ",".join(linked for linked, _ in missing)
    scopes = ",".join(linked_scope for _, linked_scope in missing)
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{caller.client}' with object id '{caller.object_id}' has permission to perform "
        f"action '{action}' on scope '{scope}'; however, it does not have permission to perform "
        f"action(s) '{actions}' on the linked scope(s) '{scopes}' (respectively) or the linked scope(s) "
        "are invalid.",
        headers=_FAILURE_CAUSE,
    )


class Authorizer:
    """Decides every ARM request of one simulator against its AccessControl."""

    def __init__(
        self, store: OperationStore, access: AccessControl, *, linked_access_on_patch: str = "sent"
    ) -> None:
        if linked_access_on_patch not in PATCH_LINK_MODES:
            raise ValueError(f"linked_access_on_patch must be one of {PATCH_LINK_MODES}")
        self._store = store
        self._access = access
        self._patch_merged = linked_access_on_patch == "merged"

    @property
    def linked_access_on_patch(self) -> str:
        return "merged" if self._patch_merged else "sent"

    @linked_access_on_patch.setter
    def linked_access_on_patch(self, mode: str) -> None:
        if mode not in PATCH_LINK_MODES:
            raise ValueError(f"linked_access_on_patch must be one of {PATCH_LINK_MODES}")
        self._patch_merged = mode == "merged"

    def check(self, method: str, path: str, body: bytes, caller: Caller) -> RequestAction:
        """Raise the 403 ARM would answer `method path` with; return what was authorized."""
        wanted = request_action(method, path)
        if wanted.action.lower() in _UNCHECKED:
            return wanted
        if wanted.action == GRAPH_ACTION:
            allowed = self._access.permits_somewhere(caller.object_id, wanted.action)
        else:
            scope = self._poll_scope(wanted) if wanted.operation_id else wanted.check_scope
            allowed = self._access.permits(caller.object_id, wanted.action, scope)
        if not allowed:
            raise authorization_failed(caller, wanted.action, wanted.scope)
        if method.upper() in ("PUT", "PATCH") and wanted.is_resource:
            document = self._document(method.upper(), path, body)
            missing = [
                (action, linked_scope)
                for action, linked_scope in linked_references(document, path)
                if not self._access.permits(caller.object_id, action, linked_scope)
            ]
            if missing:
                raise linked_authorization_failed(caller, wanted.action, wanted.scope, missing)
        return wanted

    def readable(self, caller: Caller) -> Callable[[JsonDict], bool]:
        """Whether the caller may read a resource document (Resource Graph shows only those rows)."""

        def visible(doc: JsonDict) -> bool:
            action = f"{doc.get('type', '')}/read"
            return self._access.permits(caller.object_id, action, str(doc.get("id", "")))

        return visible

    def _poll_scope(self, wanted: RequestAction) -> str:
        """An operation poll is authorized at its resource's group (its subscription if unknown)."""
        op = self._store.operation(str(wanted.operation_id))
        group = _RESOURCE_GROUP.match(op.resource_id) if op is not None else None
        return group.group(0) if group is not None else wanted.check_scope

    def _document(self, method: str, path: str, body: bytes) -> Any:
        """The body whose references are checked: the merged result for a PATCH (unless 'sent')."""
        try:
            sent = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            return {}  # not JSON: no links; the resource's handler answers 400
        if method != "PATCH" or not self._patch_merged or not isinstance(sent, dict):
            return sent
        current = self._store.get(path)
        return merge_patch(current, sent) if current is not None else sent
