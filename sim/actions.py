"""The ARM action and scope a request is authorized as, named the way ARM names them.

A custom role lists actions such as `Microsoft.Compute/virtualMachineScaleSets/write`;
the simulator must demand exactly the action ARM would, or a role that works here
fails in Azure (or the other way round). ARM derives it from the request URI: the
last `providers/{namespace}` group gives the namespace, every other segment after
it the resource type, and the method the verb (GET `read`, PUT and PATCH `write`,
DELETE `delete`); a POST to `{resource}/{name}` is `{type}/{name}/action`. A path
ending in a type (a list) is a read of that type over its parent's path: ARM's
messages name `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network`
for a list of a group's NSGs (Azure/CloudShell#561). Special cases, as ARM has them:
a Resource Graph query is a POST that reads (`Microsoft.ResourceGraph/resources/read`),
and a long-running operation's status URL is `{namespace}/locations/operations/read`
(or `.../operationResults/read`), checked at the operation's resource group
(learn.microsoft.com, "Track asynchronous Azure operations": tracking needs
permission at the resource group level, not the resource's). Management groups' reads come out as
Microsoft.Management lists them (learn.microsoft.com, "Azure permissions for Management and
governance"): `managementGroups/read` for a group, `managementGroups/descendants/read` and
`managementGroups/subscriptions/read` at the group's scope for what is beneath it.
Action names come out in ARM's casing for the types the simulator serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.ids import LB_COLLECTIONS

# ARM's casing of namespaces and path segments (the SDKs send some in lower case, e.g. manualupgrade).
_CASING = {
    name.lower(): name
    for name in (
        "Microsoft.Compute",
        "Microsoft.Network",
        "Microsoft.Insights",
        "Microsoft.Authorization",
        "Microsoft.ResourceGraph",
        "Microsoft.ManagedIdentity",
        "Microsoft.Resources",
        "Microsoft.EventGrid",
        "Microsoft.Management",
        "managementGroups",
        "descendants",
        "systemTopics",
        "eventSubscriptions",
        "virtualMachineScaleSets",
        "virtualMachines",
        "networkInterfaces",
        "publicIPAddresses",
        "ipConfigurations",
        "virtualNetworks",
        "subnets",
        "networkSecurityGroups",
        "loadBalancers",
        *LB_COLLECTIONS,
        "applicationSecurityGroups",
        "autoscalesettings",
        "manualUpgrade",
        "roleAssignments",
        "roleDefinitions",
        "permissions",
        "locations",
        "operations",
        "operationResults",
        "resources",
        "subscriptions",
        "resourceGroups",
    )
}
_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
_GRAPH = re.compile(r"^/providers/Microsoft\.ResourceGraph/resources/?$", re.IGNORECASE)
_OPERATION = re.compile(
    r"^(?P<sub>/subscriptions/[^/]+)/providers/(?P<ns>[^/]+)/locations/[^/]+/"
    r"(?P<kind>operations|operationResults)/(?P<op>[^/]+)/?$",
    re.IGNORECASE,
)
GRAPH_ACTION = "Microsoft.ResourceGraph/resources/read"


def canonical(segment: str) -> str:
    return _CASING.get(segment.lower(), segment)


@dataclass(frozen=True)
class RequestAction:
    """What a request must be allowed to do, and where.

    scope: the scope named in ARM's messages (the request path, a list's parent path);
    check_scope: where the role assignments are evaluated (the same, except for operation polls,
        which resolve to their resource group, and Resource Graph, which has none: "");
    operation_id: the operation of a status poll (its resource group is found from it).
    """

    action: str
    scope: str
    check_scope: str
    operation_id: str | None = None
    is_resource: bool = False  # the path names one resource (its own body may carry links)


def request_action(method: str, path: str) -> RequestAction:
    """The action and scope of `method path` (path without the query, unquoted)."""
    path = "/" + path.strip("/")
    if _GRAPH.match(path):
        return RequestAction(GRAPH_ACTION, "/providers/Microsoft.ResourceGraph", "")
    poll = _OPERATION.match(path)
    if poll is not None:
        action = f"{canonical(poll['ns'])}/locations/{canonical(poll['kind'])}/read"
        return RequestAction(action, path, poll["sub"], operation_id=poll["op"])
    segments = [s for s in path.split("/") if s]
    lowered = [s.lower() for s in segments]
    verb = _VERBS.get(method.upper())
    if "providers" not in lowered:
        return _outside_providers(segments, verb, path)
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    namespace = canonical(segments[at + 1]) if at + 1 < len(segments) else ""
    after = segments[at + 2 :]
    types = [canonical(s) for s in after[0::2]]
    if len(after) % 2 == 1:  # ends in a type: a list, or a POST action on the resource before it
        parent = "/" + "/".join(segments[:-1])
        if method.upper() == "POST" and len(types) > 1:
            return RequestAction(f"{'/'.join([namespace, *types[:-1]])}/{types[-1]}/action", parent, parent)
        return RequestAction(f"{'/'.join([namespace, *types])}/read", parent, parent)
    action = f"{'/'.join([namespace, *types])}/{verb or 'action'}"
    return RequestAction(action, path, path, is_resource=True)


def _outside_providers(segments: list[str], verb: str | None, path: str) -> RequestAction:
    """Subscriptions and resource groups themselves (`Microsoft.Resources/...`)."""
    types = [canonical(s) for s in segments[0::2]]
    resource = len(segments) % 2 == 0
    scope = path if resource else "/" + "/".join(segments[:-1])
    suffix = (verb or "action") if resource else "read"
    action = f"Microsoft.Resources/{'/'.join(types)}/{suffix}"
    return RequestAction(action, scope, scope, is_resource=resource)


def resource_type_of(resource_id: str) -> str | None:
    """`{namespace}/{type}[/{child type}...]` of a resource id, in the id's own casing; else None."""
    segments = [s for s in resource_id.split("/") if s]
    lowered = [s.lower() for s in segments]
    if "providers" not in lowered or not lowered or lowered[0] != "subscriptions":
        return None
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    after = segments[at + 2 :]
    if at + 1 >= len(segments) or not after or len(after) % 2 == 1:
        return None
    return "/".join([segments[at + 1], *after[0::2]])
