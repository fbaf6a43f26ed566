# Management-group mode (Windows): see remediate-subscriptions.sh, which this mirrors.
# Usage: remediate-subscriptions.ps1 <management group name> <policy assignment id>
param([Parameter(Mandatory)][string]$Group, [Parameter(Mandatory)][string]$Assignment)
$ErrorActionPreference = 'Stop'

$run = (Get-Date).ToUniversalTime().ToString('yyyyMMddHHmmss')
# The descendants are read with Invoke-RestMethod: az is az.cmd on Windows, and its cmd
# would split a nextLink at its '&'.
$token = az account get-access-token --resource https://management.azure.com/ --query accessToken -o tsv
if ($LASTEXITCODE -ne 0) { throw 'No ARM token: az login first.' }
$headers = @{ Authorization = "Bearer $token" }
$url = "https://management.azure.com/providers/Microsoft.Management/managementGroups/$Group/descendants?api-version=2020-05-01"
$subscriptions = @()
$pages = 0
while ($url) {
  if ($pages -ge 1000) { throw "More than 1000 pages of descendants under ${Group}: stopped there." }
  $page = Invoke-RestMethod -Method Get -Uri $url -Headers $headers
  # A subscription among the descendants: typed as the REST example shows it, or as its schema does.
  $subscriptions += @($page.value | Where-Object {
      $_.type -eq 'Microsoft.Management/managementGroups/subscriptions' -or $_.type -eq '/subscriptions'
    } | ForEach-Object { $_.name })
  $url = $page.nextLink
  $pages++
}

$started = 0
$failed = @()
foreach ($subscription in $subscriptions | Where-Object { $_ }) {
  az policy remediation create --name "remediator-initial-$run" --subscription $subscription `
    --policy-assignment $Assignment --resource-discovery-mode ReEvaluateCompliance --output none
  if ($LASTEXITCODE -eq 0) { $started++ } else { $failed += $subscription }
}
Write-Host "Policy remediation: $started task(s) started in the subscriptions under $Group. Each first"
Write-Host "re-evaluates compliance (minutes); if a deployment fails with AuthorizationFailed (the policy"
Write-Host "identity's new role not yet in effect), run again: $PSCommandPath $Group $Assignment"
if ($failed.Count -gt 0) {
  Write-Error "No task could be started in: $($failed -join ' '). Run again: $PSCommandPath $Group $Assignment"
  exit 1
}
