# Management-group mode (Windows): see remediate-subscriptions.sh, which this mirrors.
# Usage: remediate-subscriptions.ps1 <management group name> <policy assignment id>
param([Parameter(Mandatory)][string]$Group, [Parameter(Mandatory)][string]$Assignment)
$ErrorActionPreference = 'Stop'

$run = (Get-Date).ToUniversalTime().ToString('yyyyMMddHHmmss')
$url = "https://management.azure.com/providers/Microsoft.Management/managementGroups/$Group/descendants?api-version=2020-05-01"
$pick = "value[?type=='Microsoft.Management/managementGroups/subscriptions' || type=='/subscriptions'].name"
$subscriptions = @()
$pages = 0
while ($url -and $pages -lt 200) {
  $subscriptions += @(az rest --method get --url $url --query $pick -o tsv)
  if ($LASTEXITCODE -ne 0) { throw "Reading the subscriptions under $Group failed." }
  $url = az rest --method get --url $url --query 'nextLink' -o tsv
  $pages++
}

$started = 0
$failed = @()
foreach ($subscription in $subscriptions | Where-Object { $_ }) {
  az policy remediation create --name "remediator-initial-$run" --subscription $subscription `
    --policy-assignment $Assignment --resource-discovery-mode ReEvaluateCompliance --output none
  if ($LASTEXITCODE -eq 0) { $started++ } else { $failed += $subscription }
}
Write-Host "Policy remediation: $started task(s) started in the subscriptions under $Group."
if ($failed.Count -gt 0) {
  Write-Error "No task could be started in: $($failed -join ' '). Run again: $PSCommandPath $Group $Assignment"
  exit 1
}
