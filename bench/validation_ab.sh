#!/usr/bin/env bash
# A/B of produce throughput and broker CPU per GB between two shardlog
# binaries, runs alternated A B A B ... in the same minutes (issue 13: the cost
# of record validation). Broker pinned to cpu$BROKER_CPU with one shard, loadgen
# pinned to cpu$CLIENT_CPU; 1 partition, 1 KiB records, acks=1, closed loop.
#
# Usage: bench/validation_ab.sh BIN_A BIN_B [LOADGEN]
#   env: RUNS (3 per side), RECORDS (1000000), CODECS ("none lz4"), BROKER_CPU (0), CLIENT_CPU (1)
# Prints one line per run: side codec MB/s broker-cpu-s-per-GB, then medians.
set -euo pipefail
A=$1; B=$2; LG=${3:-target/release/loadgen}
RUNS=${RUNS:-3}; RECORDS=${RECORDS:-1000000}; CODECS=${CODECS:-none lz4}
BROKER_CPU=${BROKER_CPU:-0}; CLIENT_CPU=${CLIENT_CPU:-1}
TCK=$(getconf CLK_TCK)
OUT=$(mktemp -d /tmp/validation-ab.XXXXXX)
PORT=19650
run_one() { # side bin codec i
  local side=$1 bin=$2 codec=$3 i=$4
  local dir="$OUT/data-$side-$codec-$i"
  mkdir -p "$dir"
  taskset -c "$BROKER_CPU" "$bin" start --set log.dirs="$dir" --set listeners=PLAINTEXT://127.0.0.1:$PORT \
    --set shard.cores="$BROKER_CPU" >"$OUT/broker-$side-$codec-$i.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening" "$OUT/broker-$side-$codec-$i.log" 2>/dev/null && break; sleep 0.1; done
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  taskset -c "$CLIENT_CPU" "$LG" --bootstrap-server 127.0.0.1:$PORT --mode produce --topic ab-$codec-$i \
    --partitions 1 --acks 1 --record-size 1024 --compression "$codec" --records "$RECORDS" --json --quiet \
    >"$OUT/lg-$side-$codec-$i.json"
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  python3 - "$OUT/lg-$side-$codec-$i.json" "$side" "$codec" $(( t1 - t0 )) "$TCK" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); side, codec, ticks, tck = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
mbs = r["mb_per_sec"]; mb = mbs * r["elapsed_s"]
cpu = ticks / tck
print(f"{side} {codec} {mbs:.0f} {cpu/(mb/1e3):.2f}")
PY
}
for codec in $CODECS; do
  for i in $(seq "$RUNS"); do
    run_one A "$A" "$codec" "$i" | tee -a "$OUT/results.txt"
    run_one B "$B" "$codec" "$i" | tee -a "$OUT/results.txt"
  done
done
python3 - "$OUT/results.txt" <<'PY'
import sys, statistics as st, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, codec, mbs, cpu = line.split(); d[(side, codec)].append((float(mbs), float(cpu)))
print("\nside codec  MB/s median [range]   broker CPU s/GB median [range]")
for (side, codec), v in sorted(d.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    m = [x[0] for x in v]; c = [x[1] for x in v]
    print(f"{side} {codec:5} {st.median(m):7.0f} [{min(m):.0f}-{max(m):.0f}]   {st.median(c):.2f} [{min(c):.2f}-{max(c):.2f}]")
PY
echo "raw: $OUT"
