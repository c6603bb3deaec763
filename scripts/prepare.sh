#!/usr/bin/env bash
# Prepares this machine for the test suite: `make test` and `.ci/run` both call it.
# Each part lives in scripts/prepare.d/NAME.sh and is idempotent: it installs what is
# missing with the OS package manager (as root, or through sudo) and starts what must run.
# Without root and without sudo it stops at once with one line saying what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    export CIBA_PREPARE_NO_ROOT=1
fi

for part in scripts/prepare.d/*.sh; do
    bash "$part"
done
