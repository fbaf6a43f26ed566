// Management-group mode: lets the Azure Policy assignment's identity write, in the app's resource
// group, what app/deadletter-access.bicep writes in subscription mode: each system topic's
// identity as Storage Blob Data Contributor on the dead-letter container. Built-in Role Based
// Access Control Administrator (its Microsoft.Resources/deployments/* runs the policy's nested
// deployment here), constrained by a condition to assigning and removing Storage Blob Data
// Contributor to service principals alone
// (learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-portal, conditions
// "Constrain roles" and "Constrain principal types"; built-in role ids:
// learn.microsoft.com/azure/role-based-access-control/built-in-roles).

@description('Principal id of the policy assignment\'s system-assigned identity.')
param principalId string

@description('Names the assignment (the policy assignment\'s id).')
param policyAssignmentId string

var roleBasedAccessControlAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var grantCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${storageBlobDataContributor}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'})) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${storageBlobDataContributor}}))'

resource grantAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, policyAssignmentId, roleBasedAccessControlAdministrator)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleBasedAccessControlAdministrator)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'VMSS public IP remediator: the policy writes each topic\'s dead-letter access (Storage Blob Data Contributor) here'
    condition: grantCondition
    conditionVersion: '2.0'
  }
}
