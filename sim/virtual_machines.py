"""Microsoft.Compute's virtual machines: NIC back-references, membership of a Flexible set.

VMs can be attached to a Flexible set by hand (`properties.virtualMachineScaleSet.id`);
whether those count in the capacity is undocumented, so it is a switch. The simulator knows
which VMs the set created (`Meta.created_by_scale_set`); the remediator must infer it from the
same evidence a real estate offers (on seeding, `link` infers it from the same evidence too).
"""

from __future__ import annotations

import string
import uuid

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, properties, reference_id, writable
from sim.errors import ArmError, invalid_parameter, invalid_reference
from sim.events import RequestContext, utc_now_iso
from sim.ids import VM_TYPE, ResourceRef
from sim.scale_set_model import capacity_of, counts_in_capacity, is_flexible, scale_set_id, set_capacity
from sim.store import Store


class VirtualMachines(Behaviour):
    """VM rules: NIC back-references, hand attach to a Flexible set, deleteOption on delete."""

    resource_type = VM_TYPE
    _server_owned = ("vmId", "timeCreated", "instanceView")

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = writable(body, self._server_owned, current)
        props = properties(doc)
        props.setdefault("vmId", str(uuid.uuid4()))
        props.setdefault("timeCreated", utc_now_iso())
        vm_id = current["id"] if current is not None else ref.id
        set_id = scale_set_id(doc)
        previous_set = scale_set_id(current) if current is not None else None
        if current is not None and ids.key(set_id or "") != ids.key(previous_set or ""):
            raise ArmError(
                400,
                "PropertyChangeNotAllowed",
                "Changing property 'virtualMachineScaleSet.id' is not allowed.",
                target="virtualMachineScaleSet.id",
            )
        if set_id is not None and current is None:
            vmss = store.doc(set_id)
            if vmss is None or properties(vmss).get("provisioningState") == "Deleting":
                raise invalid_parameter(
                    f"The virtual machine scale set {set_id} referenced by virtual machine {vm_id} "
                    "was not found.",
                    target="virtualMachineScaleSet.id",
                )
            if not is_flexible(vmss):
                raise invalid_parameter(
                    f"Virtual machine scale set {vmss['id']} is not in Flexible orchestration mode; only "
                    "Flexible scale sets accept virtual machines attached by reference.",
                    target="virtualMachineScaleSet.id",
                )
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            if nic_id is None:
                raise invalid_parameter(
                    "Every network interface reference needs an id.", target="networkInterfaces"
                )
            nic = store.doc(nic_id)
            if nic is None or properties(nic).get("provisioningState") == "Deleting":
                raise invalid_reference(nic_id, vm_id)
            holder = reference_id(properties(nic).get("virtualMachine"))
            if holder is not None and ids.key(holder) != ids.key(vm_id) and store.doc(holder) is not None:
                raise ArmError(
                    400,
                    "NicInUse",
                    f"Network interface {nic['id']} is already used by virtual machine {holder}.",
                )
        return doc

    def apply_put(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> None:
        wanted = {ids.key(nic_id) for nic_ref in _nic_refs(doc) if (nic_id := reference_id(nic_ref))}
        for nic_key in wanted:
            nic = store.doc(nic_key)
            if nic is not None and reference_id(properties(nic).get("virtualMachine")) != doc["id"]:
                properties(nic)["virtualMachine"] = {"id": doc["id"]}
                store.touch(nic)
        for nic_ref in _nic_refs(previous) if previous is not None else []:
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is not None and ids.key(nic["id"]) not in wanted:
                _detach_nic(store, nic, doc["id"])
        set_id = scale_set_id(doc)
        vmss = store.doc(set_id) if set_id else None
        if previous is None and vmss is not None and store.settings.manual_vms_count_in_capacity:
            set_capacity(store, vmss, capacity_of(vmss) + 1)

    def complete_delete(
        self, store: Store, doc: JsonDict, context: RequestContext, *, requested: bool
    ) -> None:
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is None:
                continue
            _detach_nic(store, nic, doc["id"])
            # CRP's default for a NIC attached by reference is Detach; Flex instances say Delete.
            if str(properties(nic_ref).get("deleteOption", "Detach")).lower() != "delete":
                continue
            doomed_pips = _pips_deleted_with(doc, nic)
            store.remove_child(nic["id"], context)
            for pip_id in doomed_pips:
                store.remove_child(pip_id, context)
        set_id = scale_set_id(doc)
        vmss = store.doc(set_id) if set_id else None
        meta = store.meta(doc["id"])
        # Deleting a Flex member by API lowers the capacity it counted in (the set does not replace it).
        if (
            requested
            and vmss is not None
            and meta is not None
            and counts_in_capacity(store, meta)
            and capacity_of(vmss) > 0
        ):
            set_capacity(store, vmss, capacity_of(vmss) - 1)

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("vmId", str(uuid.uuid4()))

    def link(self, store: Store, doc: JsonDict) -> None:
        for nic_ref in _nic_refs(doc):
            nic_id = reference_id(nic_ref)
            nic = store.doc(nic_id) if nic_id else None
            if nic is not None:
                properties(nic)["virtualMachine"] = {"id": doc["id"]}
        set_id = scale_set_id(doc)
        meta = store.meta(doc["id"])
        vmss = store.doc(set_id) if set_id else None
        if meta is not None and vmss is not None:
            # An export does not say who created a VM; the Flex naming and profile copy are the evidence.
            name = str(doc.get("name", ""))
            prefix = f"{vmss.get('name', '')}_".lower()
            suffix = name[len(prefix) :]
            meta.created_by_scale_set = (
                name.lower().startswith(prefix)
                and len(suffix) == 8
                and all(c in string.hexdigits for c in suffix)
                and bool(properties(doc).get("networkProfile", {}).get("networkInterfaceConfigurations"))
            )


def _nic_refs(vm: JsonDict) -> list[JsonDict]:
    refs = (properties(vm).get("networkProfile") or {}).get("networkInterfaces") or []
    return [ref for ref in refs if isinstance(ref, dict)]


def _detach_nic(store: Store, nic: JsonDict, vm_id: str) -> None:
    holder = reference_id(properties(nic).get("virtualMachine"))
    if holder is not None and ids.key(holder) == ids.key(vm_id):
        properties(nic).pop("virtualMachine", None)
        store.touch(nic)


def _pips_deleted_with(vm: JsonDict, nic: JsonDict) -> list[str]:
    """Public IPs on `nic` whose VM-side configuration says deleteOption Delete."""
    options: dict[str, str] = {}
    configs = (properties(vm).get("networkProfile") or {}).get("networkInterfaceConfigurations") or []
    for config in configs:
        for ipc in properties(config).get("ipConfigurations") or []:
            public = properties(ipc).get("publicIPAddressConfiguration")
            if isinstance(public, dict):
                options[str(ipc.get("name", "")).lower()] = str(
                    properties(public).get("deleteOption", "Detach")
                )
    doomed: list[str] = []
    for cfg in properties(nic).get("ipConfigurations") or []:
        pip_id = reference_id(properties(cfg).get("publicIPAddress"))
        if pip_id and options.get(str(cfg.get("name", "")).lower(), "").lower() == "delete":
            doomed.append(pip_id)
    return doomed
