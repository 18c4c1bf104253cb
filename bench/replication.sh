#!/usr/bin/env bash
# bench/replication.sh — what replication costs: acks=1 RF=1 vs acks=all RF=3 on one 3-node cluster.
#
# What: starts 3 combined shardlog nodes (release binary, one shard each, all pinned to BROKER_CPU)
#       on 127.0.0.1 and runs loadgen (pinned to CLIENT_CPU) against them, A and B alternated RUNS times:
#         A: topic of 6 partitions, replication factor 1, acks=1
#         B: topic of 6 partitions, replication factor 3, acks=all (min.insync.replicas 1)
#       (1) saturated: as fast as loadgen can (2 connections, 64 KiB batches of 1 KiB records),
#           MB/s, produce-ack p50/p99, and CPU seconds per node (utime+stime from /proc) per GB;
#       (2) fixed rate (RATE records/s): produce-ack p50/p99/p999;
#       (3) one partition, RF 3, acks=all, saturated: CPU per GB of the leader's process and of
#           each follower's.
# Why:  issue 17's closing-note figures (the same run and pinning for A and B).
# How:  bash bench/replication.sh    (needs target/release/{shardlog,loadgen}: cargo build --release
#       --bin shardlog && cargo build --release -p loadgen). Env: RUNS (3), DUR (15 s), RATE (10000),
#       BROKER_CPU (1), CLIENT_CPU (0), KEEP=1 keeps the data directory. Processes are killed and the
#       data removed on exit; retention keeps each partition replica under ~0.7 GB meanwhile.
set -euo pipefail

RUNS=${RUNS:-3}
DUR=${DUR:-15}
RATE=${RATE:-10000}
BROKER_CPU=${BROKER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
KEEP=${KEEP:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SHARDLOG_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/shardlog}
LG=${LOADGEN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/loadgen}
for f in "$BIN" "$LG"; do [[ -x $f ]] || { echo "missing $f (cargo build --release --bin shardlog && cargo build --release -p loadgen)" >&2; exit 1; }; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardlog-replication.XXXXXX")
declare -a PID=()
cleanup() {
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

read -r -a PORTS < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
ID=$("$BIN" storage random-uuid)
VOTERS="1@127.0.0.1:${PORTS[1]},2@127.0.0.1:${PORTS[3]},3@127.0.0.1:${PORTS[5]}"
for n in 1 2 3; do
    P=${PORTS[$((2 * n - 2))]}
    Q=${PORTS[$((2 * n - 1))]}
    ARGS=(--set node.id=$n --set log.dirs=$WORK/n$n --set controller.quorum.voters=$VOTERS
          --set listeners=PLAINTEXT://127.0.0.1:$P,CONTROLLER://127.0.0.1:$Q --set replica.lag.time.max.ms=10000
          # Bounded disk: a saturated run writes GBs per replica.
          --set log.segment.bytes=134217728 --set log.retention.bytes=536870912 --set log.retention.check.interval.ms=1000)
    "$BIN" storage format --cluster-id "$ID" "${ARGS[@]}" > /dev/null
    taskset -c "$BROKER_CPU" "$BIN" start "${ARGS[@]}" --set shard.cores="$BROKER_CPU" > "$WORK/n$n.log" 2>&1 &
    PID+=($!)
done
BOOT=127.0.0.1:${PORTS[0]}
sleep 4

ticks() { local s; read -r -a s < <(cut -d' ' -f14,15 "/proc/$1/stat"); echo $((s[0] + s[1])); }
cpu_all() { for p in "${PID[@]}"; do ticks "$p"; done | tr '\n' ' '; }

# saturated NAME TOPIC PARTITIONS RF ACKS
saturated() {
    local before after out
    before=$(cpu_all)
    out=$(taskset -c "$CLIENT_CPU" "$LG" --bootstrap-server "$BOOT" --topic "$2" --partitions "$3" --replication-factor "$4" \
        --acks "$5" --connections 2 --record-size 1024 --batch-bytes 65536 --duration "$DUR" --warmup 0 --json 2>/dev/null | tail -1)
    after=$(cpu_all)
    [[ $out == *payload_bytes* ]] || { echo "$1: loadgen failed: $out" >&2; tail -5 "$WORK"/n1.log >&2; return 1; }
    python3 - "$1" "$out" "$before" "$after" <<'PY'
import json, sys
name, out, before, after = sys.argv[1:]
j = json.loads(out)
j.update(j.get("produce", {}))
gb = j["payload_bytes"] / 1e9
cpu = [(int(b) - int(a)) / 100 for a, b in zip(before.split(), after.split())]
l = j["produce_latency_ms"]
print(f"{name:18} {j['mb_per_sec']:7.1f} MB/s  ack p50 {l['p50']:7.2f} ms p99 {l['p99']:8.2f} ms  "
      f"CPU s/GB per node {' '.join(f'{c / gb:5.2f}' for c in cpu)}  all nodes {sum(cpu) / gb:5.2f}")
PY
}

# fixed NAME TOPIC RF ACKS
fixed() {
    local out
    out=$(taskset -c "$CLIENT_CPU" "$LG" --bootstrap-server "$BOOT" --topic "$2" --partitions 6 --replication-factor "$3" \
        --acks "$4" --record-size 1024 --rate "$RATE" --duration 10 --warmup 2 --json 2>/dev/null | tail -1)
    python3 - "$1" "$out" <<'PY'
import json, sys
j = json.loads(sys.argv[2])
j.update(j.get("produce", {}))
l = j["produce_latency_ms"]
print(f"{sys.argv[1]:18} {j['mb_per_sec']:7.1f} MB/s  ack p50 {l['p50']:6.2f} ms p99 {l['p99']:6.2f} ms p999 {l['p999']:7.2f} ms")
PY
}

echo "# saturated, 6 partitions, brokers on cpu$BROKER_CPU, loadgen on cpu$CLIENT_CPU, ${DUR}s per run"
for i in $(seq "$RUNS"); do
    saturated "rf1-acks1-$i" rf1 6 1 1
    saturated "rf3-acksall-$i" rf3 6 3 all
done
echo "# fixed rate ($RATE records/s of 1 KiB), 6 partitions"
for i in $(seq "$RUNS"); do
    fixed "rf1-acks1-$i" lat1 1 1
    fixed "rf3-acksall-$i" lat3 3 all
done
echo "# one partition, RF 3, acks=all: the leader's node and the followers'"
saturated "rf3-1partition" one 1 3 all
for n in 1 2 3; do grep -q "leading topic=one " "$WORK/n$n.log" && echo "leader of one-0: node $n (column $n above)" || true; done
