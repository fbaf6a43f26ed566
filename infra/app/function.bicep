// The Flex Consumption plan (FC1) and the function app: Python 3.11, the code package pulled
// from a blob container with the user-assigned identity, identity-based host storage
// (AzureWebJobsStorage__*) and Entra-authenticated Application Insights. The remediator's own
// settings come from main.bicep (remediatorSettings) and are merged over the host's.

@description('Name of the function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags for the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('The azd service name in azure.yaml: azd deploys the code to the app carrying this tag.')
param serviceName string = 'remediator'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Name of the storage account (host storage and the deployment package).')
param storageAccountName string

@description('Blob endpoint of the storage account.')
param storageBlobEndpoint string

@description('The blob container that holds the deployment package.')
param deploymentContainerName string

@description('Connection string of Application Insights (it carries no key: authentication is Entra).')
param applicationInsightsConnectionString string

@description('The remediator\'s app settings (see the README\'s settings table).')
param remediatorSettings object

@description('Most instances the app scales out to. Each instance adds ARM calls under the same identity, which ARM throttles per principal.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Identity-based host storage and telemetry; FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not allowed on Flex Consumption (functionAppConfig.runtime).
// host.json sets telemetryMode OpenTelemetry; PYTHON_ENABLE_OPENTELEMETRY makes the Python worker
// tell the host (capability WorkerOpenTelemetryEnabled) that it exports its own logs, so the host
// does not relay them too: each record reaches Application Insights once, from the app's own
// exporter (remediation/telemetry.py, with the managed identity). Not
// PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY, which makes the worker configure a second Azure
// Monitor exporter, without the identity, on the root logger.
// learn.microsoft.com/azure/azure-functions/opentelemetry-howto (Configure application settings)
var hostSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
  // The worker loads the app's own packages (requirements.txt: azure-functions 1.26, which
  // decodes CloudEvents deliveries into func.CloudEvent), not the copies it ships with, on
  // Python 3.11 (github.com/Azure/azure-functions-python-worker/pull/794; issue 1642).
  PYTHON_ISOLATE_WORKER_DEPENDENCIES: '1'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions and would make a first deployment region-dependent; while the app is down Event Grid retries for 24 hours and the sweep catches up.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222: Event Grid delivers to the function over its public endpoint (AzureFunction endpoint, authenticated with the Event Grid extension's system key); there is no virtual network to put a private endpoint in.
  //checkov:skip=CKV_AZURE_17: Client certificates would lock out Event Grid, which presents none; the HTTP routes (audit, replay) require a function or admin key.
  //checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero on events; always-ready instances would be billed around the clock for a remediator that the sweep backstops.
  //checkov:skip=CKV_AZURE_213: Health check takes instances of a load-balanced web app out of rotation; Flex Consumption places instances itself and the app has no health route.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every sites/config resource as the site's web configuration; this one holds the
  // app settings only, so the web-server checks below do not apply to it.
  //checkov:skip=CKV_AZURE_13: App Service authentication would also stand in front of Event Grid's delivery; the HTTP routes (audit: function key, replay: admin key) are guarded by Functions keys.
  //checkov:skip=CKV_AZURE_222: The site's public endpoint is needed for Event Grid delivery (see the site).
  //checkov:skip=CKV_AZURE_63: HTTP (web server) logging is an App Service web-app feature; the functions log to Application Insights.
  //checkov:skip=CKV_AZURE_65: Detailed error pages are an App Service web-app feature; the functions log to Application Insights.
  //checkov:skip=CKV_AZURE_66: Failed request tracing is an App Service web-app feature; the functions log to Application Insights.
  //checkov:skip=CKV_AZURE_80: The app runs Python 3.11, not .NET.
  //checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share; the code package is a blob read with the managed identity.
  parent: site
  name: 'appsettings'
  // FUNCTION_APP_ID: which app `remediation doctor` checks Event Grid delivers to.
  properties: union(hostSettings, remediatorSettings, {
    FUNCTION_APP_ID: site.id
  })
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
