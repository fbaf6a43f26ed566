// The event subscriptions from one monitored subscription's system topic to the function
// on_resource_event. Created only after the code is deployed (deployEventSubscriptions in
// main.bicep, set by the azd postdeploy hook): Event Grid checks that an AzureFunction endpoint
// exists when a subscription is created.
//
// handledOperations must equal remediation.events.HANDLED_OPERATIONS (case-insensitively), and
// includedEventTypes remediation.events.HANDLED_EVENT_TYPES: tests/infra/test_infra.py checks both. Advanced filters compare strings case-insensitively.
//
// Event Grid allows 25 values across all the advanced filters of one event subscription. With
// restricted resource groups (roleAssignmentScope resourceGroups) the subject prefixes are split
// into chunks of what fits beside the operations, one event subscription per chunk on the same
// topic: vmss-public-ip-remediator, then vmss-public-ip-remediator-2, -3, ... Each group is in
// exactly one chunk, so an event matches at most one subscription (never delivered twice).

@description('Name of the system topic (event-topic.bicep).')
param systemTopicName string

@description('Resource id of the function app.')
param functionAppId string

@description('Resource id of the storage account that receives dead letters.')
param deadLetterStorageAccountId string

@description('The dead-letter blob container.')
param deadLetterContainerName string

@description('Restricted resource groups as "<subscription id>/<resource group>" (main.bicep, when the role is assigned at resource groups): events must come from those of this subscription. Empty: the whole subscription, one event subscription. Past what fits beside the operations in Event Grid\'s 25 filter values, the groups are split over several event subscriptions.')
param restrictedResourceGroups array = []

// The function's trigger takes either schema (function_app.event_grid_payload); tests/infra
// checks every allowed value decodes, through the worker's converter, to an event it handles.
@description('The schema Event Grid delivers events in.')
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventDeliverySchema string = 'EventGridSchema'

var ownResourceGroups = filter(restrictedResourceGroups, target => startsWith(target, '${toLower(subscription().subscriptionId)}/'))
// A resource event's subject is the resource id; the trailing slash keeps rg-a from matching rg-ab.
var subjectPrefixes = [for target in ownResourceGroups: '/subscriptions/${split(target, '/')[0]}/resourceGroups/${split(target, '/')[1]}/']

var handledOperations = [
  'Microsoft.Compute/virtualMachineScaleSets/write'
  'Microsoft.Compute/virtualMachines/write'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write'
  'Microsoft.Network/networkInterfaces/write'
  'Microsoft.Network/publicIPAddresses/write'
  // ResourceActionSuccess: the actions that create or re-create instances (remediation.events.HANDLED_ACTIONS)
  'Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action'
  'Microsoft.Compute/virtualMachineScaleSets/osRollingUpgrade/action'
  'Microsoft.Compute/virtualMachineScaleSets/reimage/action'
  'Microsoft.Compute/virtualMachineScaleSets/reimageAll/action'
  'Microsoft.Compute/virtualMachineScaleSets/redeploy/action'
  'Microsoft.Compute/virtualMachineScaleSets/scaleOut/action'
  'Microsoft.Compute/virtualMachineScaleSets/approveRollingUpgrade/action'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/reimage/action'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/reimageAll/action'
  'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/redeploy/action'
  'Microsoft.Compute/virtualMachines/reimage/action'
  'Microsoft.Compute/virtualMachines/redeploy/action'
]

var operationFilter = {
  operatorType: 'StringIn'
  key: 'data.operationName'
  values: handledOperations
}

// Event Grid allows 25 values across all the advanced filters of one event subscription: each
// takes the operations and at most chunkSize subject prefixes. With no prefixes, one event
// subscription without a subject filter (the whole subscription). The count derives from the
// parameters alone: Bicep computes it when the deployment starts.
var maxFilterValues = 25
var chunkSize = maxFilterValues - length(handledOperations)
var chunkCount = empty(subjectPrefixes) ? 1 : ((length(subjectPrefixes) + (chunkSize - 1)) / chunkSize)
var eventSubscriptionName = 'vmss-public-ip-remediator'

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource remediatorEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = [for i in range(0, chunkCount): {
  parent: systemTopic
  name: (i == 0) ? eventSubscriptionName : format('{0}-{1}', eventSubscriptionName, i + 1)
  properties: {
    eventDeliverySchema: eventDeliverySchema
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/on_resource_event'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceActionSuccess'
      ]
      advancedFilters: empty(subjectPrefixes) ? [
        operationFilter
      ] : [
        operationFilter
        {
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: take(skip(subjectPrefixes, i * chunkSize), chunkSize)
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}]

@description('The event subscriptions\' names, chunk by chunk.')
output names array = [for i in range(0, chunkCount): remediatorEvents[i].name]

@description('The event subscriptions\' resource ids, chunk by chunk.')
output ids array = [for i in range(0, chunkCount): remediatorEvents[i].id]
