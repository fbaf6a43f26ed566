"""The generic resource API: GET, PUT, PATCH and DELETE of a resource by id, and NRP's inline children.

A resource's reads and writes go to the store (sim/writes.py enforces ARM's write rules); an
accepted long-running write is announced with its status URLs (sim/operations.py). Subnets and
a load balancer's pools, rules and frontends are served at their own paths but written through
their parent's document.
"""

from __future__ import annotations

import re

from sim import ids, operations
from sim.api_messages import Request, Response, injected_failure, method_not_allowed
from sim.documents import properties
from sim.errors import ArmError, json_object, not_found
from sim.events import RequestContext
from sim.ids import ResourceRef
from sim.operations import OperationRoutes

# NRP's inline children served at their own paths, written through their parent's document.
INLINE_CHILD_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"(?P<parent>virtualNetworks|loadBalancers)/(?P<parentname>[^/]+)/(?P<collection>[^/]+?)"
    r"(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
# (parent type, collection) -> whether the child has PUT and DELETE of its own (the REST API's).
INLINE_CHILDREN: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("virtualnetworks", "subnets"): (ids.VNET_TYPE, "subnets", True),
    **{
        ("loadbalancers", c.lower()): (ids.LB_TYPE, c, c in ("backendAddressPools", "inboundNatRules"))
        for c in ids.LB_COLLECTIONS
    },
}


class ResourceRoutes(OperationRoutes):
    """A resource by id, and the inline children of virtual networks and load balancers."""

    def _resource(
        self,
        request: Request,
        response: Response,
        ref: ResourceRef,
        context: RequestContext,
        api_version: str,
    ) -> None:
        if request.method == "GET":
            doc = self._store.get(ref.id)
            if doc is None:
                raise not_found(ref)
            response.body = doc
            response.headers["ETag"] = str(doc.get("etag", ""))
            return
        fail_with = injected_failure() if context.fail_operation else None
        if request.method in ("PUT", "PATCH"):
            result = self._store.put(
                ref,
                json_object(request.body),
                context,
                if_match=request.headers.get("if-match"),
                if_none_match=request.headers.get("if-none-match"),
                patch=request.method == "PATCH",
                fail_with=fail_with,
            )
        elif request.method == "DELETE":
            result = self._store.delete(
                ref.id, context, if_match=request.headers.get("if-match"), fail_with=fail_with
            )
        else:
            raise method_not_allowed(request.method)
        response.status, response.body = result.status, result.doc
        if request.method != "DELETE":
            operations.write_headers(response.headers, ref.resource_type, result.doc)
        if result.operation is not None:
            self._announce(response, result.operation, api_version, request.method)

    def _inline_child(
        self,
        request: Request,
        response: Response,
        match: re.Match[str],
        context: RequestContext,
        api_version: str,
        *,
        served: tuple[str, str, bool],
    ) -> None:
        """Subnets and load balancer children, served from (and written through) their parent's
        document, whose rules (a child in use cannot be removed) apply to the write."""
        parent_type, collection, writable_child = served
        parent_ref = ResourceRef(match["sub"], match["rg"], parent_type, match["parentname"])
        parent = self._store.get(parent_ref.id)
        name = match["name"]
        if parent is None:
            raise ArmError(404, "NotFound", f"Resource {parent_ref.id} not found.")
        children = [c for c in properties(parent).get(collection) or [] if isinstance(c, dict)]
        if name is None:
            if request.method != "GET":
                raise method_not_allowed(request.method)
            response.body = {"value": children}
            return
        existing = next((c for c in children if str(c.get("name", "")).lower() == name.lower()), None)
        child_id = f"{parent['id']}/{collection}/{existing['name'] if existing else name}"
        if request.method == "GET":
            if existing is None:
                raise ArmError(404, "NotFound", f"Resource {child_id} not found.")
            response.body = existing
            response.headers["ETag"] = str(existing.get("etag", ""))
            return
        if not writable_child or request.method not in ("PUT", "DELETE"):
            raise method_not_allowed(request.method)
        if request.method == "DELETE" and existing is None:
            response.status = 204
            return
        others = [c for c in children if c is not existing]
        if request.method == "PUT":
            given = json_object(request.body)
            given["name"] = existing["name"] if existing else name
            others.append(given)
        # A child shares its parent's etag, so If-Match is checked against the parent.
        result = self._store.put(
            parent_ref,
            {**parent, "properties": {**properties(parent), collection: others}},
            context,
            if_match=request.headers.get("if-match"),
            fail_with=injected_failure() if context.fail_operation else None,
        )
        response.status = 202 if request.method == "DELETE" else 201 if existing is None else 200
        if request.method == "PUT":
            now = properties(result.doc or {}).get(collection) or []
            response.body = next(c for c in now if str(c.get("name", "")).lower() == name.lower())
        if result.operation is not None:
            self._announce(response, result.operation, api_version, request.method)


def _child_key(match: re.Match[str]) -> tuple[str, str]:
    return match["parent"].lower(), match["collection"].lower()
