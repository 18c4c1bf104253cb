#!/usr/bin/env bash
# bench/metrics_ab.sh A_BIN B_BIN — the cost of a change on the produce path, A/B alternated.
#
# What: for ROUNDS rounds (default 6), two scenarios, each broker in turn (the order flips every
#       round): start it on a fresh data dir (`taskset -c $BROKER_CPU`, shard.cores=$BROKER_CPU),
#       run loadgen (`taskset -c $CLIENT_CPU`, $DURATION s), record loadgen's JSON line and the
#       broker's CPU seconds (utime+stime of /proc/PID/stat, the whole process), stop it, delete
#       the data. Scenarios: `big` = 1 partition, 1 KiB records, 256 KiB batches, acks=1
#       (throughput); `small` = 16 partitions, 100 B records, 1 KiB batches, 5 in flight, acks=1
#       (request-bound: per-request work shows most).
# Why:  this machine's page-cache cost swings with its memory state (see BENCHMARKS.md), so only
#       ratios measured side by side in the same minutes say anything; issue 19 asked for the
#       metrics' cost measured this way.
# How:  bash bench/metrics_ab.sh /path/A/shardlog /path/B/shardlog  (release builds; LOADGEN_BIN
#       defaults to target/release/loadgen). One line per run on stdout:
#       ROUND VARIANT SCENARIO cpu_s=SECONDS {loadgen json}.
set -u
A_BIN=${1:?A broker binary}; B_BIN=${2:?B broker binary}
LOADGEN_BIN=${LOADGEN_BIN:-target/release/loadgen}
ROUNDS=${ROUNDS:-6}; DURATION=${DURATION:-10}; PORT=${PORT:-29192}
BROKER_CPU=${BROKER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
run_one() { # BIN NAME SCENARIO ROUND
  local bin=$1 name=$2 sc=$3 r=$4
  local dir=$WORK/data-$name
  rm -rf "$dir"
  taskset -c "$BROKER_CPU" "$bin" start --set "listeners=PLAINTEXT://127.0.0.1:$PORT" --set "log.dirs=$dir" \
      --set "shard.cores=$BROKER_CPU" > "$WORK/broker-$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "^shardlog listening on" "$WORK/broker-$name.log" && break; sleep 0.1; done
  local t0 t1 args json
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  case $sc in
    big)   args="--record-size 1024 --batch-bytes 262144 --partitions 1 --acks 1" ;;
    small) args="--record-size 100 --batch-bytes 1024 --partitions 16 --acks 1 --inflight 5" ;;
  esac
  # shellcheck disable=SC2086
  json=$(taskset -c "$CLIENT_CPU" "$LOADGEN_BIN" --bootstrap-server "127.0.0.1:$PORT" --topic "t-$sc" $args \
      --duration "$DURATION" --json --quiet 2>/dev/null | tail -1)
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$dir"
  echo "$r $name $sc cpu_s=$(echo "($t1-$t0)/100" | bc -l) $json"
}
for r in $(seq 1 "$ROUNDS"); do
  for sc in big small; do
    if [ $((r % 2)) -eq 1 ]; then run_one "$A_BIN" A "$sc" "$r"; run_one "$B_BIN" B "$sc" "$r"
    else run_one "$B_BIN" B "$sc" "$r"; run_one "$A_BIN" A "$sc" "$r"; fi
  done
done
