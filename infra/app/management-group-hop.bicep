// Management-group mode: the hop from main.bicep (targetScope subscription) to the management group.
// A subscription deployment can deploy to subscriptions, their resource groups and the tenant, not
// to a management group (learn.microsoft.com/azure/azure-resource-manager/bicep/deploy-to-subscription,
// "Deployment scopes"); a tenant deployment can (.../bicep/deploy-to-tenant, "Scope to management
// group"). So main.bicep deploys this file at tenant() and it deploys the management group's
// modules: the workaround the Bicep team gives for this ARM limit (github.com/Azure/bicep/issues/13544).
// The deployer needs Microsoft.Resources/deployments/write at the tenant ("/") and at the management
// group, besides the rights on what the modules create (docs/deploy.md).
targetScope = 'tenant'

@description('The management group (its id, not its display name).')
param managementGroupId string

@description('Deploy the policy remediation task (remediate) instead of the role and policy.')
param remediate bool = false

@description('Parameters of management-group.bicep (with remediate false).')
param wiring object = {}

@description('Resource id of the policy assignment (with remediate true).')
param policyAssignmentId string = ''

@description('Name of the remediation task (with remediate true).')
param remediationName string = ''

module managementGroupResources 'management-group.bicep' = if (!remediate) {
  name: 'remediator-management-group'
  scope: managementGroup(managementGroupId)
  params: {
    roleName: wiring.roleName
    principalId: wiring.principalId
    deployPolicy: wiring.deployPolicy
    resourceToken: wiring.resourceToken
    location: wiring.location
    resourceGroupName: wiring.resourceGroupName
    topicName: wiring.topicName
    tags: wiring.tags
    functionAppId: wiring.functionAppId
    deadLetterStorageAccountId: wiring.deadLetterStorageAccountId
    deadLetterContainerName: wiring.deadLetterContainerName
    eventDeliverySchema: wiring.eventDeliverySchema
  }
}

module remediation 'management-group-remediation.bicep' = if (remediate) {
  name: 'remediator-management-group-remediation'
  scope: managementGroup(managementGroupId)
  params: {
    policyAssignmentId: policyAssignmentId
    remediationName: remediationName
  }
}

output policyAssignmentId string = remediate ? '' : managementGroupResources.outputs.policyAssignmentId
output policyPrincipalId string = remediate ? '' : managementGroupResources.outputs.policyPrincipalId
