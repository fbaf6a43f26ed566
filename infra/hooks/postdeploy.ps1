# azd postdeploy hook (Windows): see postdeploy.sh, which this mirrors.
$ErrorActionPreference = 'Stop'

if ($env:DEPLOY_EVENT_SUBSCRIPTIONS -eq 'true') {
  Write-Host 'Event Grid subscriptions: already part of the deployment (DEPLOY_EVENT_SUBSCRIPTIONS=true).'
  exit 0
}

azd env set DEPLOY_EVENT_SUBSCRIPTIONS true
for ($attempt = 1; $attempt -le 3; $attempt++) {
  azd provision --no-prompt
  if ($LASTEXITCODE -eq 0) {
    # Management-group mode: wire the subscriptions already under the group now.
    if ($env:MANAGEMENT_GROUP_ID) {
      $assignment = azd env get-value REMEDIATION_WIRING_ASSIGNMENT_ID
      & (Join-Path $PSScriptRoot 'remediate-subscriptions.ps1') $env:MANAGEMENT_GROUP_ID $assignment
      exit $LASTEXITCODE
    }
    exit 0
  }
  if ($attempt -lt 3) {
    Write-Warning 'Retrying in 60 s (the function may not be listed yet)...'
    Start-Sleep -Seconds 60
  }
}
Write-Error 'Creating the Event Grid subscriptions failed 3 times. Once the function app lists on_resource_event, run: azd provision'
exit 1
