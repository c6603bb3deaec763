#!/usr/bin/env bash
# Debian's prometheus package for promtool: the tests check the shipped alert rules
# (deploy/prometheus/) with `promtool check rules` and `promtool test rules`.
# Only the binary is needed: no recommends (node exporter); this script starts no server.
set -euo pipefail
. "$(dirname "$0")/../prepare-lib.sh"
command -v promtool >/dev/null 2>&1 || apt_install --no-install-recommends prometheus
