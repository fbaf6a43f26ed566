"""Exported resources -> observed scale sets, for what-if planning with no ARM at all. Pure.

Reads what people export, from any number of files, through ``exported``: ARM JSON (one resource,
an array, a list response), ``az ... list`` output, Resource Graph results. Documents of other
types are ignored; a document that is not a resource is an error that names the file and position.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from remediation.exported import ExportError, resources
from remediation.model import Instance, ObservedSet
from remediation.resource_ids import (
    NIC_TYPE,
    SCALE_SET_TYPE,
    VIRTUAL_MACHINE_TYPE,
    InvalidResourceId,
    ResourceId,
)
from remediation.resources import NetworkInterface, ScaleSet, VirtualMachine


class InventoryError(ValueError):
    """An inventory document is not ARM JSON; the message names the file and the position."""


@dataclass(frozen=True)
class Inventory:
    scale_sets: tuple[ScaleSet, ...]
    vms: tuple[VirtualMachine, ...]
    nics: tuple[NetworkInterface, ...]

    def observed(self, at: datetime) -> list[ObservedSet]:
        nics = {nic.id: nic for nic in self.nics}
        result = []
        for scale_set in self.scale_sets:
            members = [vm for vm in self.vms if vm.scale_set_id == scale_set.id]
            instances = tuple(
                Instance(vm, tuple(nics[nic_id] for nic_id in vm.nic_ids if nic_id in nics)) for vm in members
            )
            result.append(ObservedSet(scale_set, instances, at))
        return result


def load_inventory(files: Iterable[tuple[str, str]]) -> Inventory:
    """Parse ``(name, text)`` pairs into an inventory of scale sets, VMs and NICs."""
    scale_sets: dict[ResourceId, ScaleSet] = {}
    vms: dict[ResourceId, VirtualMachine] = {}
    nics: dict[ResourceId, NetworkInterface] = {}
    for source, text in files:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InventoryError(f"{source}: not valid JSON: {error}") from None
        try:
            found = resources(document, source)
        except ExportError as error:
            raise InventoryError(str(error)) from None
        for where, item in found:
            try:
                resource_id = ResourceId.parse(item.get("id"))
                if resource_id.is_type(SCALE_SET_TYPE):
                    scale_sets[resource_id] = ScaleSet.from_arm(item)
                elif resource_id.is_type(VIRTUAL_MACHINE_TYPE):
                    vms[resource_id] = VirtualMachine.from_arm(item)
                elif resource_id.is_type(NIC_TYPE):
                    nics[resource_id] = NetworkInterface.from_arm(item)
            except (InvalidResourceId, TypeError, ValueError, AttributeError) as error:
                raise InventoryError(f"{where}: {error}") from None
    return Inventory(tuple(scale_sets.values()), tuple(vms.values()), tuple(nics.values()))
