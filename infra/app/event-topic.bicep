// The Event Grid system topic of one monitored subscription (its resource events), with a
// system-assigned identity that dead-letters undeliverable events to the app's storage account.
// Azure allows one system topic per source: if the subscription already has one of type
// Microsoft.Resources.Subscriptions, this deployment fails (see docs/deploy.md).

@description('Name of the system topic.')
param name string

@description('Tags for the topic.')
param tags object = {}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output id string = systemTopic.id
output name string = systemTopic.name
output principalId string = systemTopic.identity.principalId
