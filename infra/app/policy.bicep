// REMEDIATION_POLICY, built from the deployment's parameters (remediation/policy.py validates it
// again when the app starts). No resources: the module exists so that ARM checks every scope's
// mode against the allowed list (an array parameter's allowed values apply to each element) and
// a typo fails the deployment, not every event afterwards.
targetScope = 'subscription'

@description('Lower-case ids of the monitored subscriptions.')
param monitoredSubscriptions array

@description('Names of the monitored management groups (management-group mode): every subscription under one is monitored.')
param monitoredManagementGroups array = []

@description('The restricted scopes: objects with scope (an ARM id) and mode.')
param scopes array

@description('The mode of each restricted scope, in order.')
@allowed([
  'audit'
  'strip'
  'evict'
  'scale-to-zero'
])
param modes array

@description('A JSON object with the policy keys that no parameter sets.')
param policyOverrides string = '{}'

output policy string = string(union(json(policyOverrides), {
  monitored_subscriptions: monitoredSubscriptions
  monitored_management_groups: monitoredManagementGroups
  scopes: scopes
}))
