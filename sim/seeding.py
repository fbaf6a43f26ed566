"""Seed documents in either shape users have: ARM JSON, or what `az ... list` prints.

The what-if planner and the demo are most useful on a copy of a user's own
estate, and the easiest copy to make is `az vmss list -o json > sets.json`. The
CLI prints resources flattened: `properties` is merged into the resource (and
into each sub-resource: ipConfigurations, subnets, network interface
configurations), and every object gains a `resourceGroup`. This module turns
that back into ARM's shape; ARM JSON passes through unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

JsonDict = dict[str, Any]

# Keys that stay outside `properties` in ARM's shape.
_ENVELOPE = frozenset(
    {
        "id",
        "name",
        "type",
        "location",
        "tags",
        "etag",
        "sku",
        "zones",
        "identity",
        "plan",
        "kind",
        "extendedLocation",
        "managedBy",
        "systemData",
        "instanceId",
    }
)
_SUB_ENVELOPE = frozenset({"id", "name", "type", "etag"})
# Sub-resource lists that the CLI flattens too, by the key that holds them.
_FLATTENED_LISTS = ("ipConfigurations", "subnets", "networkInterfaceConfigurations", "networkInterfaces")


def _items(document: JsonDict | list[JsonDict]) -> list[JsonDict]:
    if isinstance(document, list):
        return list(document)
    if isinstance(document.get("value"), list) and "id" not in document:
        return list(document["value"])
    return [document]


def is_cli_output(item: JsonDict) -> bool:
    """`az` output has `resourceGroup` on every resource and no `properties` object."""
    return "resourceGroup" in item and not isinstance(item.get("properties"), dict)


def _strip_groups(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_groups(v) for k, v in value.items() if k != "resourceGroup"}
    if isinstance(value, list):
        return [_strip_groups(v) for v in value]
    return value


def _fold(flat: JsonDict, envelope: frozenset[str]) -> JsonDict:
    """Move every non-envelope key under `properties`, unflattening known sub-resource lists."""
    doc: JsonDict = {k: v for k, v in flat.items() if k in envelope}
    props: JsonDict = {k: v for k, v in flat.items() if k not in envelope}
    for name in _FLATTENED_LISTS:
        if isinstance(props.get(name), list):
            props[name] = [_fold_sub(item) for item in props[name]]
    for name in ("networkProfile", "virtualMachineProfile"):
        if isinstance(props.get(name), dict):
            props[name] = _fold_profile(props[name])
    public = props.get("publicIPAddressConfiguration")
    if isinstance(public, dict) and not isinstance(public.get("properties"), dict):
        props["publicIPAddressConfiguration"] = _fold(public, _SUB_ENVELOPE | {"sku"})
    doc["properties"] = props
    return doc


def _fold_sub(item: Any) -> Any:
    if not isinstance(item, dict) or isinstance(item.get("properties"), dict):
        return item
    if set(item) <= {"id"}:
        return item  # a bare reference
    return _fold(item, _SUB_ENVELOPE)


def _fold_profile(profile: JsonDict) -> JsonDict:
    """Profiles stay flat in ARM too; only the sub-resource lists inside them are unflattened."""
    folded = dict(profile)
    for name in _FLATTENED_LISTS:
        if isinstance(folded.get(name), list):
            folded[name] = [_fold_sub(item) for item in folded[name]]
    if isinstance(folded.get("networkProfile"), dict):
        folded["networkProfile"] = _fold_profile(folded["networkProfile"])
    return folded


def from_cli(item: JsonDict) -> JsonDict:
    """One resource printed by `az` in ARM's shape."""
    return _fold(_strip_groups(copy.deepcopy(item)), _ENVELOPE)


def read_documents(document: JsonDict | list[JsonDict]) -> list[JsonDict]:
    """The resources of a seed document, each in ARM's shape."""
    return [from_cli(item) if is_cli_output(item) else item for item in _items(document)]
