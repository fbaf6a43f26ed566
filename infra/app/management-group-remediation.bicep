// Management-group mode: the policy remediation task for the subscriptions under the group at
// assignment time (deployIfNotExists acts by itself only on subscriptions created or moved under
// the group later). Deployed after the policy identity may write the dead-letter role assignment
// (main.bicep: managementGroupDeadLetterGrant).
//
// Microsoft.PolicyInsights/remediations at a management group:
// learn.microsoft.com/azure/templates/microsoft.policyinsights/remediations and
// learn.microsoft.com/azure/governance/policy/how-to/remediate-resources. At a management group
// only resourceDiscoveryMode ExistingNonCompliant is accepted, so the task remediates what the
// compliance scan has marked non-compliant when it starts: name it anew (remediationName, from
// utcNow() in main.bicep) and each `azd provision` starts a task over what is non-compliant then.
targetScope = 'managementGroup'

@description('Resource id of the policy assignment (management-group.bicep).')
param policyAssignmentId string

@description('Name of the remediation task: a new name starts a new task.')
param remediationName string

resource remediation 'Microsoft.PolicyInsights/remediations@2021-10-01' = {
  name: remediationName
  properties: {
    policyAssignmentId: policyAssignmentId
    resourceDiscoveryMode: 'ExistingNonCompliant'
    failureThreshold: {
      percentage: 1
    }
    parallelDeployments: 10
    resourceCount: 500
  }
}

output id string = remediation.id
