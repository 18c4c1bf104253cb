#!/usr/bin/env bash
# loadgen smoke test.
#
# What: starts one shardlog broker (port 0, fresh temp log dir), runs every
# named workload in loadgen/workloads/ scaled down (--scale, --duration 3),
# plus one plain `--mode both --json` run and one run with real consumer
# groups (`--group-mode group`: 2 groups of 2 members on 4 partitions, so
# JoinGroup/SyncGroup with a leader-computed range assignment, heartbeats,
# offset commits and LeaveGroup all happen), each bounded by `timeout`. A run
# passes when loadgen exits 0 and prints one JSON object that parses and has
# records_per_sec > 0 (and, when it consumed, consume.records > 0). Prints
# "PASS name" / "FAIL name: reason" per run and ends with "N passed, M failed";
# exits non-zero if anything failed. The broker gets SIGTERM on exit (trap).
#
# Why: loadgen is how shardlog's throughput targets are measured; this keeps
# every workload runnable end to end against the real broker.
#
# Builds nothing. Inputs (environment):
#   SHARDLOG_BIN   broker binary (default target/release/shardlog, else target/debug/shardlog)
#   LOADGEN_BIN    loadgen binary (default target/release/loadgen, else target/debug/loadgen)
#   SHARDLOG_CORES shard.cores for the broker (default 0)
#   SMOKE_SCALE    --scale for the workloads (default 0.05; many-partitions
#                  uses 0.02 = 200 partitions, bounded for a 2-core machine)
#   SMOKE_DURATION measured seconds per run (default 3)
#   SMOKE_KEEP=1   keep the temp dir (logs, data) even when all runs pass

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

pick() { for b in "$@"; do [ -x "$b" ] && { echo "$b"; return; }; done; echo "$1"; }
BIN=${SHARDLOG_BIN:-$(pick target/release/shardlog target/debug/shardlog)}
LG=${LOADGEN_BIN:-$(pick target/release/loadgen target/debug/loadgen)}
CORES=${SHARDLOG_CORES:-0}
SCALE=${SMOKE_SCALE:-0.05}
DURATION=${SMOKE_DURATION:-3}

for b in "$BIN" "$LG"; do
    if [ ! -x "$b" ]; then
        echo "FAIL setup: $b not found (build with cargo build --release -p shardlog -p loadgen)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

TMP=$(mktemp -d /tmp/loadgen-smoke.XXXXXX)
BROKER_PID=""
cleanup() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ] || [ "${FAILED:-0}" -gt 0 ]; then
        echo "logs kept in $TMP" >&2
        rm -rf "$TMP/data"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The broker preallocates every segment file at log.segment.bytes; with the
# default 1 GiB, 200 partitions would reserve 200 GiB. 8 MiB segments keep
# the many-partitions run within a small disk.
"$BIN" start \
    --set listeners=PLAINTEXT://127.0.0.1:0 \
    --set admin.listener=http://127.0.0.1:0 \
    --set "log.dirs=$TMP/data" \
    --set "shard.cores=$CORES" \
    --set log.segment.bytes=8388608 \
    >"$TMP/broker.out" 2>"$TMP/broker.err" &
BROKER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^shardlog listening on \(.*\)$/\1/p' "$TMP/broker.out" | head -1)
    [ -n "$ADDR" ] && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ADDR" ]; then
    echo "FAIL setup: broker did not report its address"
    sed 's/^/    /' "$TMP/broker.err" | tail -20
    echo "0 passed, 1 failed"
    exit 1
fi

PASSED=0
FAILED=0

# check NAME JSON_FILE: parses, records_per_sec > 0, consumed when it consumes.
check_json() {
    python3 - "$1" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    j = json.load(f)
assert j["records_per_sec"] > 0, "records_per_sec is %r" % j["records_per_sec"]
for k in ("mb_per_sec", "produce_latency_ms", "e2e_latency_ms", "errors"):
    assert k in j, "missing " + k
for k in ("p50", "p99", "p999", "max"):
    assert k in j["produce_latency_ms"] and k in j["e2e_latency_ms"], "missing latency " + k
if j["mode"] in ("consume", "both"):
    assert j["consume"]["records"] > 0, "nothing consumed"
PY
}

# run NAME LIMIT_SECS loadgen-args...
run() {
    local name=$1 limit=$2
    shift 2
    local out="$TMP/$name.json" err="$TMP/$name.err"
    timeout "$limit" "$LG" --bootstrap-server "$ADDR" --json --quiet "$@" >"$out" 2>"$err"
    local rc=$?
    local why=""
    if [ $rc -ne 0 ]; then
        why="exit status $rc"
    elif ! why=$(check_json "$out" 2>&1); then
        why=$(echo "$why" | tail -1)
    else
        why=""
    fi
    if [ -z "$why" ]; then
        PASSED=$((PASSED + 1))
        echo "PASS $name"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $name: $why"
        { tail -5 "$err"; head -c 600 "$out"; } | sed 's/^/    /'
    fi
}

for f in loadgen/workloads/*.toml; do
    name=$(basename "$f" .toml)
    scale=$SCALE
    [ "$name" = many-partitions ] && scale=0.02
    run "workload-$name" 90 --workload "$name" --scale "$scale" --duration "$DURATION" --warmup 1
done
run plain-both-json 60 --mode both --topic smoke-plain --duration "$DURATION"
# Setup waits for the groups to settle (the broker's initial rebalance delay
# is 3 s by default) before the measured seconds start.
run group-mode-both 60 --mode both --topic smoke-groups --consumer-groups 2 --consumers 2 \
    --partitions 4 --group-mode group --duration "$DURATION"

if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    FAILED=$((FAILED + 1))
    echo "FAIL broker-alive: the broker exited during the runs"
    tail -20 "$TMP/broker.err" | sed 's/^/    /'
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
