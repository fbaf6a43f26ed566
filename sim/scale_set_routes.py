"""The endpoints under a Uniform scale set: its instances, their NICs and public IPs, manualupgrade.

Served by paths under `.../virtualMachineScaleSets/{set}/`; a Flexible set answers them 400
`OperationNotAllowed` (its instances are ordinary VMs). The rules of the instances themselves
are sim/uniform_instances.py's.
"""

from __future__ import annotations

import re

from sim import ids
from sim.api_messages import (
    Request,
    Response,
    api_version_of,
    injected_failure,
    method_not_allowed,
    operation_name,
)
from sim.documents import JsonDict
from sim.errors import ArmError, invalid_parameter, json_object, not_found
from sim.events import RequestContext
from sim.ids import NIC_TYPE, PIP_TYPE, VMSS_TYPE, VMSS_VM_TYPE, ResourceRef
from sim.listing import ListRoutes
from sim.operations import OperationRoutes
from sim.scale_set_model import is_flexible
from sim.store import Store
from sim.uniform_instances import upgrade_instances

SCALE_SET_PATH = re.compile(
    r"^(?P<set>/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachineScaleSets/(?P<name>[^/]+))/(?P<rest>.+?)/?$",
    re.IGNORECASE,
)


class ScaleSetChildRoutes(ListRoutes, OperationRoutes):
    """Uniform instances and their network views, under one scale set."""

    def _scale_set_child(
        self, request: Request, path: str, query: dict[str, str], correlation: str, response: Response
    ) -> None:
        """Uniform instances, their NICs and public IPs, and manualupgrade, under one scale set."""
        match = SCALE_SET_PATH.match(path)
        assert match is not None
        parts = [p for p in match["rest"].split("/") if p]
        shape = _child_shape([p.lower() for p in parts])
        if shape is None:
            response.resource_type = VMSS_TYPE
            self._admit(request, path, response, "Microsoft.Compute", correlation)
            raise ArmError(
                400,
                "InvalidResourceType",
                f"The path segment '{match['rest']}' is not served for scale sets.",
            )
        rtype = {"instances": VMSS_VM_TYPE, "instance": VMSS_VM_TYPE, "upgrade": VMSS_TYPE}.get(
            shape, NIC_TYPE if "nic" in shape else PIP_TYPE
        )
        response.resource_type = rtype
        response.operation = (
            f"{VMSS_TYPE}/manualupgrade/action"
            if shape == "upgrade"
            else operation_name(rtype, request.method)
        )
        context = self._admit(request, path, response, "Microsoft.Compute", correlation)
        api_version = api_version_of(query)
        vmss = self._store.get(match["set"])
        if vmss is None:
            if shape.startswith(("nic", "pip", "instance-nics", "ipconfig")):
                raise ArmError(404, "NotFound", f"Resource {match['set']} not found.")
            raise not_found(ResourceRef(match["sub"], match["rg"], VMSS_TYPE, match["name"]))
        if is_flexible(vmss):
            raise ArmError(
                400,
                "OperationNotAllowed",
                f"This operation is not supported for virtual machine scale set {vmss['id']} in Flexible "
                "orchestration mode; use the virtual machines API for its instances.",
            )
        if shape == "upgrade":
            if request.method != "POST":
                raise method_not_allowed(request.method)
            self._manual_upgrade(request, response, vmss, context, api_version)
        elif request.method == "DELETE" and shape == "instance":
            self._delete_instance(
                request, response, f"{vmss['id']}/virtualMachines/{parts[1]}", context, api_version
            )
        elif request.method != "GET":
            raise method_not_allowed(request.method)
        elif shape in _CHILD_LISTS:
            items = self._store.list_under(
                _child_id(vmss["id"], parts, _CHILD_LISTS[shape][0]), _CHILD_LISTS[shape][1]
            )
            items.sort(key=_instance_order)
            self._page(response, items, path=path, query=query, api_version=api_version)
        else:
            self._child_get(response, vmss, parts, shape)

    def _delete_instance(
        self,
        request: Request,
        response: Response,
        instance_id: str,
        context: RequestContext,
        api_version: str,
    ) -> None:
        if self._store.get(instance_id) is None:
            response.status = 204
            return
        result = self._store.delete(
            instance_id,
            context,
            if_match=request.headers.get("if-match"),
            fail_with=injected_failure() if context.fail_operation else None,
        )
        response.status = result.status
        if result.operation is not None:
            self._announce(response, result.operation, api_version, "DELETE")

    def _child_get(self, response: Response, vmss: JsonDict, parts: list[str], shape: str) -> None:
        wanted = _child_id(vmss["id"], parts, len(parts))
        doc = self._store.get(wanted)
        if doc is None:
            if shape == "instance" and not parts[1].isdigit():  # CRP's answer (recorded from Azure)
                raise invalid_parameter(
                    "Virtual Machine Scale Set VM instanceId must be a number.", "instanceId"
                )
            if shape == "instance":
                raise ArmError(
                    404,
                    "NotFound",
                    f"The entity was not found in this Azure location. Instance '{parts[1]}' of scale set "
                    f"'{vmss['name']}' does not exist.",
                )
            raise ArmError(404, "NotFound", f"Resource {wanted} not found.")
        response.body = doc
        response.headers["ETag"] = str(doc.get("etag", ""))

    def _manual_upgrade(
        self, request: Request, response: Response, vmss: JsonDict, context: RequestContext, api_version: str
    ) -> None:
        body = json_object(request.body)
        wanted = body.get("instanceIds")
        if not isinstance(wanted, list) or not wanted or not all(isinstance(i, str) for i in wanted):
            raise invalid_parameter(
                "Required parameter 'instanceIds' is missing (null).", target="instanceIds"
            )
        known = {str(doc.get("instanceId")) for doc in self._store.children_under(vmss["id"], VMSS_VM_TYPE)}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise invalid_parameter(
                f"The instance ids {', '.join(missing)} are not in scale set {vmss['name']}.",
                target="instanceIds",
            )
        instance_ids = list(dict.fromkeys(wanted))

        def work(store: Store, doc: JsonDict, ctx: RequestContext) -> None:
            upgrade_instances(store, doc, instance_ids)

        try:
            op = self._store.start_action(
                vmss["id"],
                "manualUpgrade",
                context,
                work,
                delay=self._store.settings.lro_duration_s,
                fail_with=injected_failure() if context.fail_operation else None,
            )
        except KeyError as exc:
            raise not_found(
                ResourceRef(ids.subscription_of(vmss["id"]), "", VMSS_TYPE, vmss["name"])
            ) from exc
        response.status = 202
        self._announce(response, op, api_version, "POST")


def _child_shape(parts: list[str]) -> str | None:
    """Which scale-set child endpoint a path (after the set) names, by its lower-cased segments."""
    shapes: dict[tuple[str, ...], str] = {
        ("virtualmachines",): "instances",
        ("virtualmachines", "*"): "instance",
        ("manualupgrade",): "upgrade",
        ("networkinterfaces",): "nics",
        ("publicipaddresses",): "pips",
        ("virtualmachines", "*", "networkinterfaces"): "instance-nics",
        ("virtualmachines", "*", "networkinterfaces", "*"): "nic",
        (
            "virtualmachines",
            "*",
            "networkinterfaces",
            "*",
            "ipconfigurations",
            "*",
            "publicipaddresses",
        ): "ipconfig-pips",
        (
            "virtualmachines",
            "*",
            "networkinterfaces",
            "*",
            "ipconfigurations",
            "*",
            "publicipaddresses",
            "*",
        ): "pip",
    }
    for pattern, shape in shapes.items():
        if len(pattern) == len(parts) and all(
            p in ("*", part) for p, part in zip(pattern, parts, strict=True)
        ):
            return shape
    return None


# List endpoints under a scale set: (how many path segments name the parent, the type listed).
_CHILD_LISTS: dict[str, tuple[int, str]] = {
    "instances": (0, VMSS_VM_TYPE),
    "nics": (0, NIC_TYPE),
    "pips": (0, PIP_TYPE),
    "instance-nics": (2, NIC_TYPE),
    "ipconfig-pips": (6, PIP_TYPE),
}
# The stored (ARM) casing of the path segments under a scale set.
_SEGMENT_CASING = {
    "virtualmachines": "virtualMachines",
    "networkinterfaces": "networkInterfaces",
    "ipconfigurations": "ipConfigurations",
    "publicipaddresses": "publicIPAddresses",
}


def _child_id(set_id: str, parts: list[str], count: int) -> str:
    """The id named by the first `count` segments after the set (segment names in ARM's casing)."""
    segments = [_SEGMENT_CASING.get(p.lower(), p) if i % 2 == 0 else p for i, p in enumerate(parts[:count])]
    return "/".join([set_id, *segments])


def _instance_order(doc: JsonDict) -> int:
    instance_id = str(doc.get("instanceId", ""))
    return int(instance_id) if instance_id.isdigit() else 0
