#!/usr/bin/env bash
# Debian's nginx with its JavaScript module, the TLS terminator of the mutual-TLS
# end-to-end test (tests/e2e/test_mtls_nginx.py starts its own nginx; the package's
# service is not needed). njs turns the client certificate into RFC 9440 Client-Cert.
set -euo pipefail
. "$(dirname "$0")/../prepare-lib.sh"
if ! [ -x /usr/sbin/nginx ] || ! [ -e /usr/lib/nginx/modules/ngx_http_js_module.so ]; then
    apt_install nginx libnginx-mod-http-js
fi
