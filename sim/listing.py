"""List endpoints: a type's resources in a group or subscription, their `$filter`, and paging.

Lists answer from the lagging view (sim/lagging_view.py, `list_lag_s`), paged at `page_size`
items with an absolute `nextLink` that carries `$skiptoken` (and the `$filter`, if any).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, urlencode

from sim import ids
from sim.admission import FrontDoor
from sim.api_messages import Response
from sim.documents import JsonDict, properties
from sim.errors import invalid_parameter
from sim.ids import VM_TYPE

_VMSS_FILTER = re.compile(r"^\s*'virtualMachineScaleSet/id'\s+eq\s+'(?P<id>[^']+)'\s*$", re.IGNORECASE)


class ListRoutes(FrontDoor):
    """Lists of top-level resources, and the paging every list (scale set children too) shares."""

    def _list(
        self,
        response: Response,
        *,
        path: str,
        subscription: str,
        resource_group: str | None,
        query: dict[str, str],
        api_version: str,
    ) -> None:
        predicate: Callable[[JsonDict], bool] | None = None
        filter_text = query.get("$filter")
        if filter_text:
            match = _VMSS_FILTER.match(filter_text)
            if response.resource_type != VM_TYPE or match is None:
                raise invalid_parameter(
                    f"The filter '{filter_text}' is not supported. The only supported filter is "
                    "'virtualMachineScaleSet/id' eq '<scale set id>', on virtual machines.",
                    target="$filter",
                )
            wanted = ids.key(match["id"])

            def predicate(doc: JsonDict) -> bool:
                ref = properties(doc).get("virtualMachineScaleSet")
                return isinstance(ref, dict) and ids.key(str(ref.get("id", ""))) == wanted

        items = self._store.list_resources(subscription, resource_group, response.resource_type, predicate)
        self._page(response, items, path=path, query=query, api_version=api_version)

    def _page(
        self, response: Response, items: list[JsonDict], *, path: str, query: dict[str, str], api_version: str
    ) -> None:
        token = query.get("$skiptoken", "0")
        if not token.isdigit():
            raise invalid_parameter(f"The value '{token}' of '$skiptoken' is invalid.", target="$skiptoken")
        start = int(token)
        size = max(self._store.settings.page_size, 1)
        body: JsonDict = {"value": items[start : start + size]}
        if start + size < len(items):
            params = {"api-version": api_version}
            if query.get("$filter"):
                params["$filter"] = query["$filter"]
            params["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{self._endpoint()}{quote(path)}?{urlencode(params, quote_via=quote)}"
        response.body = body
