// The remediator's custom role: exactly the ARM actions the code performs, no more. The list is
// kept in ONE place, remediator-role-actions.json, which tests/infra/test_infra.py compares with
// remediation.permissions.required_permissions() (derived from the gateway's @arm_operation declarations):
// when the code gains or loses an ARM call, that test fails until this file follows.
targetScope = 'subscription'

@description('Display name of the role (unique in the tenant).')
param roleName string

@description('Where the role may be assigned: the monitored subscriptions.')
param assignableScopes array

var remediatorRoleActions = loadJsonContent('remediator-role-actions.json', '$.actions')

resource remediatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, roleName)
  properties: {
    roleName: roleName
    description: 'VMSS public IP remediator: reads scale sets, VMs, NICs and public IPs; strips public IPs from NICs and deletes them; deletes scale-set-created VMs; scales sets to zero.'
    type: 'CustomRole'
    permissions: [
      {
        actions: remediatorRoleActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

output roleDefinitionGuid string = remediatorRole.name
