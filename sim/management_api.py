"""Microsoft.Management's reads of management groups and their subscriptions, at ARM's paths.

A tenant-wide deployment decides which subscriptions it watches from the management group
hierarchy (sim/management_groups.py). The simulator serves, for any api-version (shapes from the
2023-04-01 REST API: Azure/azure-rest-api-specs,
specification/managementgroups/resource-manager/Microsoft.Management/ManagementGroups/stable/2023-04-01/
management.json and its examples GetManagementGroupWithExpandAndRecurse.json,
GetManagementGroupWithAncestors.json, GetDescendants.json, GetSubscriptionFromManagementGroup.json):

    /providers/Microsoft.Management/managementGroups/{group}                          GET
        `$expand=children` (with `$recurse=true` the whole subtree), `$expand=ancestors`
        (`details.managementGroupAncestors` and `managementGroupAncestorsChain`, parent first),
        `$expand=path` (`details.path`, root first), `$filter=children.childType ne Subscription`
    /providers/Microsoft.Management/managementGroups/{group}/descendants              GET, paged
        every group and subscription beneath, depth first; `$top` items a page (default
        `page_size`), `nextLink` carrying `$skiptoken`
    /providers/Microsoft.Management/managementGroups/{group}/subscriptions            GET, paged
    /providers/Microsoft.Management/managementGroups/{group}/subscriptions/{sub}      GET
        the subscription if it is directly in the group (`properties.parent`, `state` Active,
        `tenant`); the API has no ancestors chain for a subscription: a reader walks up with the
        parent group's `$expand=ancestors`, or lists a group's descendants.

Requests are admitted as all ARM requests (sim/admission.py): authorized as
`Microsoft.Management/managementGroups/read`, `.../descendants/read` and
`.../subscriptions/read` (sim/actions.py). Not served: writes (groups and placements are the
harness's: sim/management_harness.py, answered 405), the list of all groups, getEntities. Choices
where the API says nothing: a missing group, or a subscription not directly in the group, is 404
`NotFound` "'{id}' not found"; the root group has no parent (`details.parent` null).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from sim.api_messages import method_not_allowed
from sim.documents import JsonDict
from sim.errors import ArmError, invalid_parameter
from sim.management_groups import (
    GROUP_TYPE,
    SUBSCRIPTION_TYPE,
    Group,
    ManagementGroups,
    Placement,
    group_id,
)

NAMESPACE = "Microsoft.Management"
_PATH = re.compile(
    r"^/providers/Microsoft\.Management/managementGroups/(?P<group>[^/]+)"
    r"(?:/(?P<kind>descendants|subscriptions)(?:/(?P<sub>[^/]+))?)?/?$",
    re.IGNORECASE,
)
_NO_SUBSCRIPTIONS = re.compile(r"^\s*children\.childType\s+ne\s+'?Subscription'?\s*$", re.IGNORECASE)
MAX_TOP = 1000


@dataclass(frozen=True)
class ManagementPath:
    """A Microsoft.Management request path: the group, and what under it ("" for the group)."""

    group: str
    kind: str  # "", "descendants" or "subscriptions"
    subscription: str | None

    @property
    def resource_type(self) -> str:
        return SUBSCRIPTION_TYPE if self.kind == "subscriptions" else GROUP_TYPE


def match(path: str) -> ManagementPath | None:
    found = _PATH.match(path)
    if found is None:
        return None
    return ManagementPath(found["group"], (found["kind"] or "").lower(), found["sub"])


def not_found(resource_id: str) -> ArmError:
    return ArmError(404, "NotFound", f"'{resource_id}' not found")


def _parent(group: Group | None) -> JsonDict | None:
    if group is None:
        return None
    return {"id": group_id(group.name), "name": group.name, "displayName": group.display_name}


def subscription_json(groups: ManagementGroups, placement: Placement) -> JsonDict:
    """A SubscriptionUnderManagementGroup document."""
    parent = groups.group(placement.group)
    assert parent is not None
    return {
        "id": f"{group_id(parent.name)}/subscriptions/{placement.subscription}",
        "type": SUBSCRIPTION_TYPE,
        "name": placement.subscription,
        "properties": {
            "tenant": groups.tenant_id,
            "displayName": placement.display_name,
            "parent": {"id": group_id(parent.name)},
            "state": "Active",
        },
    }


def descendant_json(groups: ManagementGroups, item: Group | Placement) -> JsonDict:
    """A DescendantInfo: a group or a subscription, with its parent group's id."""
    if isinstance(item, Placement):
        parent = groups.group(item.group)
        assert parent is not None
        return {
            "id": f"/subscriptions/{item.subscription}",
            "type": SUBSCRIPTION_TYPE,
            "name": item.subscription,
            "properties": {"displayName": item.display_name, "parent": {"id": group_id(parent.name)}},
        }
    above = groups.group(item.parent) if item.parent else None
    return {
        "id": group_id(item.name),
        "type": GROUP_TYPE,
        "name": item.name,
        "properties": {
            "displayName": item.display_name,
            "parent": {"id": group_id(above.name)} if above else None,
        },
    }


def _children(groups: ManagementGroups, name: str, *, recurse: bool, subscriptions: bool) -> list[JsonDict]:
    child_groups, placed = groups.children(name)
    found: list[JsonDict] = []
    for child in child_groups:
        info: JsonDict = {
            "id": group_id(child.name),
            "type": GROUP_TYPE,
            "name": child.name,
            "displayName": child.display_name,
        }
        below = _children(groups, child.name, recurse=True, subscriptions=subscriptions) if recurse else []
        if below:
            info["children"] = below
        found.append(info)
    if subscriptions:
        found.extend(
            {
                "id": f"/subscriptions/{p.subscription}",
                "type": "/subscriptions",
                "name": p.subscription,
                "displayName": p.display_name,
            }
            for p in placed
        )
    return found


def group_json(groups: ManagementGroups, group: Group, query: dict[str, str]) -> JsonDict:
    """A ManagementGroup document, expanded as `$expand`, `$recurse` and `$filter` ask."""
    expand = query.get("$expand", "").lower()
    if expand not in ("", "children", "path", "ancestors"):
        raise invalid_parameter(f"The value '{expand}' of '$expand' is invalid.", target="$expand")
    recurse = query.get("$recurse", "").lower() == "true"
    if recurse and expand != "children":
        raise invalid_parameter("$expand=children must be passed up if $recurse is set to true.", "$recurse")
    filter_text = query.get("$filter", "")
    if filter_text and not _NO_SUBSCRIPTIONS.match(filter_text):
        raise invalid_parameter(
            f"The filter '{filter_text}' is not supported. The only supported filter is "
            "'children.childType ne Subscription'.",
            target="$filter",
        )
    ancestors = groups.ancestors(group.name)
    details: JsonDict = {
        "version": group.version,
        "updatedTime": group.updated_time,
        "updatedBy": group.updated_by,
        "parent": _parent(ancestors[0] if ancestors else None),
    }
    if expand == "ancestors":
        details["managementGroupAncestors"] = [a.name for a in ancestors]
        details["managementGroupAncestorsChain"] = [
            {"name": a.name, "displayName": a.display_name} for a in ancestors
        ]
    if expand == "path":
        details["path"] = [{"name": g.name, "displayName": g.display_name} for g in [*ancestors[::-1], group]]
    properties: JsonDict = {
        "tenantId": groups.tenant_id,
        "displayName": group.display_name,
        "details": details,
    }
    if expand == "children":
        properties["children"] = _children(groups, group.name, recurse=recurse, subscriptions=not filter_text)
    return {"id": group_id(group.name), "type": GROUP_TYPE, "name": group.name, "properties": properties}


class ManagementApi:
    """Answers Microsoft.Management requests from one hierarchy."""

    def __init__(self, groups: ManagementGroups, endpoint: Callable[[], str], page_size: int) -> None:
        self._groups = groups
        self._endpoint = endpoint
        self._page_size = max(page_size, 1)

    @property
    def groups(self) -> ManagementGroups:
        return self._groups

    def handle(self, method: str, target: ManagementPath, query: dict[str, str], path: str) -> JsonDict:
        """The body of one (admitted) request; ArmError for what ARM answers otherwise."""
        if method.upper() != "GET":
            raise method_not_allowed(method)
        group = self._groups.group(target.group)
        if group is None:
            raise not_found(group_id(target.group))
        if target.kind == "":
            return group_json(self._groups, group, query)
        if target.kind == "descendants":
            items = [descendant_json(self._groups, d) for d in self._groups.descendants(group.name)]
            return self._page(items, path, query)
        _, placed = self._groups.children(group.name)
        if target.subscription is None:
            return self._page([subscription_json(self._groups, p) for p in placed], path, query)
        wanted = target.subscription.lower()
        found = next((p for p in placed if p.subscription.lower() == wanted), None)
        if found is None:
            raise not_found(f"{group_id(group.name)}/subscriptions/{target.subscription}")
        return subscription_json(self._groups, found)

    def _page(self, items: list[JsonDict], path: str, query: dict[str, str]) -> JsonDict:
        token = query.get("$skiptoken", "0") or "0"
        if not token.isdigit():
            raise invalid_parameter(f"The value '{token}' of '$skiptoken' is invalid.", target="$skiptoken")
        top_text = query.get("$top", "")
        if top_text and (not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP):
            raise invalid_parameter(f"'$top' must be between 1 and {MAX_TOP}.", target="$top")
        start, size = int(token), int(top_text) if top_text else self._page_size
        body: JsonDict = {"value": items[start : start + size], "nextLink": None}
        if start + size < len(items):
            params = {"api-version": query.get("api-version", ""), "$skiptoken": str(start + size)}
            if top_text:
                params["$top"] = top_text
            body["nextLink"] = f"{self._endpoint()}{quote(path)}?{urlencode(params, quote_via=quote)}"
        return body
