// An Azure Monitor workbook with the README's KQL views ("Telemetry and KQL"), over the
// Application Insights component. The queries are the files in kql/, loaded as is: the README
// shows the same text (tests/infra/test_monitoring.py compares them), so there is one copy.
//
// Resource shape: learn.microsoft.com/azure/templates/microsoft.insights/2022-04-01/workbooks
// (name: a GUID; serializedData: the workbook's JSON, schema
// github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json; a query
// item is type 3 with content version KqlItem/1.0, queryType 0 = Logs).

@description('Region of the workbook.')
param location string

@description('Tags for the workbook.')
param tags object = {}

@description('Name shown in Azure Monitor, Workbooks.')
param displayName string

@description('Resource id of the Application Insights component the views query.')
param applicationInsightsId string

var views = [
  {
    name: 'remediations-per-set'
    title: 'Remediations per scale set (last day)'
    query: loadTextContent('kql/remediations-per-set.kql')
  }
  {
    name: 'exposure-windows'
    title: 'Exposure windows (last week)'
    query: loadTextContent('kql/exposure-windows.kql')
  }
  {
    name: 'failures'
    title: 'Failures, newest first (last week)'
    query: loadTextContent('kql/failures.kql')
  }
  {
    name: 'rejected-events'
    title: 'Rejected events and why (last week)'
    query: loadTextContent('kql/rejected-events.kql')
  }
]

var queryItems = [for view in views: {
  type: 3
  name: view.name
  content: {
    version: 'KqlItem/1.0'
    query: view.query
    size: 0
    title: view.title
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: 'table'
  }
}]

var intro = {
  type: 1
  name: 'intro'
  content: {
    json: '## VMSS public IP remediator\nThe audit records the app exports to Application Insights (README, "Telemetry and KQL"). The audit table is the record of truth: `remediation audit` reads it.'
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat([
    intro
  ], queryItems)
  fallbackResourceIds: [
    applicationInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2022-04-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'remediator-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: toLower(applicationInsightsId)
    version: '1.0'
    serializedData: string(workbookContent)
  }
}

output id string = workbook.id
