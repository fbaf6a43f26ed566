// The remediator's custom role, assigned at one monitored subscription.
targetScope = 'subscription'

@description('The custom role\'s GUID (remediator-role.bicep).')
param roleDefinitionGuid string

@description('Principal id of the remediator\'s user-assigned identity.')
param principalId string

resource remediatorAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'VMSS public IP remediator'
  }
}
