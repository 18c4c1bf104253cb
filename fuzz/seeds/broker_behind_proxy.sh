#!/usr/bin/env bash
# Stands in for the broker binary (SHARDLOG_BIN) so that a client suite such
# as tests/compat/run.sh runs unchanged while capture_proxy.py records every
# request frame: `start` runs the real broker on a free port, advertising the
# proxy's port, and prints the proxy's address as the broker's
# "shardlog listening on" line. SIGTERM stops the broker (a clean stop) and
# then the proxy. Other subcommands go straight to the real binary.
#
# Environment: SHARDLOG_REAL_BIN (the broker), CAPTURE_DIR (where frames go).
set -uo pipefail
REAL=${SHARDLOG_REAL_BIN:?set SHARDLOG_REAL_BIN to the broker binary}
OUT=${CAPTURE_DIR:?set CAPTURE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${1:-}" != start ]; then exec "$REAL" "$@"; fi
shift
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BROKER_PORT=$(free_port)
PROXY_PORT=$(free_port)
args=()
for a in "$@"; do
    case "$a" in
        listeners=*) args+=("listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT") ;;
        *) args+=("$a") ;;
    esac
done
mkdir -p "$OUT"
python3 "$HERE/capture_proxy.py" --listen "$PROXY_PORT" --upstream "127.0.0.1:$BROKER_PORT" --out "$OUT" &
PROXY=$!
BROKER_OUT=$(mktemp)
"$REAL" start "${args[@]}" --set "advertised.listeners=PLAINTEXT://127.0.0.1:$PROXY_PORT" >"$BROKER_OUT" &
BROKER=$!
stop() { kill -TERM "$BROKER" 2>/dev/null; wait "$BROKER"; rc=$?; kill "$PROXY" 2>/dev/null; wait "$PROXY" 2>/dev/null || true; rm -f "$BROKER_OUT"; exit "$rc"; }
trap stop TERM INT
for _ in $(seq 300); do
    grep -q '^shardlog listening on ' "$BROKER_OUT" && break
    sleep 0.1
done
echo "shardlog listening on 127.0.0.1:$PROXY_PORT"
wait "$BROKER" && rc=0 || rc=$?
kill "$PROXY" 2>/dev/null
rm -f "$BROKER_OUT"
exit "$rc"
