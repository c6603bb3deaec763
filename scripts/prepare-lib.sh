# Shared helpers of the scripts/prepare.d parts (sourced, not run).

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install [APT-OPTION...] PACKAGE... : installs Debian packages, refreshing the index
# once if needed. Options (words starting with -) go to apt-get and are left out of messages.
apt_install() {
    local names=()
    for word in "$@"; do [ "${word#-}" = "$word" ] && names+=("$word"); done
    if [ -n "${CIBA_PREPARE_NO_ROOT:-}" ]; then
        echo "prepare: need root or sudo to install: ${names[*]} (install them, then run make test again)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "prepare: no apt-get here; install these packages by hand: ${names[*]}" >&2
        exit 1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { as_root apt-get update -q >/dev/null \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}
