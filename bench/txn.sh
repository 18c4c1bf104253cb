#!/usr/bin/env bash
# bench/txn.sh — idempotence on vs off, and transaction commit latency, on shardlog.
#
# What: starts the release broker pinned to $BROKER_CPU (`--set shard.cores=$BROKER_CPU`), then,
#       with every client pinned to $CLIENT_CPU:
#       1. librdkafka's rdkafka_performance produce, 1 KiB records, acks=all, $MSGS messages to a
#          1-partition topic, enable.idempotence=false and =true alternating, $REPS times each
#          (same broker, same run, so the ratio is what counts);
#       2. bench/txn_commit_latency.py (confluent-kafka): $TXNS transactions of 10 x 1 KiB
#          records, commit_transaction() latency p50/p99/max.
# Why:  issue 7's closing note (throughput with idempotence on vs off; commit latency).
# How:  builds nothing; needs target/release/shardlog, rdkafka_performance from
#       ../shared/bench/peers-setup.sh and a python with confluent-kafka ($PY, default the compat
#       venv that .ci/run creates). Run: bash bench/txn.sh   (about 1-2 min)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARDLOG_BIN="${SHARDLOG_BIN:-$ROOT/target/release/shardlog}"
RDKPERF="${RDKPERF:-$HOME/.cache/shardlog-peers/bin/rdkafka_performance}"
PY="${PY:-/opt/shardlog-compat-venv/bin/python3}"
PORT="${PORT:-19094}"; MSGS="${MSGS:-1000000}"; REPS="${REPS:-2}"; TXNS="${TXNS:-500}"
BROKER_CPU="${BROKER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
for f in "$SHARDLOG_BIN" "$RDKPERF" "$PY"; do [ -e "$f" ] || { echo "txn.sh: missing $f" >&2; exit 2; }; done
DATA="$(mktemp -d /tmp/shardlog-txn-bench.XXXXXX)"; PID=""
cleanup() { [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }; rm -rf "$DATA"; }
trap cleanup EXIT
taskset -c "$BROKER_CPU" "$SHARDLOG_BIN" start --set "listeners=PLAINTEXT://127.0.0.1:$PORT" \
  --set "log.dirs=$DATA" --set "shard.cores=$BROKER_CPU" >"$DATA/broker.log" 2>&1 &
PID=$!
for _ in $(seq 60); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.5; done
BOOT="127.0.0.1:$PORT"
echo "# $(date -u +%FT%TZ) shardlog $(git -C "$ROOT" rev-parse --short HEAD) broker cpu$BROKER_CPU, clients cpu$CLIENT_CPU, $(nproc) cpus"
for r in $(seq "$REPS"); do
  for idem in false true; do
    t="idem-$idem-$r-$$"
    out=$(taskset -c "$CLIENT_CPU" timeout 300 "$RDKPERF" -P -t "$t" -b "$BOOT" -s 1024 -c "$MSGS" -a -1 \
      -X enable.idempotence=$idem -X linger.ms=5 -X batch.size=1048576 -X topic.metadata.refresh.interval.ms=-1 2>&1 | grep -a 'messages produced' | tail -1)
    echo "idempotence=$idem rep=$r: $out"
  done
done
echo "commit latency: $(taskset -c "$CLIENT_CPU" timeout 300 "$PY" "$ROOT/bench/txn_commit_latency.py" "$BOOT" "txn-lat-$$" "$TXNS")"
