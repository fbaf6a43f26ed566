#!/bin/sh
# azd postdown hook: after `azd down` the function is gone, so the next `azd up` must create the
# event subscriptions after its deploy again (postdeploy.sh), not during its first provision.
set -eu
azd env set DEPLOY_EVENT_SUBSCRIPTIONS false
