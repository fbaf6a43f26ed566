# azd postdown hook (Windows): see postdown.sh, which this mirrors.
$ErrorActionPreference = 'Stop'
azd env set DEPLOY_EVENT_SUBSCRIPTIONS false
