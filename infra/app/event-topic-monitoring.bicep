// Monitoring of one Event Grid system topic: its diagnostic settings (delivery failure logs and
// metrics to the Log Analytics workspace) and metric alerts on the events it dead-letters and
// drops. Deployed in the topic's resource group, next to event-topic.bicep.
//
// Resource shapes and names:
// - diagnostic settings: learn.microsoft.com/azure/templates/microsoft.insights/2021-05-01-preview/diagnosticsettings;
//   a system topic's only log category is DeliveryFailures (table AegDeliveryFailureLogs):
//   learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-eventgrid-systemtopics-logs
// - metric alerts: learn.microsoft.com/azure/templates/microsoft.insights/2018-03-01/metricalerts;
//   DeadLetteredCount and DroppedEventCount (Count, aggregation Total, per minute):
//   learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-eventgrid-systemtopics-metrics

@description('Name of the system topic (in this resource group).')
param topicName string

@description('Tags for the alert rules.')
param tags object = {}

@description('Resource id of the Log Analytics workspace the topic\'s logs and metrics go to.')
param workspaceId string

@description('Resource id of the action group the alerts notify.')
param actionGroupId string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'remediator-to-log-analytics'
  scope: systemTopic
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'DeliveryFailures'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// Each event the topic gave up on: after 30 attempts or 24 hours (event-subscription.bicep) it
// is dead-lettered to the eventgrid-deadletter container, for `remediation replay --dead-letter`.
resource deadLettered 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${topicName}-dead-lettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dead-lettered events of the remediator\'s system topic: they were never handled. Replay them with `remediation replay --dead-letter eventgrid-deadletter`.'
    severity: 1
    enabled: true
    scopes: [
      systemTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}

// Events dropped without a dead letter (the dead-letter write itself failed): they are lost; the
// sweep is the only backstop.
resource dropped 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${topicName}-dropped'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dropped events of the remediator\'s system topic without dead-lettering them: they are lost, and only the sweep finds what they were about.'
    severity: 1
    enabled: true
    scopes: [
      systemTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'Dropped'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DroppedEventCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}
