# Shared helpers of the scripts/prepare.d parts (sourced, not run).

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE... : installs Debian packages, refreshing the index once if needed.
apt_install() {
    if [ -n "${CIBA_PREPARE_NO_ROOT:-}" ]; then
        echo "prepare: need root or sudo to install: $* (install them, then run make test again)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "prepare: no apt-get here; install these packages by hand: $*" >&2
        exit 1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { as_root apt-get update -q >/dev/null \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}
