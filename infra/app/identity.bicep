// The remediator's user-assigned managed identity: one principal for ARM (the custom role at the
// monitored scopes), the storage account (audit log, re-check queue, host storage, deployment
// package) and Application Insights (Entra authentication). No keys or connection strings exist.

@description('Name of the user-assigned managed identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags for the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
