"""Linked access: what ARM demands for each resource a PUT or PATCH body points at.

Writing a NIC needs `networkInterfaces/write` on the NIC, and ARM also checks the
caller on every resource the body references: joining a subnet, an NSG, a load
balancer pool; assigning a user-assigned identity (a miss is 403
`LinkedAuthorizationFailed`). A least-privilege role misses these more often than
anything else, so the simulator checks them, from this ONE table, and the product's
tests can derive the role's linked actions from the same source
(`linked_action(type)`, `LINKED_ACCESS`, `linked_references(body, own_id)`).

A reference is an `id` string anywhere in the body (or a key of a
`userAssignedIdentities` map) that parses as a resource id whose type has a row
here; ids of the resource itself and of its own children (a NIC's ipConfigurations,
a load balancer's own pools in its rules) are not links. Types without a row (a
NIC's `virtualMachine` back-reference, a VM's scale set) are not checked. To add a
type (load balancers, say), add a row with its source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sim.actions import resource_type_of

NIC_DOCS = "https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#permissions"
SUBNET_DOCS = "https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-subnet#permissions"
NSG_DOCS = "https://learn.microsoft.com/azure/virtual-network/manage-network-security-group#permissions"
PIP_DOCS = "https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-public-ip-address#permissions"
PREFIX_DOCS = "https://learn.microsoft.com/azure/virtual-network/ip-services/manage-public-ip-address-prefix#permissions"
VM_CONTRIBUTOR = (
    "the built-in Virtual Machine Contributor role, which grants exactly these joins for VM and scale set "
    "writes (shared/fixtures/recorded-arm/roledefinitionclient.yaml; learn.microsoft.com/azure/"
    "role-based-access-control/built-in-roles/compute#virtual-machine-contributor)"
)


@dataclass(frozen=True)
class LinkedAccess:
    """One row: a body that references a resource of `resource_type` needs `action` on it."""

    resource_type: str
    action: str
    source: str


LINKED_ACCESS: tuple[LinkedAccess, ...] = (
    # NIC and scale set ipConfigurations, subnets of load balancer frontends. NIC_DOCS lists
    # "Microsoft.Network/virtualNetworks/subnets/join/action"; public reports: Azure/mpf's
    # linkedAuthorizationFailedErrorParser_test.go (an AKS write), CheckPointSW/
    # terraform-azure-cloudguard-network-security#25 (a NIC PUT whose subnet is in another group).
    LinkedAccess(
        "Microsoft.Network/virtualNetworks/subnets",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        f"{NIC_DOCS}; {SUBNET_DOCS}",
    ),
    # A NIC's or subnet's networkSecurityGroup: NSG_DOCS ("Associate a network security group to a
    # subnet or network interface"), NIC_DOCS.
    LinkedAccess(
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/networkSecurityGroups/join/action",
        f"{NSG_DOCS}; {NIC_DOCS}",
    ),
    # ipConfigurations' loadBalancerBackendAddressPools (NIC and scale set): VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/loadBalancers/backendAddressPools",
        "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
        VM_CONTRIBUTOR,
    ),
    # A scale set's loadBalancerInboundNatPools: VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/loadBalancers/inboundNatPools",
        "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
        VM_CONTRIBUTOR,
    ),
    # A NIC's loadBalancerInboundNatRules: VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/loadBalancers/inboundNatRules",
        "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
        VM_CONTRIBUTOR,
    ),
    # A scale set's networkProfile.healthProbe: VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/loadBalancers/probes",
        "Microsoft.Network/loadBalancers/probes/join/action",
        VM_CONTRIBUTOR,
    ),
    # ipConfigurations' applicationSecurityGroups: NIC_DOCS lists
    # "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action".
    LinkedAccess(
        "Microsoft.Network/applicationSecurityGroups",
        "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
        NIC_DOCS,
    ),
    # A NIC ipConfiguration's gatewayLoadBalancer (a gateway load balancer's frontend): the action as
    # built-in roles grant it (roledefinitionclient.yaml: "AKS E2E Mock First Party Role", "Azure
    # Center for SAP solutions service role").
    LinkedAccess(
        "Microsoft.Network/loadBalancers/frontendIPConfigurations",
        "Microsoft.Network/loadBalancers/frontendIPConfigurations/join/action",
        "built-in roles in shared/fixtures/recorded-arm/roledefinitionclient.yaml",
    ),
    # A NIC ipConfiguration's virtualNetworkTaps: the provider's operation "Joins a virtual network
    # tap" (learn.microsoft.com/azure/role-based-access-control/resource-provider-operations,
    # Microsoft.Network).
    LinkedAccess(
        "Microsoft.Network/virtualNetworkTaps",
        "Microsoft.Network/virtualNetworkTaps/join/action",
        "learn.microsoft.com/azure/role-based-access-control/resource-provider-operations#microsoftnetwork",
    ),
    # ipConfigurations' applicationGatewayBackendAddressPools: VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/applicationGateways/backendAddressPools",
        "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
        VM_CONTRIBUTOR,
    ),
    # A NIC ipConfiguration's publicIPAddress: PIP_DOCS ("Associate a public IP address to a
    # resource"), NIC_DOCS, VM_CONTRIBUTOR.
    LinkedAccess(
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network/publicIPAddresses/join/action",
        f"{PIP_DOCS}; {NIC_DOCS}",
    ),
    # A scale set's publicIPAddressConfiguration.publicIPPrefix, a public IP's publicIPPrefix:
    # PREFIX_DOCS ("Associate a public IP address prefix to a resource").
    LinkedAccess(
        "Microsoft.Network/publicIPPrefixes",
        "Microsoft.Network/publicIPPrefixes/join/action",
        PREFIX_DOCS,
    ),
    # A VM's networkProfile.networkInterfaces: NIC_DOCS ("Attach a network interface to a VM").
    LinkedAccess(
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Network/networkInterfaces/join/action",
        NIC_DOCS,
    ),
    # A subnet's natGateway and routeTable: SUBNET_DOCS.
    LinkedAccess(
        "Microsoft.Network/natGateways",
        "Microsoft.Network/natGateways/join/action",
        SUBNET_DOCS,
    ),
    LinkedAccess(
        "Microsoft.Network/routeTables",
        "Microsoft.Network/routeTables/join/action",
        SUBNET_DOCS,
    ),
    # identity.userAssignedIdentities of a VM or scale set: the built-in Managed Identity Operator
    # role ("Read and Assign User Assigned Identity", in the recording), which Microsoft's guidance
    # requires besides Virtual Machine Contributor to give a VM a user-assigned identity
    # (learn.microsoft.com/training/modules/implement-managed-identities/4-configure-managed-identities);
    # public reports: Azure/aad-pod-identity#613 and #585 (LinkedAuthorizationFailed on a scale set write).
    LinkedAccess(
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        "Managed Identity Operator; Azure/aad-pod-identity#613",
    ),
    # storageProfile.imageReference.id of a gallery image version: learn.microsoft.com/azure/
    # virtual-machines/share-gallery (read access to the image version to deploy from it); public
    # reports: Azure/aad-pod-identity#752, Azure/AKS#2040 ('galleries/images/versions/read').
    LinkedAccess(
        "Microsoft.Compute/galleries/images/versions",
        "Microsoft.Compute/galleries/images/versions/read",
        "learn.microsoft.com/azure/virtual-machines/share-gallery; Azure/aad-pod-identity#752",
    ),
    # managedDisk.diskEncryptionSet of a disk, VM or scale set: learn.microsoft.com/azure/
    # virtual-machines/disk-encryption (the caller needs read on the disk encryption set); public
    # report: an AKS BYOK disk PUT answered LinkedAuthorizationFailed for 'read' on
    # .../diskEncryptionSets/... (quoted in public AKS troubleshooting notes).
    LinkedAccess(
        "Microsoft.Compute/diskEncryptionSets",
        "Microsoft.Compute/diskEncryptionSets/read",
        "learn.microsoft.com/azure/virtual-machines/disk-encryption",
    ),
)
_BY_TYPE = {row.resource_type.lower(): row for row in LINKED_ACCESS}


def linked_action(resource_type: str) -> str | None:
    """The action ARM demands on a referenced resource of this type (case-insensitive), else None."""
    row = _BY_TYPE.get(resource_type.lower())
    return row.action if row is not None else None


def linked_references(body: Any, own_id: str) -> list[tuple[str, str]]:
    """(action, referenced id) for every link in `body`, in body order, each pair once.

    own_id: the id of the resource being written; it and its children are not links.
    """
    own = own_id.rstrip("/").lower()
    found: dict[tuple[str, str], None] = {}
    for reference in _ids(body):
        key = reference.rstrip("/").lower()
        if key == own or key.startswith(own + "/"):
            continue
        resource_type = resource_type_of(reference)
        action = linked_action(resource_type) if resource_type else None
        if action is not None:
            found.setdefault((action, reference), None)
    return list(found)


def _ids(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() == "id" and isinstance(item, str):
                yield item
            elif key.lower() == "userassignedidentities" and isinstance(item, dict):
                yield from (k for k in item if isinstance(k, str))
            yield from _ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _ids(item)
