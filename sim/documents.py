"""ARM resource documents as JSON: the helpers every resource type's rules share.

Pure functions on one document, no store and no lock: a new etag, RFC 7386 merge patch, what
of a client's body is writable, `properties` (always there in ARM's answers), NRP's inline
sub-resources (they share their parent's etag), a `{"id": ...}` reference, and the
provisioningState a write moves a document (and its sub-resources) through.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from sim import ids

JsonDict = dict[str, Any]


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def merge_patch(target: JsonDict, patch: Mapping[str, Any]) -> JsonDict:
    """RFC 7386 JSON merge patch: objects merge, everything else (lists too) replaces, null removes."""
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(target.get(name), dict):
            merge_patch(target[name], value)
        else:
            target[name] = copy.deepcopy(value)
    return target


def writable(body: JsonDict, server_owned: tuple[str, ...], current: JsonDict | None) -> JsonDict:
    """A client's body without server fields, with the server-owned properties carried over."""
    doc = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "name", "type", "etag")}
    given = doc.get("properties")
    props: JsonDict = copy.deepcopy(given) if isinstance(given, dict) else {}
    doc["properties"] = props
    props.pop("provisioningState", None)
    previous = properties(current) if current is not None else {}
    for name in server_owned:
        props.pop(name, None)
        if name in previous:
            props[name] = copy.deepcopy(previous[name])
    return doc


def properties(doc: JsonDict) -> JsonDict:
    """`doc["properties"]`, created if missing (ARM always returns it)."""
    props = doc.get("properties")
    if not isinstance(props, dict):
        props = {}
        doc["properties"] = props
    return props


def sub_resources(doc: JsonDict) -> list[JsonDict]:
    """NRP's inline child resources (a NIC's ipConfigurations, a virtual network's subnets, a load
    balancer's pools, rules and frontends): they share their parent's etag."""
    props = properties(doc)
    found: list[JsonDict] = []
    for name in ("ipConfigurations", "subnets", *ids.LB_COLLECTIONS):
        found.extend(sub for sub in props.get(name) or [] if isinstance(sub, dict))
    return found


def reference_id(value: Any) -> str | None:
    """The `id` of a `{"id": ...}` sub-resource reference, else None."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


def set_state(doc: JsonDict, state: str) -> None:
    """A document's provisioningState, and its inline sub-resources' with it."""
    props = properties(doc)
    props["provisioningState"] = state
    for sub in sub_resources(doc):
        properties(sub)["provisioningState"] = state
