"""Azure Resource Graph, for the one query shape the remediator's sweep sends.

The sweep finds every scale set of many subscriptions with one Resource Graph
query instead of a listing per subscription. Reproducing KQL is out of scope;
this parses the small subset the sweep uses (`resources`, `| where <column> =~
'<value>'` or `==`, `| project <columns>`, whitespace-liberal) and refuses
anything else with a 400 that names what is unsupported, so a query that would
silently return something different in Azure fails loudly here instead. Answers
have Resource Graph's shape (`totalRecords`, `count`, `data`, `facets`,
`resultTruncated`, `$skipToken` when there is more) with the object-array
result format; like Resource Graph, `type` comes back in lower case.

A query is scoped by `subscriptions` (a list of ids) or by `managementGroups` (a list of group names,
as Resource Graph's QueryRequest has them: learn.microsoft.com, "Resources - Resources" REST
reference, and "Azure Resource Graph: query at management group scope"): then the rows are those of
every subscription in those groups or beneath them (sim/management_groups.py; a subscription never
placed is in the tenant root group). Both at once, or a group that does not exist, is a 400 worded
by the simulator (Resource Graph's own answer is not documented). Paging is the same either way:
`$top` rows (at most 1000) a page, `$skipToken` for the next.

Like Resource Graph's index, the rows lag the writes: they show the estate as it was
`graph_lag_s` simulated seconds ago (sim/lagging_view.py; Resource Graph documents up to a
minute for a change to show).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim import ids
from sim.documents import JsonDict
from sim.errors import ArmError
from sim.management_groups import ManagementGroups
from sim.store import Store

MAX_TOP = 1000
# Columns of the `resources` table that the simulator can fill from a document.
COLUMNS = (
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
)
_COLUMN_NAMES = {c.lower(): c for c in COLUMNS}
_WHERE = re.compile(r"^where\s+(?P<col>\w+)\s*(?P<op>=~|==)\s*'(?P<value>[^']*)'$", re.IGNORECASE)
_PROJECT = re.compile(r"^project\s+(?P<cols>\w+(?:\s*,\s*\w+)*)$", re.IGNORECASE)


def unsupported(what: str) -> ArmError:
    return ArmError(
        400,
        "BadRequest",
        f"Please provide below info when asking for support: the query is not supported by the ARM "
        f"simulator: {what}. Supported: resources | where <column> =~ '<value>' | project <columns>.",
        target="query",
    )


@dataclass(frozen=True)
class Query:
    filters: tuple[tuple[str, str, str], ...]  # (column, operator, value)
    columns: tuple[str, ...] | None  # None: every column


def parse(text: str) -> Query:
    """The supported subset of KQL, or ArmError 400 naming what is not supported."""
    stages = [stage.strip() for stage in text.strip().split("|")]
    if not stages or stages[0].lower() != "resources":
        raise unsupported(f"table '{stages[0] if stages else ''}' (only 'resources')")
    filters: list[tuple[str, str, str]] = []
    columns: tuple[str, ...] | None = None
    for stage in stages[1:]:
        normalised = " ".join(stage.split())
        where = _WHERE.match(normalised)
        project = _PROJECT.match(normalised)
        if where is not None:
            column = _column(where["col"])
            filters.append((column, where["op"], where["value"]))
        elif project is not None:
            columns = tuple(_column(name.strip()) for name in project["cols"].split(","))
        else:
            raise unsupported(f"operator '{normalised.split(' ', 1)[0]}' in '| {normalised}'")
    return Query(tuple(filters), columns)


def _column(name: str) -> str:
    column = _COLUMN_NAMES.get(name.lower())
    if column is None:
        raise unsupported(f"column '{name}'")
    return column


def row(doc: JsonDict, tenant_id: str) -> JsonDict:
    """A document as a row of the `resources` table."""
    resource_id = str(doc["id"])
    ref = ids.parse(resource_id)
    full: JsonDict = {
        "id": resource_id,
        "name": doc.get("name", ""),
        "type": str(doc.get("type", "")).lower(),
        "tenantId": tenant_id,
        "kind": doc.get("kind", ""),
        "location": str(doc.get("location", "")).replace(" ", "").lower(),
        "resourceGroup": (ref.resource_group.lower() if ref else ""),
        "subscriptionId": ids.subscription_of(resource_id),
        "managedBy": doc.get("managedBy", ""),
        "sku": doc.get("sku"),
        "plan": doc.get("plan"),
        "properties": doc.get("properties"),
        "tags": doc.get("tags") or {},
        "identity": doc.get("identity"),
        "zones": doc.get("zones"),
        "extendedLocation": doc.get("extendedLocation"),
    }
    return full


def _matches(values: JsonDict, filters: tuple[tuple[str, str, str], ...]) -> bool:
    for column, op, wanted in filters:
        value = values.get(column)
        text = "" if value is None else str(value)
        if (op == "=~" and text.lower() != wanted.lower()) or (op == "==" and text != wanted):
            return False
    return True


def _skip(token: Any) -> int:
    if token in (None, ""):
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode("ascii")).decode("ascii"))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ArmError(
            400, "InvalidSkipToken", f"The $skipToken '{token}' is invalid.", target="$skipToken"
        ) from exc


def _scope(body: JsonDict, groups: ManagementGroups | None) -> Callable[[str], bool] | None:
    """Which subscriptions' rows a body asks for (None: every subscription)."""
    subscriptions, management_groups = body.get("subscriptions"), body.get("managementGroups")
    if management_groups is None:
        if subscriptions is not None and not (
            isinstance(subscriptions, list) and all(isinstance(s, str) for s in subscriptions)
        ):
            raise ArmError(
                400, "BadRequest", "'subscriptions' must be a list of ids.", target="subscriptions"
            )
        wanted = {s.lower() for s in subscriptions} if subscriptions is not None else None
        return None if wanted is None else (lambda sub: sub.lower() in wanted)
    if subscriptions is not None:
        raise unsupported("both 'subscriptions' and 'managementGroups' (give one of them)")
    if not (isinstance(management_groups, list) and all(isinstance(g, str) for g in management_groups)):
        raise ArmError(
            400, "BadRequest", "'managementGroups' must be a list of names.", target="managementGroups"
        )
    missing = [g for g in management_groups if groups is None or groups.group(g) is None]
    if missing:
        raise ArmError(
            400,
            "BadRequest",
            f"The management group(s) {', '.join(repr(g) for g in missing)} do not exist.",
            target="managementGroups",
        )
    assert groups is not None
    under: dict[str, bool] = {}

    def in_groups(sub: str) -> bool:
        key = sub.lower()
        if key not in under:
            under[key] = groups.is_under(key, management_groups)
        return under[key]

    return in_groups


def run(
    store: Store,
    body: JsonDict,
    tenant_id: str,
    *,
    visible: Callable[[JsonDict], bool] | None = None,
    groups: ManagementGroups | None = None,
) -> JsonDict:
    """Answer one `POST /providers/Microsoft.ResourceGraph/resources` body.

    visible: which documents the caller may read; like Resource Graph, rows of the others are left
    out (not refused), and `totalRecords` counts only what the caller may see.
    groups: the tenant's management groups, for a query at management group scope.
    """
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise ArmError(400, "BadRequest", "The 'query' property is required.", target="query")
    in_scope = _scope(body, groups)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ArmError(400, "BadRequest", "'options' must be an object.", target="options")
    result_format = str(options.get("resultFormat", "objectArray"))
    if result_format.lower() != "objectarray":
        raise unsupported(f"resultFormat '{result_format}' (only 'objectArray')")
    top = options.get("$top", MAX_TOP)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
        raise ArmError(400, "BadRequest", f"'$top' must be between 1 and {MAX_TOP}.", target="$top")
    start = _skip(options.get("$skipToken")) + int(options.get("$skip", 0) or 0)
    query = parse(text)
    rows: list[JsonDict] = []
    for doc in store.visible(store.settings.graph_lag_s):
        if ids.parse(str(doc.get("id", ""))) is None:
            continue  # Uniform instances and their NICs are not rows of `resources`
        if in_scope is not None and not in_scope(ids.subscription_of(str(doc["id"]))):
            continue
        if visible is not None and not visible(doc):
            continue
        values = row(doc, tenant_id)
        if _matches(values, query.filters):
            rows.append(values if query.columns is None else {c: values[c] for c in query.columns})
    page = rows[start : start + top]
    answer: JsonDict = {
        "totalRecords": len(rows),
        "count": len(page),
        "data": page,
        "facets": [],
        "resultTruncated": "false",
    }
    if start + top < len(rows):
        answer["$skipToken"] = base64.urlsafe_b64encode(str(start + top).encode("ascii")).decode("ascii")
    return answer
