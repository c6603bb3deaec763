#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium).
set -euo pipefail
. "$(dirname "$0")/../prepare-lib.sh"
[ -x /usr/bin/chromium ] || apt_install chromium
