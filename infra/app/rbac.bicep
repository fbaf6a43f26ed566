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
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

// Host storage (blob leases of the timer trigger, host keys), the deployment package, the event
// archive, the set leases and the audit ledger. The Functions host asks for Storage Blob Data
// Owner with an identity-based AzureWebJobsStorage; this is Owner's permissions (its definition,
// b7e6dc6d-f1e8-4753-8033-0f276bb0955b: containers/* and blobs/*) less what would let the app's
// own identity undo the audit ledger's tamper evidence: writing, deleting, locking or extending a
// container's immutability policy (an unlocked one may be shortened or deleted), clearing a legal
// hold, deleting a container, and the data action that overrides a blob's immutability. tests/infra checks both.
var blobDataPermissions = {
  actions: [
    'Microsoft.Storage/storageAccounts/blobServices/containers/*'
    'Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action'
  ]
  notActions: [
    'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/*'
    'Microsoft.Storage/storageAccounts/blobServices/containers/clearLegalHold/action'
    // While the ledger is still empty, deleting its container and making it again would drop the policy.
    'Microsoft.Storage/storageAccounts/blobServices/containers/delete'
  ]
  dataActions: [
    'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*'
  ]
  notDataActions: [
    'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action'
  ]
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobDataRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'vmss-remediator-blob-data')
  properties: {
    roleName: 'VMSS public IP remediator blob data ${uniqueString(resourceGroup().id)}' // unique in the tenant
    description: 'Storage Blob Data Owner less immutability policies, legal hold clearing and immutability override: the audit ledger stays tamper-evident against the app itself.'
    type: 'CustomRole'
    permissions: [
      blobDataPermissions
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource identityBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, 'vmss-remediator-blob-data')
  scope: storage
  properties: {
    roleDefinitionId: blobDataRole.id
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
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
