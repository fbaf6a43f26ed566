"""Azure's built-in role definitions that the simulator knows, as ARM serves them.

Authorization is only adversarial if the roles a harness grants are the real
ones: a Contributor that may write role assignments, or a Virtual Machine
Contributor that may not join a subnet, would make tests pass that fail in Azure.
Names, descriptions, actions and notActions are copied from real ARM traffic
(`shared/fixtures/recorded-arm/roledefinitionclient.yaml`, the list of role
definitions at a resource group); the recording scrubs ids to zeros, so each
role's id is its documented built-in GUID (learn.microsoft.com, "Azure built-in
roles"), and `createdOn`/`updatedOn` are the recording's scrubbed timestamps.
Every built-in role is assignable everywhere (`assignableScopes: ["/"]`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    """One `permissions[]` block of a role definition."""

    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }


@dataclass(frozen=True)
class BuiltInRole:
    guid: str
    name: str
    description: str
    permission: Permission


RECORDED_TIMESTAMP = "2001-02-03T04:05:06Z"  # the recording's (scrubbed) createdOn / updatedOn

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
VIRTUAL_MACHINE_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"

BUILT_IN_ROLES: tuple[BuiltInRole, ...] = (
    BuiltInRole(
        OWNER,
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        Permission(("*",)),
    ),
    BuiltInRole(
        CONTRIBUTOR,
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure "
        "RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        Permission(
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ),
        ),
    ),
    BuiltInRole(
        READER,
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        Permission(("*/read",)),
    ),
    BuiltInRole(
        USER_ACCESS_ADMINISTRATOR,
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        Permission(("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),
    ),
    BuiltInRole(
        NETWORK_CONTRIBUTOR,
        "Network Contributor",
        "Lets you manage networks, but not access to them.",
        Permission(
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Network/*",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Support/*",
            )
        ),
    ),
    BuiltInRole(
        VIRTUAL_MACHINE_CONTRIBUTOR,
        "Virtual Machine Contributor",
        "Lets you manage virtual machines, but not access to them, and not the virtual network or "
        "storage account they're connected to.",
        Permission(
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Compute/availabilitySets/*",
                "Microsoft.Compute/locations/*",
                "Microsoft.Compute/virtualMachines/*",
                "Microsoft.Compute/virtualMachineScaleSets/*",
                "Microsoft.Compute/cloudServices/*",
                "Microsoft.Compute/disks/write",
                "Microsoft.Compute/disks/read",
                "Microsoft.Compute/disks/delete",
                "Microsoft.DevTestLab/schedules/*",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
                "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
                "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
                "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
                "Microsoft.Network/loadBalancers/probes/join/action",
                "Microsoft.Network/loadBalancers/read",
                "Microsoft.Network/locations/*",
                "Microsoft.Network/networkInterfaces/*",
                "Microsoft.Network/networkSecurityGroups/join/action",
                "Microsoft.Network/networkSecurityGroups/read",
                "Microsoft.Network/publicIPAddresses/join/action",
                "Microsoft.Network/publicIPAddresses/read",
                "Microsoft.Network/virtualNetworks/read",
                "Microsoft.Network/virtualNetworks/subnets/join/action",
                "Microsoft.RecoveryServices/locations/*",
                "Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/write",
                "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/*/read",
                "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
                "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/write",
                "Microsoft.RecoveryServices/Vaults/backupPolicies/read",
                "Microsoft.RecoveryServices/Vaults/backupPolicies/write",
                "Microsoft.RecoveryServices/Vaults/read",
                "Microsoft.RecoveryServices/Vaults/usages/read",
                "Microsoft.RecoveryServices/Vaults/write",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.SerialConsole/serialPorts/connect/action",
                "Microsoft.SqlVirtualMachine/*",
                "Microsoft.Storage/storageAccounts/listKeys/action",
                "Microsoft.Storage/storageAccounts/read",
                "Microsoft.Support/*",
            )
        ),
    ),
    BuiltInRole(
        MANAGED_IDENTITY_OPERATOR,
        "Managed Identity Operator",
        "Read and Assign User Assigned Identity",
        Permission(
            (
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Support/*",
            )
        ),
    ),
)
