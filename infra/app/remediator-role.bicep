// The remediator's custom role: exactly the ARM actions the code performs, no more. The list is
// kept in ONE place, remediator-role-actions.json, which tests/infra/test_infra.py compares with
// remediation.permissions.required_permissions() (derived from the gateway's @arm_operation declarations):
// when the code gains or loses an ARM call, that test fails until this file follows.
targetScope = 'subscription'

@description('Display name of the role (unique in the tenant).')
param roleName string

@description('Where the role may be assigned: the monitored subscriptions.')
param assignableScopes array

@description('Only the linked actions (the joins the documents it writes re-assert), for the resource groups where the networks, load balancers and security groups of restricted sets live.')
param joinsOnly bool = false

@description('Only the Event Grid reads (system topics and their event subscriptions), for the app\'s resource group of each monitored subscription when the role is assigned at resource groups: remediation doctor reads the topic there. Takes precedence over joinsOnly.')
param eventReadsOnly bool = false

@description('What the role is for, in its description.')
param purpose string = 'VMSS public IP remediator: reads scale sets, VMs, NICs and public IPs; strips public IPs from NICs and deletes them; deletes scale-set-created VMs; scales sets to zero.'

var allActions = loadJsonContent('remediator-role-actions.json', '$.actions')
// A join is the action ARM demands on a resource a written document references (linked access).
var joinActions = filter(allActions, action => contains(action, '/join'))
// The reads of the system topic and its event subscriptions (remediation doctor's events check).
var eventReadActions = filter(allActions, action => startsWith(action, 'Microsoft.EventGrid/systemTopics/'))
var remediatorRoleActions = eventReadsOnly ? eventReadActions : (joinsOnly ? joinActions : allActions)

resource remediatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, roleName)
  properties: {
    roleName: roleName
    description: purpose
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
