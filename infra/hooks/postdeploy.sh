#!/bin/sh
# azd postdeploy hook: create the Event Grid event subscriptions once the code is deployed.
#
# Event Grid checks that an AzureFunction endpoint (on_resource_event) exists when an event
# subscription is created, so the first `azd provision` leaves them out. After the first deploy
# this hook sets DEPLOY_EVENT_SUBSCRIPTIONS=true and provisions again; from then on every
# `azd provision` keeps them (the function exists). The function can take a minute to be listed
# after a deploy, so a failed provision is retried. In management-group mode that provision also
# creates the policy, and a remediation task is then started in each subscription under the group,
# once per policy assignment (a deployment switched to this mode gets them too).
set -eu

if [ "${DEPLOY_EVENT_SUBSCRIPTIONS:-}" = "true" ]; then
  echo "Event Grid subscriptions: already part of the deployment (DEPLOY_EVENT_SUBSCRIPTIONS=true)."
else
  azd env set DEPLOY_EVENT_SUBSCRIPTIONS true
  attempt=1
  while ! azd provision --no-prompt; do
    if [ "$attempt" -ge 3 ]; then
      echo "Creating the Event Grid subscriptions failed 3 times. Once the function app lists" >&2
      echo "on_resource_event, run: azd provision" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    echo "Retrying in 60 s (the function may not be listed yet)..." >&2
    sleep 60
  done
fi

# Management-group mode: wire the subscriptions already under the group without waiting for Azure
# Policy's first compliance scan (remediate-subscriptions.sh), once for each policy assignment.
group=$(printf '%s' "${MANAGEMENT_GROUP_ID:-}" | tr -d '[:space:]')
if [ -n "$group" ]; then
  assignment=$(azd env get-value REMEDIATION_WIRING_ASSIGNMENT_ID 2>/dev/null) || assignment=""
  if [ -z "$assignment" ]; then
    echo "Management-group mode: no policy assignment in the environment yet" >&2
    echo "(REMEDIATION_WIRING_ASSIGNMENT_ID): run azd provision, then azd deploy again." >&2
  elif [ "${REMEDIATION_TASKS_STARTED_FOR:-}" != "$assignment" ]; then
    sh "$(dirname "$0")/remediate-subscriptions.sh" "$group" "$assignment"
    azd env set REMEDIATION_TASKS_STARTED_FOR "$assignment"
  fi
fi
