#!/usr/bin/env bash
# bench/latency_ab.sh A_BIN B_BIN RATE — produce-ack latency of two brokers under the same
# open-loop load, A and B alternated.
#
# What: for ROUNDS rounds (default 3), for 1 and 16 partitions, brokers A and B in turn (order
#       flips every round), each on a fresh data dir under $BENCH_DIR (`taskset -c $BROKER_CPU`,
#       shard.cores=$BROKER_CPU); loadgen on $CLIENT_CPU produces 1 KiB records at RATE
#       records/s (open loop: `--rate`), acks=1, for $DURATION s after $WARMUP s of warm-up (the
#       topic's creation and the first requests are not measured). One line per run: ROUND
#       VARIANT pN mb_s=.. p50=.. p99=.. p999=.. (produce-ack latency, ms). With SERIES_DIR set,
#       each run's per-second progress lines (MB/s and p99 of that second) are kept there, so a
#       tail can be told apart as one stall or as many.
# Why:  issue 20 asks for p99 < 1 ms and p99.9 < 5 ms at half of the measured peak.
# How:  bash bench/latency_ab.sh /path/A/shardlog /path/B/shardlog 190000   (release builds)
#       Env: ROUNDS (3), DURATION (10), WARMUP (2), SERIES_DIR (unset), PORT (29192), BROKER_CPU (1), CLIENT_CPU (0), BENCH_DIR (/tmp),
#       A_ARGS / B_ARGS (extra broker arguments per variant, e.g. "--set log.direct.io=false").
# Safety: 127.0.0.1 only; client runs bounded by `timeout`; data dirs removed after each run.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
A_BIN=${1:?A broker binary}; B_BIN=${2:?B broker binary}; RATE=${3:?records per second}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/loadgen}
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; PORT=${PORT:-29192}
BROKER_CPU=${BROKER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/latency-ab.XXXXXX")
trap 'pkill -P $$ 2>/dev/null; rm -rf "$WORK"' EXIT
run() { # BIN NAME PARTS ROUND
  local dir=$WORK/data-$2 extra
  rm -rf "$dir"
  if [ "$2" = A ]; then extra=${A_ARGS:-}; else extra=${B_ARGS:-}; fi
  # shellcheck disable=SC2086
  taskset -c "$BROKER_CPU" "$1" start --set "listeners=PLAINTEXT://127.0.0.1:$PORT" --set "log.dirs=$dir" \
      --set "shard.cores=$BROKER_CPU" --set "admin.listener=0" $extra > "$WORK/broker.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "^shardlog listening on" "$WORK/broker.log" && break; sleep 0.1; done
  local json series=/dev/null
  [ -n "${SERIES_DIR:-}" ] && { mkdir -p "$SERIES_DIR"; series=$SERIES_DIR/r$4-$2-p$3.txt; }
  json=$(timeout $((WARMUP + DURATION + 60)) taskset -c "$CLIENT_CPU" "$LOADGEN_BIN" --bootstrap-server "127.0.0.1:$PORT" \
      --topic "lat-p$3" --partitions "$3" --record-size 1024 --acks 1 --rate "$RATE" --warmup "$WARMUP" \
      --duration "$DURATION" --json 2>"$series" | tail -1)
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$dir"
  python3 - "$4" "$2" "$3" "$json" <<'PY'
import json, sys
r, name, p, raw = sys.argv[1:]
try:
    j = json.loads(raw)
except ValueError:
    print(r, name, "p" + p, "failed"); sys.exit()
l = j["produce_latency_ms"]
mb = j["produce"]["mb_per_sec"]
print(f"{r} {name} p{p} mb_s={mb:.1f} p50={l['p50']:.3f} p99={l['p99']:.3f} p999={l['p999']:.3f}")
PY
}
for r in $(seq 1 "$ROUNDS"); do
  for p in 1 16; do
    if [ $((r % 2)) -eq 1 ]; then run "$A_BIN" A "$p" "$r"; run "$B_BIN" B "$p" "$r"
    else run "$B_BIN" B "$p" "$r"; run "$A_BIN" A "$p" "$r"; fi
  done
done
