"""Azure RBAC's state and its evaluation: role definitions, role assignments, effective actions.

A remediator that works with an Owner token and fails with its own least-privilege
role is the bug this exists to catch, so the rules are ARM's, not a sketch: a
caller may perform an action at a scope when some role assigned to it at that
scope or any ancestor (resource -> resource group -> subscription -> its management groups up to
the tenant root group -> `/`) has an
`actions` entry matching the action and no `notActions` entry of the same
permission block matching it (learn.microsoft.com, "Understand Azure role
definitions": effective actions are Actions minus NotActions; role assignments
are inherited by child scopes; "Organize your resources with management groups": access assigned at
a group is inherited by its child groups and subscriptions, which the hierarchy of
sim/management_groups.py tells, `set_ancestry`). Matching is case-insensitive and `*` is a wildcard
(`*`, `*/read`, `Microsoft.Compute/*/read`); `/*/` also matches a single `/`, which
is how Managed Identity Operator's `userAssignedIdentities/*/assign/action` grants
`userAssignedIdentities/assign/action`. Deny assignments, conditions, groups and
data actions are not modelled.

Built-in roles (sim/builtin_roles.py) exist in every subscription; custom roles and
assignments are created over HTTP (sim/access_api.py) or by the harness
(`ArmSimulator.define_role`, `grant`). Role definitions are tenant-wide, keyed by
GUID; an assignment's id is `{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sim.builtin_roles import BUILT_IN_ROLES, RECORDED_TIMESTAMP, Permission
from sim.errors import ArmError
from sim.events import utc_now_iso

JsonDict = dict[str, Any]
ROLE_DEFINITIONS = "Microsoft.Authorization/roleDefinitions"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
ROOT_SCOPE = "/"
_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _pattern(expression: str) -> re.Pattern[str]:
    regex = ".*".join(re.escape(part) for part in expression.split("*"))
    return re.compile(f"^{regex.replace('/.*/', '/(?:.*/)?')}$", re.IGNORECASE)


def matches(expression: str, action: str) -> bool:
    """Whether a role's `actions`/`notActions` entry covers `action` (ARM's wildcard rules)."""
    return _pattern(expression).match(action) is not None


def covers(assignment_scope: str, scope: str) -> bool:
    """Whether an assignment at `assignment_scope` applies at `scope` (the same scope or below it)."""
    outer, inner = assignment_scope.rstrip("/").lower(), scope.rstrip("/").lower()
    return outer in ("", inner) or inner.startswith(outer + "/")


def is_guid(value: str) -> bool:
    return _GUID.match(value) is not None


def subscription_scope(scope: str) -> str:
    """`/subscriptions/{id}` of a scope, or "" for the root and tenant-level paths."""
    match = _SUBSCRIPTION.match(scope)
    return f"/subscriptions/{match['sub']}" if match else ""


@dataclass(frozen=True)
class RoleDefinition:
    guid: str
    name: str
    description: str
    built_in: bool
    permissions: tuple[Permission, ...]
    assignable_scopes: tuple[str, ...]
    home: str = ""  # where a custom role's id lives (`/subscriptions/{id}`, or "" at the tenant)
    created_on: str = RECORDED_TIMESTAMP
    updated_on: str = RECORDED_TIMESTAMP
    created_by: str | None = None
    updated_by: str | None = None

    def allows(self, action: str) -> bool:
        return any(
            any(matches(a, action) for a in block.actions)
            and not any(matches(n, action) for n in block.not_actions)
            for block in self.permissions
        )

    def assignable_at(self, scope: str, ancestors: Sequence[str] = ()) -> bool:
        """Whether the role may be assigned at `scope` (below one of its assignable scopes, the scope's
        management groups `ancestors` included)."""
        return any(
            covers(assignable, outer)
            for assignable in self.assignable_scopes
            for outer in (scope, *ancestors)
        )

    def id_at(self, scope: str) -> str:
        """The id ARM gives the role when asked at `scope` (built-ins: under that subscription)."""
        home = subscription_scope(scope) if self.built_in else self.home
        return f"{home}/providers/{ROLE_DEFINITIONS}/{self.guid}"

    def as_json(self, scope: str) -> JsonDict:
        return {
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole" if self.built_in else "CustomRole",
                "description": self.description,
                "assignableScopes": list(self.assignable_scopes),
                "permissions": [block.as_json() for block in self.permissions],
                "createdOn": self.created_on,
                "updatedOn": self.updated_on,
                "createdBy": self.created_by,
                "updatedBy": self.updated_by,
            },
            "id": self.id_at(scope),
            "type": ROLE_DEFINITIONS,
            "name": self.guid,
        }


@dataclass(frozen=True)
class RoleAssignment:
    guid: str
    scope: str
    role_guid: str
    principal_id: str
    principal_type: str = "ServicePrincipal"
    description: str | None = None
    created_on: str = ""
    created_by: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope.rstrip('/')}/providers/{ROLE_ASSIGNMENTS}/{self.guid}"

    @property
    def role_definition_id(self) -> str:
        return f"{subscription_scope(self.scope)}/providers/{ROLE_DEFINITIONS}/{self.role_guid}"

    def as_json(self) -> JsonDict:
        return {
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": self.created_on,
                "updatedOn": self.created_on,
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
                "delegatedManagedIdentityResourceId": None,
                "description": self.description,
            },
            "id": self.id,
            "type": ROLE_ASSIGNMENTS,
            "name": self.guid,
        }


BUILT_IN: dict[str, RoleDefinition] = {
    role.guid: RoleDefinition(role.guid, role.name, role.description, True, (role.permission,), (ROOT_SCOPE,))
    for role in BUILT_IN_ROLES
}


def role_guid_of(role_definition_id: str) -> str:
    """The GUID at the end of a role definition id (or the GUID itself)."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


class AccessControl:
    """Custom roles and role assignments of one simulator (built-ins are always there). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._custom: dict[str, RoleDefinition] = {}
        self._assignments: dict[str, RoleAssignment] = {}
        self._ancestry: Callable[[str], Sequence[str]] = lambda scope: ()

    def set_ancestry(self, ancestry: Callable[[str], Sequence[str]]) -> None:
        """Where a scope sits beyond its path: the management group scopes above it (RBAC inherits
        an assignment at a group down to its groups, subscriptions and their resources)."""
        self._ancestry = ancestry

    def reset(self) -> None:
        with self._lock:
            self._custom.clear()
            self._assignments.clear()

    # ------------------------------------------------------------------ role definitions

    def role(self, guid: str) -> RoleDefinition | None:
        with self._lock:
            return BUILT_IN.get(guid.lower()) or self._custom.get(guid.lower())

    def roles(self) -> list[RoleDefinition]:
        with self._lock:
            return [*BUILT_IN.values(), *self._custom.values()]

    def resolve(self, role: str) -> RoleDefinition:
        """A role by name (case-insensitive), GUID or role definition id; KeyError if there is none."""
        found = self.role(role_guid_of(role))
        if found is None:
            found = next((r for r in self.roles() if r.name.lower() == role.lower()), None)
        if found is None:
            raise KeyError(role)
        return found

    def put_role(
        self,
        guid: str,
        name: str,
        permissions: Sequence[Permission],
        assignable_scopes: Sequence[str],
        *,
        description: str = "",
        home: str = "",
        caller: str | None = None,
    ) -> tuple[RoleDefinition, bool]:
        """Create or replace a custom role; returns it and whether it was created."""
        guid = guid.lower()
        if not is_guid(guid):
            raise ArmError(
                400,
                "InvalidRoleDefinitionId",
                f"The role definition ID '{guid}' is not valid. The role definition ID must be a GUID.",
            )
        if guid in BUILT_IN:
            raise ArmError(
                403, "BuiltInRoleCannotBeModified", f"The built-in role '{guid}' cannot be modified."
            )
        if not name or not permissions or not assignable_scopes:
            raise ArmError(
                400,
                "InvalidRoleDefinition",
                "A role definition needs 'roleName', 'permissions' and at least one entry in "
                "'assignableScopes'.",
            )
        with self._lock:
            clash = next(
                (r for r in [*BUILT_IN.values(), *self._custom.values()] if r.name.lower() == name.lower()),
                None,
            )
            if clash is not None and clash.guid != guid:
                raise ArmError(
                    409,
                    "RoleDefinitionWithSameNameExists",
                    "A custom role with the same name already exists in this directory. "
                    "Use a different name.",
                )
            existing = self._custom.get(guid)
            now = utc_now_iso()
            role = RoleDefinition(
                guid,
                name,
                description,
                False,
                tuple(permissions),
                tuple(assignable_scopes),
                home=existing.home if existing else home,
                created_on=existing.created_on if existing else now,
                updated_on=now,
                created_by=existing.created_by if existing else caller,
                updated_by=caller,
            )
            self._custom[guid] = role
            return role, existing is None

    def delete_role(self, guid: str) -> RoleDefinition | None:
        with self._lock:
            role = self._custom.get(guid.lower())
            if role is None:
                return None
            if any(a.role_guid == role.guid for a in self._assignments.values()):
                raise ArmError(
                    409,
                    "RoleDefinitionHasAssignments",
                    f"There are existing role assignments referencing role definition '{role.guid}'.",
                )
            return self._custom.pop(role.guid)

    # ------------------------------------------------------------------ role assignments

    def assignments(self) -> list[RoleAssignment]:
        with self._lock:
            return list(self._assignments.values())

    def assignment(self, guid: str) -> RoleAssignment | None:
        with self._lock:
            return self._assignments.get(guid.lower())

    def put_assignment(
        self,
        guid: str,
        scope: str,
        role_definition_id: str,
        principal_id: str,
        *,
        principal_type: str | None = None,
        description: str | None = None,
        caller: str | None = None,
    ) -> tuple[RoleAssignment, bool]:
        """Create a role assignment (an identical PUT is answered with the existing one)."""
        guid = guid.lower()
        if not is_guid(guid):
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{guid}' is not valid. The role assignment ID must be a GUID.",
            )
        if not principal_id:
            raise ArmError(
                400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment."
            )
        role = self.role(role_guid_of(role_definition_id))
        if role is None:
            raise ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role_guid_of(role_definition_id)}' does not exist.",
            )
        if not role.assignable_at(scope, self._ancestry(scope)):
            raise ArmError(
                400,
                "InvalidRoleAssignmentScope",
                f"The role definition '{role.guid}' is not assignable at scope '{scope}': it is assignable "
                f"only at {', '.join(role.assignable_scopes)}.",
            )
        wanted = RoleAssignment(
            guid,
            scope,
            role.guid,
            principal_id,
            principal_type or "ServicePrincipal",
            description,
            utc_now_iso(),
            caller,
        )
        with self._lock:
            existing = self._assignments.get(guid)
            if existing is not None:
                if (existing.scope.lower(), existing.role_guid, existing.principal_id.lower()) != (
                    scope.lower(),
                    role.guid,
                    principal_id.lower(),
                ):
                    raise ArmError(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                return existing, False
            if any(
                (a.scope.lower(), a.role_guid, a.principal_id.lower())
                == (scope.lower(), role.guid, principal_id.lower())
                for a in self._assignments.values()
            ):
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
            self._assignments[guid] = wanted
            return wanted, True

    def delete_assignment(self, guid: str) -> RoleAssignment | None:
        with self._lock:
            return self._assignments.pop(guid.lower(), None)

    # ------------------------------------------------------------------ evaluation

    def applying(self, principal_id: str, scope: str) -> list[RoleDefinition]:
        """The roles assigned to the principal at `scope` or above it, each once, oldest first."""
        found: dict[str, RoleDefinition] = {}
        assignments = self._of(principal_id)
        outer = (scope, *self._ancestry(scope)) if assignments else (scope,)
        for assignment in assignments:
            if assignment.role_guid not in found and any(covers(assignment.scope, s) for s in outer):
                role = self.role(assignment.role_guid)
                if role is not None:
                    found[role.guid] = role
        return list(found.values())

    def permits(self, principal_id: str, action: str, scope: str) -> bool:
        return any(role.allows(action) for role in self.applying(principal_id, scope))

    def permits_somewhere(self, principal_id: str, action: str) -> bool:
        """Whether any role assigned to the principal, at any scope, grants the action."""
        return any(
            role is not None and role.allows(action)
            for role in (self.role(a.role_guid) for a in self._of(principal_id))
        )

    def _of(self, principal_id: str) -> list[RoleAssignment]:
        wanted = principal_id.lower()
        with self._lock:
            return [a for a in self._assignments.values() if a.principal_id.lower() == wanted]


def new_guid(seed: str | None = None) -> str:
    """A role or assignment name: deterministic from `seed` when given (as Bicep's guid() is)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed) if seed is not None else uuid.uuid4())
