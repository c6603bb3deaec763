#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:$CIBA_REDIS_PORT (default 6379) for the Redis
# store tests, which read the same variable. Installs redis-server (apt) when it is
# missing and starts a throwaway, non-persistent instance when none is running.
# Idempotent and quiet. When 6379 is taken by something else: CIBA_REDIS_PORT=N make test.
set -euo pipefail

PORT="${CIBA_REDIS_PORT:-6379}"

answers() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = "PONG" ]
    else
        # No client yet: speak the protocol through bash's /dev/tcp, in a subshell.
        local reply
        reply=$( { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'PING\r\n' >&3 \
            && read -r -t 2 line <&3 && printf '%s' "$line"; } 2>/dev/null ) || return 1
        [ "${reply%$'\r'}" = "+PONG" ]
    fi
}

. "$(dirname "$0")/../prepare-lib.sh"

if answers; then
    exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
fi

# The package may have started its own service on 6379 already.
start() {
    redis-server --daemonize yes --port "$PORT" --save "" --appendonly no --logfile "" \
        --bind "$@" >/dev/null 2>&1
}

taken() {
    ( exec 3<>"/dev/tcp/127.0.0.1/$PORT" ) 2>/dev/null
}

if ! answers && taken; then
    echo "prepare redis: 127.0.0.1:$PORT is in use by something that is not Redis;" \
        "pick a free port: CIBA_REDIS_PORT=N make test" >&2
    exit 1
fi

if ! answers; then
    # "-::1": IPv6 loopback if the host has it (Redis 7); Redis 6 refuses the syntax.
    start 127.0.0.1 -::1 || start 127.0.0.1
fi

for _ in $(seq 50); do
    if answers; then
        exit 0
    fi
    sleep 0.1
done
echo "prepare redis: no Redis answers on 127.0.0.1:$PORT" >&2
exit 1
