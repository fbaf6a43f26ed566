// The VMSS public-IP remediator on Azure: `azd up` deploys this file at subscription scope.
//
// Phase 1 (`azd provision`): the resource group, the user-assigned identity, storage (shared keys
// off), Log Analytics + Application Insights (Entra auth), the Flex Consumption app, the
// storage data roles, the custom ARM role at the monitored scopes, and one Event Grid system
// topic per monitored subscription.
// Phase 2 (deployEventSubscriptions = true): the event subscriptions from those topics to the
// function on_resource_event. Event Grid refuses an AzureFunction endpoint that does not exist
// yet, so the azd postdeploy hook (infra/hooks/postdeploy.*) sets DEPLOY_EVENT_SUBSCRIPTIONS=true
// and provisions again once the code is deployed. docs/deploy.md walks through both.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names the resource group and seeds the unique resource names.')
param environmentName string

@minLength(1)
@description('Region of the function app, its storage and monitoring.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Name of the resource group; empty: rg-<environmentName>. Monitored subscriptions other than this one get a resource group of the same name for their Event Grid system topic.')
param resourceGroupName string = ''

@description('Subscriptions whose scale sets are watched: subscription ids separated by commas. Empty: the subscription deployed to.')
param monitoredSubscriptionIds string = ''

@description('Management-group mode: the id (not the display name) of a management group. Every subscription under it, present and future, is monitored: the custom role is defined and assigned at the group, and an Azure Policy (deployIfNotExists) puts the Event Grid wiring into each subscription. monitoredSubscriptionIds, roleAssignmentScope and networkResourceGroups then do not apply. Empty: the subscription list.')
param managementGroupId string = ''

@description('Names the policy remediation task of management-group mode: each deployment starts a new one, over the subscriptions then non-compliant.')
param remediationName string = 'remediator-${uniqueString(utcNow())}'

@description('Restricted scopes separated by commas, each a subscription, resource group or scale set id, or a management group\'s id (/providers/Microsoft.Management/managementGroups/<name>: every subscription under it), optionally followed by =<mode>. Empty: every monitored subscription, in defaultMode (in management-group mode: the group).')
param restrictedScopes string = ''

@description('The mode of a restricted scope that names none. audit records findings and writes nothing to ARM: start there.')
@allowed([
  'audit'
  'strip'
  'evict'
  'scale-to-zero'
])
param defaultMode string = 'audit'

@description('Where the remediator\'s custom role is assigned: each monitored subscription, or only the resource groups named in restrictedScopes (events are then filtered to those resource groups).')
@allowed([
  'subscriptions'
  'resourceGroups'
])
param roleAssignmentScope string = 'subscriptions'

@description('With roleAssignmentScope resourceGroups: resource group ids (/subscriptions/<id>/resourceGroups/<name>, separated by commas) of the groups holding the virtual networks, NSGs, load balancers, application security groups and gateways that restricted sets use, when those live outside the restricted groups. A NIC PUT or model PATCH re-asserts every link, and ARM checks each at the linked resource; these groups get a role with the joins alone.')
param networkResourceGroups string = ''

@description('NCRONTAB schedule of the timer sweep, the backstop for lost events (six fields, seconds first).')
param sweepSchedule string = '0 */15 * * * *'

@description('Record only, never write to ARM, whatever the modes say (REMEDIATION_DRY_RUN).')
param dryRun bool = false

@description('Days raw events are kept in the archive for replay (ARCHIVE_RETENTION_DAYS); a storage lifecycle rule deletes older ones.')
@minValue(1)
@maxValue(3650)
param archiveRetentionDays int = 30

@description('Days each blob of the audit ledger stays immutable (a time-based WORM policy on LEDGER_CONTAINER, appends allowed); `remediation audit verify` compares the audit table with it.')
@minValue(1)
@maxValue(146000)
param ledgerRetentionDays int = 365

@description('A JSON object merged into REMEDIATION_POLICY for the keys no parameter sets (tags_may_relax, remediate_origins, keep_detached_public_ips, scale_to_zero). monitored_subscriptions and scopes come from the parameters above.')
param policyOverrides string = '{}'

@description('Create the Event Grid event subscriptions. Only once the code is deployed: the postdeploy hook sets it.')
param deployEventSubscriptions bool = false

@description('The schema Event Grid delivers resource events in; the function takes either. Event Grid refuses to change it on an existing subscription: to switch, delete the event subscriptions (vmss-public-ip-remediator, and vmss-public-ip-remediator-2, -3, ... where the restricted resource groups of a subscription take several) first, then deploy.')
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventDeliverySchema string = 'EventGridSchema'

@description('Most instances the function app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('A user or group who may read the audit log (Storage Table Data Reader); azd passes the signed-in user. Empty: nobody.')
param principalId string = ''

@description('Email addresses (separated by commas) notified when an alert fires (failed remediations, error records, poison messages, no sweep, dead-lettered or dropped events). Empty: the alerts and their action group are deployed with no receiver; they fire and show in Azure Monitor, Alerts, and receivers can be added to the action group.')
param alertEmail string = ''

@description('The type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var appResourceGroupName = !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
var eventTopicName = '${abbrs.eventGridSystemTopics}remediator-${resourceToken}'

// Names the code expects (remediation/settings.py defaults; the tests compare them).
var deploymentContainerName = 'deploymentpackage'
var deadLetterContainerName = 'eventgrid-deadletter'
var eventArchiveContainerName = 'event-archive'
var lockContainerName = 'remediation-locks'
var ledgerContainerName = 'audit-ledger'
var auditTable = 'remediationaudit'
var recheckQueue = 'remediation-recheck'
var recheckDelaysSeconds = '15,60,180'
var reconcileBudgetSeconds = '240'

// The no-sweep alert's window: twice the sweep's period, rounded up to a window log alerts accept
// (app/alerts.bicep allows only those). A schedule without a row here fails the deployment
// (the window arrives as a value alerts.bicep does not allow): add its row.
var sweepAlertWindows = {
  '0 */5 * * * *': 'PT10M'
  '0 */10 * * * *': 'PT30M'
  '0 */15 * * * *': 'PT30M'
  '0 */20 * * * *': 'PT45M'
  '0 */30 * * * *': 'PT1H'
  '0 0 * * * *': 'PT2H'
  '0 0 */2 * * *': 'PT4H'
  '0 0 */3 * * *': 'PT6H'
}
var sweepAlertWindow = contains(sweepAlertWindows, trim(sweepSchedule)) ? sweepAlertWindows[trim(sweepSchedule)] : 'no-window-for-sweepSchedule-${replace(trim(sweepSchedule), ' ', '_')}'
var alertEmails = [for entry in filter(split(alertEmail, ','), entry => !empty(trim(entry))): trim(entry)]

// Monitored subscriptions: lower-case ids, without blanks or duplicates.
var subscriptionEntries = filter(split(monitoredSubscriptionIds, ','), entry => !empty(trim(entry)))
var listedSubscriptions = [for entry in subscriptionEntries: toLower(trim(entry))]
var monitoredSubscriptions = empty(listedSubscriptions) ? [
  toLower(subscription().subscriptionId)
] : union(listedSubscriptions, listedSubscriptions)
var monitoredSubscriptionScopes = [for id in monitoredSubscriptions: '/subscriptions/${id}']
// Management-group mode: the group's role assignment and policy take the place of the
// per-subscription role assignments and event wiring, which then loop over nothing.
var managementGroupMode = !empty(trim(managementGroupId))
var wiredSubscriptions = managementGroupMode ? [] : monitoredSubscriptions
var wiredOtherSubscriptions = filter(wiredSubscriptions, id => id != toLower(subscription().subscriptionId))

// Restricted scopes: "<scope>[=<mode>]" entries, or every monitored subscription in defaultMode.
var scopeEntries = filter(split(restrictedScopes, ','), entry => !empty(trim(entry)))
var listedScopes = [for entry in scopeEntries: {
  scope: trim(first(split(entry, '=')))
  mode: contains(entry, '=') ? toLower(trim(last(split(entry, '=')))) : defaultMode
}]
var subscriptionWideScopes = [for id in monitoredSubscriptions: {
  scope: '/subscriptions/${id}'
  mode: defaultMode
}]
// In management-group mode the group itself: every subscription under it, as ARM shows it then.
var groupWideScopes = [
  {
    scope: '/providers/Microsoft.Management/managementGroups/${trim(managementGroupId)}'
    mode: defaultMode
  }
]
var policyScopes = empty(listedScopes) ? (managementGroupMode ? groupWideScopes : subscriptionWideScopes) : listedScopes
var policyModes = [for entry in policyScopes: entry.mode]

// Resource groups (as "<subscription>/<resource group>") the custom role is assigned at when
// roleAssignmentScope is resourceGroups: those of the restricted scopes (a scale set's counts).
var resourceGroupScopes = filter(policyScopes, entry => startsWith(toLower(entry.scope), '/subscriptions/') && length(split(entry.scope, '/')) >= 5)
var listedResourceGroups = [for entry in resourceGroupScopes: toLower('${split(entry.scope, '/')[2]}/${split(entry.scope, '/')[4]}')]
var restrictedResourceGroups = ((roleAssignmentScope == 'resourceGroups') && !managementGroupMode) ? union(listedResourceGroups, listedResourceGroups) : []
var networkGroupEntries = filter(split(networkResourceGroups, ','), entry => !empty(trim(entry)))
var networkGroupsLowered = [for entry in networkGroupEntries: toLower('${split(trim(entry), '/')[2]}/${split(trim(entry), '/')[4]}')]
var linkedResourceGroups = ((roleAssignmentScope == 'resourceGroups') && !managementGroupMode) ? union(networkGroupsLowered, networkGroupsLowered) : []

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appResourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}remediator-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containers: [
      deploymentContainerName
      deadLetterContainerName
      eventArchiveContainerName
      lockContainerName
    ]
    tables: [
      auditTable
    ]
    queues: [
      recheckQueue
      '${recheckQueue}-poison'
    ]
    archiveContainerName: eventArchiveContainerName
    archiveRetentionDays: archiveRetentionDays
    ledgerContainerName: ledgerContainerName
    ledgerRetentionDays: ledgerRetentionDays
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

// Alerts on the app's telemetry, the action group every alert notifies, and the workbook with the
// README's KQL views.
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'remediator-${resourceToken}'
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmails: alertEmails
    sweepAlertWindow: sweepAlertWindow
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    displayName: 'VMSS public IP remediator (${environmentName})'
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

// REMEDIATION_POLICY; the module fails the deployment if a scope's mode is not a mode.
module policy 'app/policy.bicep' = {
  name: 'remediator-policy-${resourceToken}'
  params: {
    // In management-group mode the group alone: a listed subscription would be monitored without
    // the role or the event wiring the group's assignment and policy give those under it.
    monitoredSubscriptions: managementGroupMode ? [] : monitoredSubscriptions
    monitoredManagementGroups: managementGroupMode ? [trim(managementGroupId)] : []
    scopes: policyScopes
    modes: policyModes
    policyOverrides: policyOverrides
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    auditReaderPrincipalId: principalId
    auditReaderPrincipalType: principalType
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: '${abbrs.webSitesFunctions}${resourceToken}'
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    // The remediator's settings (README, "Settings"); ARM_ENDPOINT stays unset: public cloud.
    remediatorSettings: {
      ARM_CREDENTIAL: 'managed-identity'
      AZURE_CLIENT_ID: identity.outputs.clientId
      RemediationStorage__tableServiceUri: storage.outputs.tableEndpoint
      RemediationStorage__queueServiceUri: storage.outputs.queueEndpoint
      RemediationStorage__blobServiceUri: storage.outputs.blobEndpoint
      RemediationStorage__credential: 'managedidentity'
      RemediationStorage__clientId: identity.outputs.clientId
      AUDIT_TABLE: auditTable
      ARCHIVE_CONTAINER: eventArchiveContainerName
      ARCHIVE_RETENTION_DAYS: string(archiveRetentionDays)
      RECHECK_QUEUE: recheckQueue
      LOCK_CONTAINER: lockContainerName
      LEDGER_CONTAINER: ledgerContainerName
      RECHECK_DELAYS_SECONDS: recheckDelaysSeconds
      RECONCILE_BUDGET_SECONDS: reconcileBudgetSeconds
      SWEEP_SCHEDULE: sweepSchedule
      DEAD_LETTER_CONTAINER: deadLetterContainerName
      REMEDIATION_POLICY: policy.outputs.policy
      REMEDIATION_DRY_RUN: dryRun ? 'true' : 'false'
      // Where each monitored subscription's system topic lives (eventTopics): doctor reads it there.
      EVENT_TOPIC_RESOURCE_GROUP: appResourceGroupName
    }
  }
  // The host starts with its storage roles in place.
  dependsOn: [
    rbac
  ]
}

// The custom role (exactly the code's ARM actions) and its assignments at the monitored scopes.
module remediatorRole 'app/remediator-role.bicep' = if (!managementGroupMode) {
  name: 'remediator-role-${resourceToken}'
  params: {
    roleName: 'VMSS public IP remediator (${environmentName} ${resourceToken})'
    assignableScopes: monitoredSubscriptionScopes
  }
}

module remediatorJoinRole 'app/remediator-role.bicep' = if (!managementGroupMode) {
  name: 'remediator-join-role-${resourceToken}'
  params: {
    roleName: 'VMSS public IP remediator joins (${environmentName} ${resourceToken})'
    assignableScopes: monitoredSubscriptionScopes
    joinsOnly: true
    purpose: 'VMSS public IP remediator: the joins of the links its NIC and scale set writes re-assert (subnets, NSGs, load balancers, ASGs, gateways), where those resources live.'
  }
}

// With the role at resource groups alone, the identity could not read the system topics (in the
// app's resource group of each monitored subscription): a third role, the Event Grid reads alone.
// In subscriptions mode the custom role at the subscription covers them.
module remediatorEventReadRole 'app/remediator-role.bicep' = if ((roleAssignmentScope == 'resourceGroups') && !managementGroupMode) {
  name: 'remediator-event-read-role-${resourceToken}'
  params: {
    roleName: 'VMSS public IP remediator event reads (${environmentName} ${resourceToken})'
    assignableScopes: monitoredSubscriptionScopes
    eventReadsOnly: true
    purpose: 'VMSS public IP remediator: reads its Event Grid system topic and event subscriptions (remediation doctor), in the app\'s resource group of a monitored subscription.'
  }
}

module remediatorAccessSubscriptions 'app/remediator-access-subscription.bicep' = [for (id, i) in (((roleAssignmentScope == 'subscriptions') && !managementGroupMode) ? monitoredSubscriptions : []): {
  name: 'remediator-access-${resourceToken}-${i}'
  scope: subscription(id)
  params: {
    roleDefinitionGuid: remediatorRole.outputs.roleDefinitionGuid
    principalId: identity.outputs.principalId
  }
}]

module remediatorAccessResourceGroups 'app/remediator-access-resource-group.bicep' = [for (target, i) in restrictedResourceGroups: {
  name: 'remediator-access-${resourceToken}-${i}'
  scope: resourceGroup(split(target, '/')[0], split(target, '/')[1])
  params: {
    roleDefinitionGuid: remediatorRole.outputs.roleDefinitionGuid
    principalId: identity.outputs.principalId
  }
}]

module remediatorJoinsResourceGroups 'app/remediator-access-resource-group.bicep' = [for (target, i) in linkedResourceGroups: {
  name: 'remediator-joins-${resourceToken}-${i}'
  scope: resourceGroup(split(target, '/')[0], split(target, '/')[1])
  params: {
    roleDefinitionGuid: remediatorJoinRole.outputs.roleDefinitionGuid
    principalId: identity.outputs.principalId
  }
}]

// Event Grid: a system topic per monitored subscription, in a resource group of that
// subscription named like the app's; its identity may write dead letters to the container.
module eventResourceGroups 'app/events-resource-group.bicep' = [for (id, i) in wiredOtherSubscriptions: {
  name: 'remediator-events-rg-${resourceToken}-${i}'
  scope: subscription(id)
  params: {
    name: appResourceGroupName
    location: location
    tags: tags
  }
}]

module eventTopics 'app/event-topic.bicep' = [for (id, i) in wiredSubscriptions: {
  name: 'remediator-topic-${i}'
  scope: resourceGroup(id, appResourceGroupName)
  params: {
    name: eventTopicName
    tags: tags
  }
  dependsOn: [
    rg
    eventResourceGroups
  ]
}]

// resourceGroups mode: the event reads at the app's resource group of each monitored subscription,
// once that group exists (rg here, eventResourceGroups elsewhere). The loop is empty otherwise, so
// the conditional role's output is read only when the role is deployed.
module remediatorEventReadsResourceGroups 'app/remediator-access-resource-group.bicep' = [for (id, i) in (((roleAssignmentScope == 'resourceGroups') && !managementGroupMode) ? monitoredSubscriptions : []): {
  name: 'remediator-event-reads-${resourceToken}-${i}'
  scope: resourceGroup(id, appResourceGroupName)
  params: {
    roleDefinitionGuid: remediatorEventReadRole.outputs.roleDefinitionGuid
    principalId: identity.outputs.principalId
  }
  dependsOn: [
    rg
    eventResourceGroups
  ]
}]

// Each topic's delivery failure logs and metrics to the workspace, and alerts on its
// dead-lettered and dropped events.
module eventTopicMonitoring 'app/event-topic-monitoring.bicep' = [for (id, i) in wiredSubscriptions: {
  name: 'remediator-topic-monitoring-${i}'
  scope: resourceGroup(id, appResourceGroupName)
  params: {
    topicName: eventTopics[i].outputs.name
    tags: tags
    workspaceId: monitoring.outputs.logAnalyticsId
    actionGroupId: alerts.outputs.actionGroupId
  }
}]

module deadLetterAccess 'app/deadletter-access.bicep' = [for (id, i) in wiredSubscriptions: {
  name: 'remediator-deadletter-access-${i}'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: deadLetterContainerName
    topicId: eventTopics[i].outputs.id
    topicPrincipalId: eventTopics[i].outputs.principalId
  }
}]

// Phase 2: only once on_resource_event exists (DEPLOY_EVENT_SUBSCRIPTIONS, set by the hook).
module eventSubscriptions 'app/event-subscription.bicep' = [for (id, i) in (deployEventSubscriptions ? wiredSubscriptions : []): {
  name: 'remediator-events-${i}'
  scope: resourceGroup(id, appResourceGroupName)
  params: {
    systemTopicName: eventTopics[i].outputs.name
    functionAppId: function.outputs.id
    deadLetterStorageAccountId: storage.outputs.id
    deadLetterContainerName: deadLetterContainerName
    restrictedResourceGroups: restrictedResourceGroups
    eventDeliverySchema: eventDeliverySchema
  }
  dependsOn: [
    deadLetterAccess
  ]
}]

// Management-group mode (managementGroupId). A subscription deployment cannot deploy to a management
// group; app/management-group-hop.bicep, at the tenant, can (see there). Phase 1: the custom role
// defined and assigned at the group. Phase 2 (deployEventSubscriptions, once on_resource_event
// exists): the policy and its assignment, the assignment identity's grant in the app's resource
// group, then the remediation task.
module managementGroupAccess 'app/management-group-hop.bicep' = if (managementGroupMode) {
  name: 'remediator-management-group-${resourceToken}'
  scope: tenant()
  params: {
    managementGroupId: trim(managementGroupId)
    wiring: {
      // Not the subscription mode's name: a deployment switched between the modes would meet
      // its other role's name taken (custom role names are unique in the tenant).
      roleName: 'VMSS public IP remediator at ${trim(managementGroupId)} (${environmentName} ${resourceToken})'
      principalId: identity.outputs.principalId
      deployPolicy: deployEventSubscriptions
      resourceToken: resourceToken
      location: location
      resourceGroupName: appResourceGroupName
      topicName: eventTopicName
      tags: tags
      functionAppId: function.outputs.id
      deadLetterStorageAccountId: storage.outputs.id
      deadLetterContainerName: deadLetterContainerName
      eventDeliverySchema: eventDeliverySchema
    }
  }
}

module managementGroupDeadLetterGrant 'app/deadletter-grant-access.bicep' = if (managementGroupMode && deployEventSubscriptions) {
  name: 'remediator-management-group-grant-${resourceToken}'
  scope: rg
  params: {
    principalId: managementGroupAccess.outputs.policyPrincipalId
    policyAssignmentId: managementGroupAccess.outputs.policyAssignmentId
  }
}

module managementGroupRemediation 'app/management-group-hop.bicep' = if (managementGroupMode && deployEventSubscriptions) {
  name: 'remediator-management-group-remediation-${resourceToken}'
  scope: tenant()
  params: {
    managementGroupId: trim(managementGroupId)
    remediate: true
    policyAssignmentId: managementGroupAccess.outputs.policyAssignmentId
    remediationName: remediationName
  }
  dependsOn: [
    managementGroupDeadLetterGrant
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output REMEDIATION_TABLE_SERVICE_URI string = storage.outputs.tableEndpoint
output REMEDIATION_QUEUE_SERVICE_URI string = storage.outputs.queueEndpoint
output REMEDIATION_BLOB_SERVICE_URI string = storage.outputs.blobEndpoint
output REMEDIATION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output REMEDIATION_MONITORED_SUBSCRIPTIONS string = managementGroupMode ? '' : join(monitoredSubscriptions, ',')
output REMEDIATION_POLICY string = policy.outputs.policy
// Management-group mode, once the policy is deployed: its assignment, for the postdeploy hook's
// remediation tasks (infra/hooks/remediate-subscriptions.sh).
output REMEDIATION_WIRING_ASSIGNMENT_ID string = (managementGroupMode && deployEventSubscriptions) ? managementGroupAccess.outputs.policyAssignmentId : ''
