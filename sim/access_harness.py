"""The harness's side of authorization: who may do what in a simulator, set up without HTTP.

A test, the demo or a benchmark must say which principal is the estate's builder
(Owner) and which is the remediator (its custom role) before any request, and it
must not spend the principals' throttling budget or need an Owner to bootstrap
the first Owner, so `ArmSimulator` offers these as methods (this mixin). Each one
changes the simulator's AccessControl exactly as the ARM PUT it stands for would
(same validation, same resulting role assignment or role definition), and is
recorded in the request log as that PUT (principal empty, status 201, or 200 when
it already existed), but it is neither authorized nor throttled. Role assignments
and custom roles survive `reset()` (they are the harness's setup, like event
sinks); `reset(access=True)` forgets them too.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.authorization import caller_of
from sim.builtin_roles import Permission
from sim.documents import JsonDict
from sim.events import claims_from_authorization
from sim.hooks import RequestHooks
from sim.rbac import (
    ROLE_ASSIGNMENTS,
    ROLE_DEFINITIONS,
    ROOT_SCOPE,
    AccessControl,
    new_guid,
    subscription_scope,
)
from sim.request_log import harness_record
from sim.writes import WritableStore


class AccessHarness:
    """Mixed into ArmSimulator, which provides the store, the hooks and the AccessControl."""

    _store: WritableStore
    _hooks: RequestHooks
    _access: AccessControl

    @staticmethod
    def principal_of(token: str) -> str:
        """The object id the simulator authorizes a bearer token as (`oid`, else `appid`, else a
        digest of an opaque token): what to pass to `grant` for a harness's own credential."""
        header = f"Bearer {token}"
        return caller_of(claims_from_authorization(header), header).object_id

    def grant(
        self,
        principal_oid: str,
        role: str,
        scope: str,
        *,
        principal_type: str = "ServicePrincipal",
        name: str | None = None,
    ) -> str:
        """Assign `role` (a role name such as "Owner", a role definition GUID or id) to a principal at
        `scope` ("/", a subscription, resource group or resource id); returns the assignment's id.

        The assignment's name is `name`, else a GUID derived from scope, principal and role (as
        Bicep's guid() does), so granting the same role twice is harmless. Raises ValueError for a
        role the simulator does not know, ArmError for what ARM would refuse (a role not assignable
        at that scope, the same assignment under another name).
        """
        try:
            definition = self._access.resolve(role)
        except KeyError:
            known = ", ".join(sorted(r.name for r in self._access.roles()))
            raise ValueError(f"no role {role!r} in the simulator (known: {known})") from None
        guid = name or new_guid(f"{scope.lower()}|{principal_oid.lower()}|{definition.guid}")
        assignment, created = self._access.put_assignment(
            guid,
            scope,
            definition.id_at(scope),
            principal_oid,
            principal_type=principal_type,
        )
        self._record_put(assignment.id, ROLE_ASSIGNMENTS, 201 if created else 200)
        return assignment.id

    def revoke(self, assignment_id: str) -> bool:
        """Delete a role assignment by id (or name); False if there was none. Recorded as a DELETE."""
        removed = self._access.delete_assignment(assignment_id.rstrip("/").rsplit("/", 1)[-1])
        self._record(
            "DELETE", removed.id if removed else assignment_id, ROLE_ASSIGNMENTS, 200 if removed else 204
        )
        return removed is not None

    def define_role(
        self,
        name: str,
        actions: Sequence[str],
        not_actions: Sequence[str] = (),
        assignable_scopes: Sequence[str] = (ROOT_SCOPE,),
        *,
        description: str = "",
        role_id: str | None = None,
    ) -> str:
        """Create (or replace) a custom role; returns its role definition id, for `grant`.

        assignable_scopes: where it may be assigned; "/" (the default, a simulator convenience: Azure
        accepts subscriptions and management groups) means anywhere. role_id: its GUID, else one
        derived from the name (a role's name is unique in a tenant).
        """
        home = next((subscription_scope(s) for s in assignable_scopes if subscription_scope(s)), "")
        role, created = self._access.put_role(
            role_id or new_guid(f"role|{name.lower()}"),
            name,
            [Permission(tuple(actions), tuple(not_actions))],
            list(assignable_scopes),
            description=description,
            home=home,
        )
        role_definition_id = role.id_at(home or ROOT_SCOPE)
        self._record_put(role_definition_id, ROLE_DEFINITIONS, 201 if created else 200)
        return role_definition_id

    def role_assignments(self) -> list[JsonDict]:
        """Every role assignment, as ARM serves it."""
        return [assignment.as_json() for assignment in self._access.assignments()]

    def _record_put(self, path: str, resource_type: str, status: int) -> None:
        self._record("PUT", path, resource_type, status)

    def _record(self, method: str, path: str, resource_type: str, status: int) -> None:
        record = harness_record(method, path, resource_type, status)
        self._store.record(record)
        self._hooks.call(record)
