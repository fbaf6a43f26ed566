// Data-plane roles of the remediator's identity on the app's own resources, each assignment
// named guid(scope, principal, role). The ARM role at the monitored scopes is separate
// (remediator-role.bicep and remediator-access-*.bicep).

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Principal id of the remediator\'s user-assigned identity.')
param identityPrincipalId string

@description('Optional: a user who may read the audit log (Storage Table Data Reader), e.g. the deployer. Empty: nobody.')
param auditReaderPrincipalId string = ''

@description('The principal type of auditReaderPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param auditReaderPrincipalType string = 'User'

var roles = {
  // Host storage (blob leases of the timer trigger, host keys), the deployment package, the event
  // archive: the Functions host needs Owner on blobs with an identity-based AzureWebJobsStorage.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // The re-check queue: the app sends (delayed messages), the queue trigger receives, deletes and
  // moves poison messages (Contributor includes Message Processor's actions).
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // The audit log: the app creates <AUDIT_TABLE> and <AUDIT_TABLE>events and appends records.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  // The reader's `remediation audit verify` reads the audit ledger (blobs) beside the table.
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  // Application Insights with local authentication disabled.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var identityStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource identityStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in identityStorageRoles: {
  name: guid(storage.id, identityPrincipalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource identityTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource auditReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(auditReaderPrincipalId)) {
  name: guid(storage.id, auditReaderPrincipalId, roles.storageTableDataReader)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
    principalId: auditReaderPrincipalId
    principalType: auditReaderPrincipalType
  }
}

resource auditLedgerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(auditReaderPrincipalId)) {
  name: guid(storage.id, auditReaderPrincipalId, roles.storageBlobDataReader)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: auditReaderPrincipalId
    principalType: auditReaderPrincipalType
  }
}
