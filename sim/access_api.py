"""Microsoft.Authorization over HTTP: role definitions, role assignments, a caller's permissions.

Deployment templates and harnesses create the remediator's custom role and assign
it with ordinary ARM requests, and operators ask ARM what a principal may do; the
simulator serves those requests at ARM's own paths, as extension resources of any
scope (`/`, a subscription, a resource group, a resource):

    {scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]   GET list ($filter
        roleName eq '...' or type eq 'BuiltInRole'|'CustomRole'), GET, PUT, DELETE
    {scope}/providers/Microsoft.Authorization/roleAssignments[/{guid}]   GET list ($filter
        atScope(), principalId eq '...', assignedTo('...'), joined by `and`), GET, PUT, DELETE
    {scope}/providers/Microsoft.Authorization/permissions                GET: the caller's roles
        at the scope, one `{actions, notActions, dataActions, notDataActions}` entry each

Bodies have the shape of the recorded role definitions
(shared/fixtures/recorded-arm/roledefinitionclient.yaml: built-ins listed at a resource
group carry ids under its subscription) and of the 2022-04-01 REST API's role
assignments. Lists come in one page, as the recording's 681 role definitions did.
Who may call them is decided before (sim/authorization.py): writing and deleting
need `Microsoft.Authorization/role{Assignments,Definitions}/{write,delete}`, which
Owner and User Access Administrator have and Contributor does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sim.authorization import Caller
from sim.builtin_roles import Permission
from sim.errors import ArmError, json_object
from sim.rbac import ROOT_SCOPE, AccessControl, RoleAssignment, covers, subscription_scope

JsonDict = dict[str, Any]
_PATH = re.compile(
    r"^(?P<scope>.*?)/providers/Microsoft\.Authorization/"
    r"(?P<kind>roleDefinitions|roleAssignments|permissions)(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
_KINDS = {k.lower(): k for k in ("roleDefinitions", "roleAssignments", "permissions")}
_EQ = re.compile(r"^(?P<field>\w+)\s+eq\s+'(?P<value>[^']*)'$", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"^assignedTo\('(?P<value>[^']*)'\)$", re.IGNORECASE)


@dataclass(frozen=True)
class AccessPath:
    """A Microsoft.Authorization request path: the scope it extends, what it names, and which one."""

    scope: str
    kind: str  # "roleDefinitions", "roleAssignments" or "permissions"
    name: str | None

    @property
    def resource_type(self) -> str:
        return f"Microsoft.Authorization/{self.kind}"


def match(path: str) -> AccessPath | None:
    found = _PATH.match(path)
    if found is None:
        return None
    return AccessPath(found["scope"] or ROOT_SCOPE, _KINDS[found["kind"].lower()], found["name"])


class AccessApi:
    """Answers Microsoft.Authorization requests against one AccessControl."""

    def __init__(self, access: AccessControl) -> None:
        self._access = access

    def handle(
        self, method: str, target: AccessPath, query: dict[str, str], body: bytes, caller: Caller
    ) -> tuple[int, JsonDict | None]:
        """(status, body) of one request; raises ArmError for ARM's refusals."""
        method = method.upper()
        if target.kind == "permissions":
            if method != "GET" or target.name is not None:
                raise _not_allowed(method)
            return 200, self._permissions(caller, target.scope)
        if target.name is None:
            if method != "GET":
                raise _not_allowed(method)
            filters = _filters(query.get("$filter", ""))
            if target.kind == "roleDefinitions":
                return 200, {"value": self._definitions(target.scope, filters)}
            return 200, {"value": self._assignments(target.scope, filters)}
        if target.kind == "roleDefinitions":
            return self._definition(method, target, body, caller)
        return self._assignment(method, target, body, caller)

    # ------------------------------------------------------------------ role definitions

    def _definitions(self, scope: str, filters: list[tuple[str, str]]) -> list[JsonDict]:
        found = [r for r in self._access.roles() if r.assignable_at(scope) or scope == ROOT_SCOPE]
        for field, value in filters:
            if field == "rolename":
                found = [r for r in found if r.name.lower() == value.lower()]
            elif field == "type":
                found = [r for r in found if ("builtinrole" if r.built_in else "customrole") == value.lower()]
            else:
                raise _bad_filter(f"{field} on role definitions (supported: roleName eq, type eq)")
        return [role.as_json(scope) for role in found]

    def _definition(
        self, method: str, target: AccessPath, body: bytes, caller: Caller
    ) -> tuple[int, JsonDict | None]:
        guid = str(target.name)
        if method == "GET":
            role = self._access.role(guid)
            if role is None:
                raise ArmError(
                    404, "RoleDefinitionDoesNotExist", f"The role definition '{guid}' does not exist."
                )
            return 200, role.as_json(target.scope)
        if method == "DELETE":
            existing = self._access.role(guid)
            if existing is not None and existing.built_in:
                raise ArmError(
                    403, "BuiltInRoleCannotBeModified", f"The built-in role '{guid}' cannot be deleted."
                )
            deleted = self._access.delete_role(guid)
            return (200, deleted.as_json(target.scope)) if deleted else (204, None)
        if method != "PUT":
            raise _not_allowed(method)
        props = _properties(body)
        permissions = [_permission(block) for block in _list(props, "permissions")]
        scopes = [str(s) for s in _list(props, "assignableScopes")]
        role, created = self._access.put_role(
            guid,
            str(props.get("roleName") or ""),
            permissions,
            scopes,
            description=str(props.get("description") or ""),
            home=subscription_scope(target.scope),
            caller=caller.object_id,
        )
        return (201 if created else 200), role.as_json(target.scope)

    # ------------------------------------------------------------------ role assignments

    def _assignments(self, scope: str, filters: list[tuple[str, str]]) -> list[JsonDict]:
        at_scope = False
        principal: str | None = None
        for field, value in filters:
            if field == "atscope":
                at_scope = True
            elif field in ("principalid", "assignedto"):
                principal = value.lower()
            else:
                raise _bad_filter(
                    f"{field} on role assignments (supported: atScope(), principalId eq, assignedTo())"
                )

        def listed(assignment: RoleAssignment) -> bool:
            if principal is not None and assignment.principal_id.lower() != principal:
                return False
            return covers(assignment.scope, scope) or (not at_scope and covers(scope, assignment.scope))

        return [a.as_json() for a in self._access.assignments() if listed(a)]

    def _assignment(
        self, method: str, target: AccessPath, body: bytes, caller: Caller
    ) -> tuple[int, JsonDict | None]:
        guid = str(target.name)
        existing = self._access.assignment(guid)
        if existing is not None and existing.scope.rstrip("/").lower() != target.scope.rstrip("/").lower():
            existing = None  # that name is an assignment at another scope
        if method == "GET":
            if existing is None:
                raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{guid}' is not found.")
            return 200, existing.as_json()
        if method == "DELETE":
            if existing is None:
                return 204, None
            self._access.delete_assignment(guid)
            return 200, existing.as_json()
        if method != "PUT":
            raise _not_allowed(method)
        props = _properties(body)
        assignment, created = self._access.put_assignment(
            guid,
            target.scope,
            str(props.get("roleDefinitionId") or ""),
            str(props.get("principalId") or ""),
            principal_type=str(props["principalType"]) if props.get("principalType") else None,
            description=str(props["description"]) if props.get("description") else None,
            caller=caller.object_id,
        )
        return (201 if created else 200), assignment.as_json()

    # ------------------------------------------------------------------ permissions

    def _permissions(self, caller: Caller, scope: str) -> JsonDict:
        roles = self._access.applying(caller.object_id, scope)
        return {"value": [block.as_json() for role in roles for block in role.permissions]}


def _properties(body: bytes) -> JsonDict:
    props = json_object(body).get("properties")
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must have a 'properties' object.")
    return props


def _list(props: JsonDict, name: str) -> list[Any]:
    value = props.get(name) or []
    if not isinstance(value, list):
        raise ArmError(400, "InvalidRequestContent", f"'{name}' must be a list.")
    return value


def _permission(block: Any) -> Permission:
    if not isinstance(block, dict):
        raise ArmError(400, "InvalidRequestContent", "Each 'permissions' entry must be an object.")

    def strings(name: str) -> tuple[str, ...]:
        return tuple(str(v) for v in block.get(name) or [])

    return Permission(
        strings("actions"), strings("notActions"), strings("dataActions"), strings("notDataActions")
    )


def _filters(text: str) -> list[tuple[str, str]]:
    """`$filter` clauses as (lower-cased field, value); `atScope()` is ("atscope", "")."""
    clauses: list[tuple[str, str]] = []
    for clause in (c.strip() for c in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if c.strip()):
        if clause.lower() == "atscope()":
            clauses.append(("atscope", ""))
        elif (assigned := _ASSIGNED_TO.match(clause)) is not None:
            clauses.append(("assignedto", assigned["value"]))
        elif (eq := _EQ.match(clause)) is not None:
            clauses.append((eq["field"].lower(), eq["value"]))
        else:
            raise _bad_filter(clause)
    return clauses


def _bad_filter(what: str) -> ArmError:
    return ArmError(400, "InvalidFilter", f"The $filter is not supported by the ARM simulator: {what}.")


def _not_allowed(method: str) -> ArmError:
    return ArmError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported for this path.")
