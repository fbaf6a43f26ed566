# azd postdeploy hook (Windows): see postdeploy.sh, which this mirrors.
$ErrorActionPreference = 'Stop'

if ($env:DEPLOY_EVENT_SUBSCRIPTIONS -eq 'true') {
  Write-Host 'Event Grid subscriptions: already part of the deployment (DEPLOY_EVENT_SUBSCRIPTIONS=true).'
} else {
  azd env set DEPLOY_EVENT_SUBSCRIPTIONS true
  $provisioned = $false
  for ($attempt = 1; $attempt -le 3; $attempt++) {
    azd provision --no-prompt
    if ($LASTEXITCODE -eq 0) { $provisioned = $true; break }
    if ($attempt -lt 3) {
      Write-Warning 'Retrying in 60 s (the function may not be listed yet)...'
      Start-Sleep -Seconds 60
    }
  }
  if (-not $provisioned) {
    Write-Error 'Creating the Event Grid subscriptions failed 3 times. Once the function app lists on_resource_event, run: azd provision'
    exit 1
  }
}

# Management-group mode: wire the subscriptions already under the group now, once per assignment.
$group = "$env:MANAGEMENT_GROUP_ID".Trim()
if ($group) {
  $assignment = azd env get-value REMEDIATION_WIRING_ASSIGNMENT_ID 2>$null
  if ($LASTEXITCODE -ne 0) { $assignment = '' }
  if (-not $assignment) {
    Write-Warning 'Management-group mode: no policy assignment in the environment yet (REMEDIATION_WIRING_ASSIGNMENT_ID): run azd provision, then azd deploy again.'
  } elseif ($env:REMEDIATION_TASKS_STARTED_FOR -ne $assignment) {
    & (Join-Path $PSScriptRoot 'remediate-subscriptions.ps1') $group $assignment
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    azd env set REMEDIATION_TASKS_STARTED_FOR $assignment
  }
}
exit 0
