"""Exported resource documents -> resources in ARM's shape, whatever exported them. Pure.

The one reader of exports: the what-if planner's inventory (``inventory``) and the simulator's
seeding both read through it. What people export, from any number of files:
- ARM JSON: one resource, a JSON array of them, or a list response ``{"value": [...]}``;
- what ``az vmss list``, ``az vm list``, ``az network nic list`` (or ``show``) print: the CLI
  merges ``properties`` into the resource and into each sub-resource (ipConfigurations, subnets,
  network interface configurations) and adds ``resourceGroup`` to every object; folded back here;
- Resource Graph results (``az graph query -q "Resources | where ..."``, or the REST API's
  answer): ``{"data": [...]}`` whose rows are ARM's shape with ``resourceGroup``,
  ``subscriptionId`` and ``tenantId`` added and the type in lower case (ids compare without
  case), or the table format ``{"data": {"columns": [...], "rows": [...]}}``. A result with a
  skip token is one page of several: refused, since planning on part of an estate would report
  the rest clean.
A document that is none of these is an ``ExportError`` naming the file and the position.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

JsonDict = dict[str, Any]


class ExportError(ValueError):
    """An exported document is not one of the accepted shapes; the message says where."""


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
# ARM reads property names without regard to case, and `az vm` / `az vmss` print the SDK's
# attribute names in camel case (publicIpAddressConfiguration, privateIpAddress), while
# `az network` prints the REST names: the keys the planner reads are put back in ARM's casing.
_ARM_CASING = {
    name.lower(): name
    for name in (
        "publicIPAddressConfiguration",
        "publicIPAddress",
        "publicIPAddresses",
        "privateIPAddress",
        "privateIPAllocationMethod",
        "ipConfigurations",
        "networkInterfaceConfigurations",
        "networkInterfaces",
        "networkProfile",
        "virtualMachineProfile",
        "virtualMachineScaleSet",
        "virtualMachine",
    )
}
# Sub-resource lists that the CLI flattens too, by the key that holds them.
_FLATTENED_LISTS = ("ipConfigurations", "subnets", "networkInterfaceConfigurations", "networkInterfaces")
# The paging fields of a Resource Graph answer (REST: $skipToken; az: skip_token).
_SKIP_TOKENS = ("$skipToken", "skipToken", "skip_token")


def _graph_rows(document: Mapping[str, Any], source: str) -> list[Any]:
    """The rows of a Resource Graph answer, as objects."""
    truncated = str(document.get("resultTruncated")).lower() == "true"
    if truncated or any(document.get(key) for key in _SKIP_TOKENS):
        raise ExportError(
            f"{source}: a Resource Graph result with more pages (skip token set or resultTruncated): "
            "export every page (az graph query --first 1000, then --skip-token) into one array"
        )
    data = document["data"]
    if isinstance(data, list):
        return data
    columns, rows = (data.get("columns"), data.get("rows")) if isinstance(data, Mapping) else (None, None)
    if isinstance(columns, list) and isinstance(rows, list):
        names = [column.get("name") if isinstance(column, Mapping) else None for column in columns]
        if not all(isinstance(name, str) for name in names):
            raise ExportError(f"{source}: data.columns: every column needs a 'name'")
        objects = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                wanted = f"one value per column ({len(names)})"
                raise ExportError(f"{source}: data.rows[{index}]: expected {wanted}")
            objects.append(dict(zip(names, row, strict=True)))
        return objects
    raise ExportError(f"{source}: 'data' is neither a list of rows nor a table with columns and rows")


def _items(document: Any, source: str) -> tuple[list[Any], bool]:
    """The items of a document, and whether they are listed (positions are named in errors)."""
    if isinstance(document, list):
        return document, True
    if isinstance(document, Mapping) and "id" not in document:
        if isinstance(document.get("value"), list):
            return document["value"], True
        if "data" in document:
            return _graph_rows(document, source), True
    return [document], False


def is_cli_output(item: Mapping[str, Any]) -> bool:
    """`az` output has `resourceGroup` on every resource and no `properties` object."""
    return "resourceGroup" in item and not isinstance(item.get("properties"), dict)


def _strip_groups(value: Any) -> Any:
    """Without the CLI's `resourceGroup` on every object, and the keys in ARM's casing."""
    if isinstance(value, dict):
        kept = ((k, v) for k, v in value.items() if k != "resourceGroup")
        return {_ARM_CASING.get(k.lower(), k): _strip_groups(v) for k, v in kept}
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


def from_cli(item: Mapping[str, Any]) -> JsonDict:
    """One resource printed by `az` in ARM's shape."""
    return _fold(_strip_groups(copy.deepcopy(dict(item))), _ENVELOPE)


def resources(document: Any, source: str = "document") -> list[tuple[str, JsonDict]]:
    """Each resource of one exported document in ARM's shape, with where it was (``source``, and
    ``[i]`` for a position in a list)."""
    items, listed = _items(document, source)
    found = []
    for index, item in enumerate(items):
        where = f"{source}[{index}]" if listed else source
        if not isinstance(item, Mapping):
            raise ExportError(f"{where}: expected an ARM resource object, got {type(item).__name__}")
        found.append((where, from_cli(item) if is_cli_output(item) else dict(item)))
    return found


def read_documents(document: Any) -> list[JsonDict]:
    """The resources of one exported document, each in ARM's shape."""
    return [resource for _, resource in resources(document)]
