// Lets one system topic's identity write dead-lettered events to the dead-letter container (and
// only there): Storage Blob Data Contributor on the container.

@description('Name of the storage account.')
param storageAccountName string

@description('The dead-letter container.')
param containerName string

@description('Resource id of the system topic (names the assignment).')
param topicId string

@description('Principal id of the system topic\'s system-assigned identity.')
param topicPrincipalId string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${storageAccountName}/default/${containerName}'
}

resource deadLetterAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, topicId, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topicPrincipalId
    principalType: 'ServicePrincipal'
  }
}
