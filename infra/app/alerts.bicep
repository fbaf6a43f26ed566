// Alerts on the remediator's own telemetry, and the action group they (and the Event Grid metric
// alerts of event-topic-monitoring.bicep) notify.
//
// The log alerts query the Application Insights component: the audit records the app exports as
// traces (remediation/telemetry.py: logger remediation.audit, the record's fields as
// customDimensions audit_*), the same data the README's KQL and the workbook read. Each query is
// a file in kql/, loaded as is, so the tests can read exactly what is deployed.
//
// Resource shapes:
// - action group: learn.microsoft.com/azure/templates/microsoft.insights/2023-01-01/actiongroups
// - log alert: learn.microsoft.com/azure/templates/microsoft.insights/2022-06-15/scheduledqueryrules
//   (timeAggregation Count without a measure column counts the query's rows; a query that
//   returns none counts 0, which is what the no-sweep rule's LessThan 1 fires on)

@description('Region of the log alert rules (the region of the Application Insights component).')
param location string

@description('Tags for the rules and the action group.')
param tags object = {}

@description('Prefix of the rule names.')
param namePrefix string

@description('Resource id of the Application Insights component the queries run against.')
param applicationInsightsId string

@description('Addresses that get an email when an alert fires; none: the action group has no receivers (the alerts still fire and show in Azure Monitor, Alerts).')
param alertEmails array = []

// Twice the sweep's period, rounded up to a window log alerts accept (main.bicep,
// sweepAlertWindows). A schedule main.bicep has no window for arrives as a value not allowed here
// and fails the deployment, rather than deploying a no-sweep alert with the wrong window.
@description('Window of the no-sweep alert: at least twice the sweep schedule\'s period.')
@allowed([
  'PT10M'
  'PT15M'
  'PT30M'
  'PT45M'
  'PT1H'
  'PT2H'
  'PT3H'
  'PT4H'
  'PT5H'
  'PT6H'
])
param sweepAlertWindow string

// How often the failure rules run, and over how long: a record ingested a few minutes late
// (Application Insights ingestion latency) still falls in a later window. The alerts are
// stateful (autoMitigate): one notification per firing, resolved when the windows are clean.
var evaluationFrequency = 'PT5M'
var failureWindow = 'PT15M'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'remediator'
    enabled: true
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

resource failedRemediations 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-failed-remediations'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Remediator: failed remediations'
    description: 'An ARM write of the remediator ended failed (audit outcome, result failed): the instance may still be exposed. `remediation audit --outcome failed` lists them.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: failureWindow
    criteria: {
      allOf: [
        {
          query: loadTextContent('kql/alert-failed-remediations.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource errorRecords 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-error-records'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Remediator: error records'
    description: 'The remediator recorded an error (audit kind error): a handling, sweep or judgement that could not finish; Event Grid, the work queue or the next sweep tries again. Poison messages have their own alert.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: failureWindow
    criteria: {
      allOf: [
        {
          query: loadTextContent('kql/alert-error-records.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The poison queue's length is not a metric Azure offers per queue (QueueMessageCount is the
// whole account's queue service, refreshed daily: learn.microsoft.com/azure/storage/queues/
// queues-storage-monitoring-scenarios). What reaches the queue is known from on_poison, which
// records every message it takes off it: this counts those records.
resource poisonMessages 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-poison-messages'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Remediator: work messages on the poison queue'
    description: 'A work message failed as many times as host.json\'s maxDequeueCount allows and reached the poison queue; on_poison recorded and kept it for `remediation replay --poison`.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: failureWindow
    criteria: {
      allOf: [
        {
          query: loadTextContent('kql/alert-poison-messages.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource noSweep 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-no-sweep'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Remediator: no sweep completed'
    description: 'No sweep completed within twice its schedule: the backstop for lost events is not running (the app is stopped, failing, or not deployed).'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: sweepAlertWindow
    criteria: {
      allOf: [
        {
          query: loadTextContent('kql/alert-sweep-completed.kql')
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
