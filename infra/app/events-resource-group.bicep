// The resource group that holds the Event Grid system topic in a monitored subscription other
// than the one deployed to (a subscription's system topic lives in that subscription).
targetScope = 'subscription'

@description('Name of the resource group (the same as the app\'s).')
param name string

@description('Region of the resource group\'s metadata.')
param location string

@description('Tags for the resource group.')
param tags object = {}

resource eventsResourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: name
  location: location
  tags: tags
}
