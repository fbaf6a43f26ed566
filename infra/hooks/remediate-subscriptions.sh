#!/bin/sh
# Management-group mode: start a policy remediation task in each subscription under the group, now.
#
# The remediation task main.bicep creates at the group remediates only what Azure Policy has
# already marked non-compliant, and right after the assignment is created nothing is marked yet
# (a compliance scan takes about 30 minutes); a task at a subscription may re-evaluate compliance
# first (resourceDiscoveryMode ReEvaluateCompliance, accepted at subscription scope and below).
# So after the first deployment of the policy, each subscription under the group gets one such task
# for the group's assignment. Safe to run again (each run names new tasks); subscriptions that
# join later are wired by the policy itself.
#
# Usage: remediate-subscriptions.sh <management group name> <policy assignment id>
set -eu

group=$1
assignment=$2
run=$(date -u +%Y%m%d%H%M%S)
url="https://management.azure.com/providers/Microsoft.Management/managementGroups/${group}/descendants?api-version=2020-05-01"
# A subscription among the descendants: typed as the REST example shows it, or as its schema does.
pick="value[?type=='Microsoft.Management/managementGroups/subscriptions' || type=='/subscriptions'].name"
subscriptions=""
pages=0
while [ -n "$url" ]; do
  if [ "$pages" -ge 1000 ]; then
    echo "More than 1000 pages of descendants under $group: stopped there; run again or create the rest by hand." >&2
    exit 1
  fi
  subscriptions="$subscriptions $(az rest --method get --url "$url" --query "$pick" -o tsv)"
  url=$(az rest --method get --url "$url" --query "nextLink" -o tsv)
  pages=$((pages + 1))
done

started=0
failed=""
for subscription in $subscriptions; do
  if az policy remediation create --name "remediator-initial-$run" --subscription "$subscription" \
    --policy-assignment "$assignment" --resource-discovery-mode ReEvaluateCompliance --output none; then
    started=$((started + 1))
  else
    failed="$failed $subscription"
  fi
done
echo "Policy remediation: $started task(s) started in the subscriptions under $group. Each first"
echo "re-evaluates compliance (minutes); if a deployment fails with AuthorizationFailed (the policy"
echo "identity's new role not yet in effect), run again: $0 $group $assignment"
if [ -n "$failed" ]; then
  echo "No task could be started in:$failed. Run again: $0 $group $assignment" >&2
  exit 1
fi
