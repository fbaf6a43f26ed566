#!/usr/bin/env bash
# Static checks of infra/ with checkov, offline (no Bridgecrew platform, no policy download).
#
# checkov lives in its own virtual environment (its dependency tree would pin the project's),
# created on first use: .venv/checkov, inside the project's ignored .venv/ (override with
# CHECKOV_VENV). Arguments go to checkov (default: --compact --quiet), e.g. `infra/check.sh -o json`.
# A finding that is accepted is skipped inline, next to the resource, with its reason:
#   //checkov:skip=CKV_AZURE_NN: why this does not apply
set -euo pipefail

CHECKOV_VERSION="3.3.30"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CHECKOV_VENV:-$root/.venv/checkov}"
python="${PYTHON:-python3.11}"

if [ ! -x "$venv/bin/checkov" ] || ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  command -v "$python" >/dev/null || { echo "needs $python to install checkov" >&2; exit 2; }
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
fi

cd "$root"
if [ "$#" -eq 0 ]; then
  set -- --compact --quiet
fi
exec "$venv/bin/checkov" --directory infra --framework bicep --skip-download "$@"
