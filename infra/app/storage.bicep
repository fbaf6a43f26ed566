// The one storage account of the app: Functions host storage (AzureWebJobsStorage), the Flex
// Consumption deployment package, Event Grid dead letters, the event archive, the audit tables,
// the audit ledger (immutable) and the re-check queue. Shared-key access is disabled: every client (the function app, Event
// Grid's dead-lettering, a reviewer running `remediation audit`) authenticates with Entra ID.

@description('Name of the storage account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the account.')
param location string

@description('Tags for the account.')
param tags object = {}

@description('Blob containers to create.')
param containers array

@description('Tables to create (the audit log and its duplicate markers).')
param tables array

@description('Queues to create (the re-check queue and the poison queue the Functions host moves failed messages to).')
param queues array

@description('The container of raw events kept for replay (ARCHIVE_CONTAINER).')
param archiveContainerName string

@description('Days an archived event is kept (ARCHIVE_RETENTION_DAYS): the app prunes them, and a lifecycle rule deletes what it missed.')
@minValue(1)
param archiveRetentionDays int

@description('The container of the audit ledger (LEDGER_CONTAINER): every audit record appended to append blobs, under a time-based immutability (WORM) policy.')
param ledgerContainerName string

@description('Days each ledger blob stays immutable after its creation: it can be appended to, never changed or deleted, until then.')
@minValue(1)
@maxValue(146000)
param ledgerRetentionDays int = 365

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35: The function app runs without a virtual network (Flex Consumption, no VNet integration) and reaches the account over its public endpoint; shared keys are off, so every request needs an Entra token and a data role.
  //checkov:skip=CKV_AZURE_59: As CKV_AZURE_35: public network access is needed without a virtual network; blob public access is off and shared keys are disabled.
  //checkov:skip=CKV_AZURE_206: LRS keeps three copies in one region; the audit log is a few MB a month and geo-replication is left to the deployer (docs/deploy.md).
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // LRS: the audit log's durability is 11 nines within one region; GRS would double the cost of
    // a few megabytes and is a deliberate choice left to the deployer.
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Flex Consumption without a virtual network and Event Grid's dead-lettering reach the account
    // over its public endpoint; every request still needs an Entra token (no shared keys).
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containers: {
  parent: blobServices
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

// The audit ledger: the tamper evidence of the audit table (`remediation audit verify`). Its policy
// is left unlocked, so a deployment can still change it; an unlocked policy can be deleted by anyone
// holding .../containers/immutabilityPolicies/delete on the account: not the remediator's identity
// (rbac.bicep's blob role leaves it out), but the account's administrators (docs/deploy.md says how
// to lock it once the period is settled).
resource ledgerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: ledgerContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource ledgerImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: ledgerContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: ledgerRetentionDays
    // Appends to the ledger's append blobs go on under the policy; nothing written can change.
    allowProtectedAppendWrites: true
  }
}

resource archiveLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-archived-events'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${archiveContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: archiveRetentionDays + 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource storageTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tables: {
  parent: tableServices
  name: table
}]

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queues: {
  parent: queueServices
  name: queue
}]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
