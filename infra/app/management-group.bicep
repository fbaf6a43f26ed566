// Management-group mode (main.bicep, managementGroupId): what is deployed at the management group.
// - The remediator's custom role (remediator-role-actions.json, the same list as
//   remediator-role.bicep), its one assignable scope the management group, assigned there to the
//   app's identity: every subscription under the group, present and future, is covered.
// - With deployPolicy (phase 2, once on_resource_event exists: Event Grid refuses an AzureFunction
//   endpoint that does not exist), an Azure Policy definition and assignment, effect
//   deployIfNotExists, that puts the subscription mode's event wiring (event-wiring-template.json)
//   into every subscription under the group; the assignment's system-assigned identity gets, here,
//   the custom role "event wiring" (the actions below, nothing else).
//
// Bicep and Azure facts relied on:
// - Management group deployments: policyDefinitions, policyAssignments, remediations,
//   roleDefinitions and roleAssignments are deployable at a management group
//   (learn.microsoft.com/azure/azure-resource-manager/bicep/deploy-to-management-group).
// - A custom role with a management group in assignableScopes: one management group at most
//   (learn.microsoft.com/azure/role-based-access-control/custom-roles, "Custom role limits").
// - deployIfNotExists: details.type/name/existenceScope/resourceGroupName/existenceCondition/
//   deploymentScope 'subscription' with deployment.location/roleDefinitionIds
//   (learn.microsoft.com/azure/governance/policy/concepts/effect-deploy-if-not-exists); the
//   definition's mode 'All' and the subscription as the if resource (field type equals
//   Microsoft.Resources/subscriptions), as Azure Landing Zones' subscription-level policies do
//   (Azure/Enterprise-Scale, e.g. Deploy-Budget and Deploy-VNET-HubSpoke).
// - Aliases of Microsoft.EventGrid/systemTopics/eventSubscriptions used in existenceCondition
//   (`az provider show --namespace Microsoft.EventGrid --expand resourceTypes/aliases`; read here
//   from a published dump, github.com/maciejporebski/azure-policy-aliases, not against Azure).
// - The policy definition/assignment API: Microsoft.Authorization/policyDefinitions@2025-03-01,
//   policyAssignments@2025-03-01 (learn.microsoft.com/azure/templates/microsoft.authorization/policydefinitions).
targetScope = 'managementGroup'

@description('Display name of the remediator\'s custom role (unique in the tenant).')
param roleName string

@description('Principal id of the remediator\'s user-assigned identity.')
param principalId string

@description('Deploy the policy definition and assignment (phase 2: the function exists).')
param deployPolicy bool = false

@description('Names the policy definition, assignment and the event-wiring role (main.bicep\'s resourceToken).')
param resourceToken string

@description('Region of the policy assignment\'s identity and of the deployments it runs (the app\'s).')
param location string

@description('The resource group each subscription\'s system topic lives in (the app\'s resource group name).')
param resourceGroupName string

@description('Name of each subscription\'s system topic (main.bicep\'s eventTopicName).')
param topicName string

@description('Tags of the resource group and topic.')
param tags object = {}

@description('Resource id of the function app.')
param functionAppId string = ''

@description('Resource id of the storage account that receives dead letters.')
param deadLetterStorageAccountId string = ''

@description('The dead-letter blob container.')
param deadLetterContainerName string = ''

@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
@description('The schema Event Grid delivers events in.')
param eventDeliverySchema string = 'EventGridSchema'

var remediatorActions = loadJsonContent('remediator-role-actions.json', '$.actions')
// The deployment each subscription gets, and the lists its filter holds, from the one template.
var wiringTemplate = loadJsonContent('event-wiring-template.json')
var handledOperations = loadJsonContent('event-wiring-template.json', '$.variables.handledOperations')
var includedEventTypes = loadJsonContent('event-wiring-template.json', '$.variables.includedEventTypes')
var eventSubscriptionName = loadJsonContent('event-wiring-template.json', '$.variables.eventSubscriptionName')

// What the policy's deployments do, and nothing else: the resource group, nested deployments
// (the topic and event subscription in it, the dead-letter access in the app's resource group),
// the system topic and its event subscription. The dead-letter role assignment is granted apart,
// at the app's resource group (deadletter-grant-access.bicep), which need not be under the group.
var wiringActions = [
  'Microsoft.Resources/subscriptions/read'
  'Microsoft.Resources/subscriptions/resourceGroups/read'
  'Microsoft.Resources/subscriptions/resourceGroups/write'
  'Microsoft.Resources/deployments/read'
  'Microsoft.Resources/deployments/write'
  'Microsoft.Resources/deployments/operationStatuses/read'
  'Microsoft.EventGrid/systemTopics/read'
  'Microsoft.EventGrid/systemTopics/write'
  'Microsoft.EventGrid/systemTopics/eventSubscriptions/read'
  'Microsoft.EventGrid/systemTopics/eventSubscriptions/write'
]

resource remediatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(managementGroup().id, roleName)
  properties: {
    roleName: roleName
    description: 'VMSS public IP remediator: reads scale sets, VMs, NICs and public IPs; strips public IPs from NICs and deletes them; deletes scale-set-created VMs; scales sets to zero. Every subscription under the management group.'
    type: 'CustomRole'
    permissions: [
      {
        actions: remediatorActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      managementGroup().id
    ]
  }
}

resource remediatorAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, principalId, remediatorRole.id)
  properties: {
    roleDefinitionId: remediatorRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'VMSS public IP remediator'
  }
}

resource wiringRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (deployPolicy) {
  name: guid(managementGroup().id, 'remediator-event-wiring', resourceToken)
  properties: {
    roleName: 'VMSS public IP remediator event wiring (${resourceToken})'
    description: 'The remediator\'s Azure Policy deployIfNotExists: creates the Event Grid system topic, its event subscription and their resource group in each subscription under the management group.'
    type: 'CustomRole'
    permissions: [
      {
        actions: wiringActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      managementGroup().id
    ]
  }
}

resource wiringPolicy 'Microsoft.Authorization/policyDefinitions@2025-03-01' = if (deployPolicy) {
  name: 'remediator-event-wiring-${resourceToken}'
  properties: {
    policyType: 'Custom'
    mode: 'All'
    displayName: 'VMSS public IP remediator: Event Grid wiring in every subscription (${resourceToken})'
    description: 'Deploys, in each subscription, the Event Grid system topic of its resource events and the event subscription to the remediator\'s function on_resource_event, with its filter, retries and dead-letter destination.'
    metadata: {
      category: 'Event Grid'
    }
    parameters: {
      effect: {
        type: 'String'
        allowedValues: [
          'DeployIfNotExists'
          'Disabled'
        ]
        defaultValue: 'DeployIfNotExists'
      }
    }
    policyRule: {
      if: {
        field: 'type'
        equals: 'Microsoft.Resources/subscriptions'
      }
      then: {
        effect: '[parameters(\'effect\')]'
        details: {
          type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions'
          name: '${topicName}/${eventSubscriptionName}'
          existenceScope: 'resourceGroup'
          resourceGroupName: resourceGroupName
          deploymentScope: 'subscription'
          roleDefinitionIds: [
            wiringRole.id
          ]
          // The event subscription as event-subscription.bicep makes it: its destination, schema,
          // filter (each handled type and operation, and no other), retries and dead letters.
          existenceCondition: {
            allOf: [
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/destination.endpointType'
                equals: 'AzureFunction'
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/destination.AzureFunction.resourceId'
                equals: '${functionAppId}/functions/on_resource_event'
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/eventDeliverySchema'
                equals: eventDeliverySchema
              }
              {
                count: {
                  field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/filter.includedEventTypes[*]'
                  where: {
                    field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/filter.includedEventTypes[*]'
                    in: includedEventTypes
                  }
                }
                equals: length(includedEventTypes)
              }
              {
                count: {
                  field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/filter.advancedFilters[*].StringIn.values[*]'
                  where: {
                    field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/filter.advancedFilters[*].StringIn.values[*]'
                    in: handledOperations
                  }
                }
                equals: length(handledOperations)
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/retryPolicy.maxDeliveryAttempts'
                equals: 30
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/retryPolicy.eventTimeToLiveInMinutes'
                equals: 1440
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/deadLetterWithResourceIdentity.identity.type'
                equals: 'SystemAssigned'
              }
              {
                field: 'Microsoft.EventGrid/systemTopics/eventSubscriptions/deadLetterWithResourceIdentity.deadLetterDestination.endpointType'
                equals: 'StorageBlob'
              }
            ]
          }
          deployment: {
            location: location
            properties: {
              mode: 'incremental'
              template: wiringTemplate
              parameters: {
                resourceGroupName: {
                  value: resourceGroupName
                }
                location: {
                  value: location
                }
                tags: {
                  value: tags
                }
                topicName: {
                  value: topicName
                }
                functionAppId: {
                  value: functionAppId
                }
                deadLetterStorageAccountId: {
                  value: deadLetterStorageAccountId
                }
                deadLetterContainerName: {
                  value: deadLetterContainerName
                }
                eventDeliverySchema: {
                  value: eventDeliverySchema
                }
              }
            }
          }
        }
      }
    }
  }
}

resource wiringAssignment 'Microsoft.Authorization/policyAssignments@2025-03-01' = if (deployPolicy) {
  // A management group's assignment names are 24 characters at most.
  name: take('remediator-${resourceToken}', 24)
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    displayName: 'VMSS public IP remediator: Event Grid wiring (${resourceToken})'
    policyDefinitionId: wiringPolicy.id
    enforcementMode: 'Default'
  }
}

resource wiringAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (deployPolicy) {
  name: guid(managementGroup().id, 'remediator-event-wiring', resourceToken)
  properties: {
    roleDefinitionId: wiringRole.id
    principalId: wiringAssignment.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'VMSS public IP remediator: the policy that wires Event Grid in each subscription'
  }
}

@description('Resource id of the policy assignment (empty without deployPolicy).')
output policyAssignmentId string = deployPolicy ? wiringAssignment.id : ''

@description('Principal id of the policy assignment\'s identity (empty without deployPolicy).')
output policyPrincipalId string = deployPolicy ? wiringAssignment.identity.principalId : ''
