#!/usr/bin/env bash
# Node.js + npm for the ciba connector's tests, which run panva's oidc-provider (pinned in
# connectors/ciba/tests/op/package-lock.json) as a real third-party CIBA upstream.
# Installs Debian's nodejs and npm when node is absent, and the pinned packages when
# node_modules is missing. Idempotent and quiet.
set -euo pipefail
. "$(dirname "$0")/../prepare-lib.sh"

OP_DIR="$(cd "$(dirname "$0")/../.." && pwd)/connectors/ciba/tests/op"

if ! command -v node >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm
fi
if [ ! -d "$OP_DIR/node_modules/oidc-provider" ]; then
    (cd "$OP_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
