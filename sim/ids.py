"""ARM resource ids: parsing, canonical type names, case-insensitive keys.

ARM treats resource ids case-insensitively but returns the casing used at
creation, and real events mix `resourceGroups` with `resourcegroups`. Every
lookup in the simulator therefore goes through `key()` (lower case), while the
stored documents keep the caller's casing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VM_TYPE = "Microsoft.Compute/virtualMachines"
NIC_TYPE = "Microsoft.Network/networkInterfaces"
PIP_TYPE = "Microsoft.Network/publicIPAddresses"
IPCONFIG_TYPE = "Microsoft.Network/networkInterfaces/ipConfigurations"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
AUTOSCALE_TYPE = "Microsoft.Insights/autoscalesettings"
LB_TYPE = "Microsoft.Network/loadBalancers"
ASG_TYPE = "Microsoft.Network/applicationSecurityGroups"
# A load balancer's inline child collections, as NRP names them (each child is `{lb}/{collection}/{name}`).
LB_COLLECTIONS = (
    "frontendIPConfigurations",
    "backendAddressPools",
    "loadBalancingRules",
    "probes",
    "inboundNatRules",
    "outboundRules",
    "inboundNatPools",
)
# A Uniform scale set's instance: a child resource of the set, not a Microsoft.Compute/virtualMachines.
VMSS_VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"

# The top-level types the simulator serves, by lower-cased name, mapped to ARM's casing.
RESOURCE_TYPES: dict[str, str] = {
    t.lower(): t
    for t in (VMSS_TYPE, VM_TYPE, NIC_TYPE, PIP_TYPE, VNET_TYPE, LB_TYPE, ASG_TYPE, AUTOSCALE_TYPE)
}
NAMESPACES: dict[str, str] = {
    "microsoft.compute": "Microsoft.Compute",
    "microsoft.network": "Microsoft.Network",
    "microsoft.insights": "Microsoft.Insights",
    "microsoft.eventgrid": "Microsoft.EventGrid",  # system topics only: sim/event_grid.py
}

_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<ns>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)


def key(resource_id: str) -> str:
    """The case-insensitive identity of a resource id."""
    return resource_id.rstrip("/").lower()


def canonical_type(resource_type: str) -> str | None:
    """ARM's casing of a served type such as `microsoft.network/networkinterfaces`, else None."""
    return RESOURCE_TYPES.get(resource_type.lower())


@dataclass(frozen=True)
class ResourceRef:
    """One top-level resource: where it lives, its canonical type and its name."""

    subscription: str
    resource_group: str
    resource_type: str
    name: str

    @property
    def namespace(self) -> str:
        return self.resource_type.split("/", 1)[0]

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{self.resource_type}/{self.name}"
        )

    @property
    def key(self) -> str:
        return key(self.id)

    def sibling(self, resource_type: str, name: str) -> ResourceRef:
        """A resource of another type in the same subscription and resource group."""
        return ResourceRef(self.subscription, self.resource_group, resource_type, name)


def parse(resource_id: str) -> ResourceRef | None:
    """The ref of a top-level resource id of one of the served types, else None."""
    match = _RESOURCE_ID.match(resource_id)
    if not match:
        return None
    rtype = canonical_type(f"{match['ns']}/{match['type']}")
    if rtype is None:
        return None
    return ResourceRef(match["sub"], match["rg"], rtype, match["name"])


_SCALE_SET_CHILD = re.compile(
    r"^(?P<set>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
    r"virtualMachineScaleSets/[^/]+)/virtualMachines/(?P<instance>[^/]+)"
    r"(?:/networkInterfaces/(?P<nic>[^/]+)"
    r"(?:/ipConfigurations/(?P<ipconfig>[^/]+)/publicIPAddresses/(?P<pip>[^/]+))?)?/?$",
    re.IGNORECASE,
)
_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)


@dataclass(frozen=True)
class ScaleSetChild:
    """A resource that lives under a Uniform scale set: an instance, its NIC, or that NIC's public IP."""

    set_id: str
    instance_id: str
    nic: str | None = None
    ipconfig: str | None = None
    pip: str | None = None

    @property
    def resource_type(self) -> str:
        if self.pip is not None:
            return PIP_TYPE
        if self.nic is not None:
            return NIC_TYPE
        return VMSS_VM_TYPE

    @property
    def instance(self) -> str:
        """The id of the instance this resource belongs to."""
        return f"{self.set_id}/virtualMachines/{self.instance_id}"


def parse_scale_set_child(resource_id: str) -> ScaleSetChild | None:
    """The parts of a Uniform instance, instance NIC or instance public IP id, else None."""
    match = _SCALE_SET_CHILD.match(resource_id)
    if not match:
        return None
    return ScaleSetChild(match["set"], match["instance"], match["nic"], match["ipconfig"], match["pip"])


def subscription_of(resource_id: str) -> str:
    """The subscription id at the start of any resource id, or "" if there is none."""
    match = _SUBSCRIPTION.match(resource_id)
    return match["sub"] if match else ""


def parent_nic_key(ip_configuration_id: str) -> str:
    """The NIC key of `{nicId}/ipConfigurations/{name}` (the back-reference a public IP holds)."""
    lowered = key(ip_configuration_id)
    marker = "/ipconfigurations/"
    index = lowered.rfind(marker)
    return lowered[:index] if index >= 0 else lowered


def event_casing(resource_id: str) -> str:
    """The id as real write events spell it: `resourcegroups` in lower case (see fixtures)."""
    return re.sub(r"/resourceGroups/", "/resourcegroups/", resource_id, count=1, flags=re.IGNORECASE)
