#!/usr/bin/env bash
# bench/refsink_ab.sh A_BIN B_BIN — produce (and consume) cost of two brokers against the
# receive-and-persist limit of a core, measured in the same minutes.
#
# What: for ROUNDS rounds (default 3), for each scenario in $SCENARIOS:
#       1. refsink (../shared/bench/refsink, built here with gcc -O2 -msse4.2): `refsink sink` on
#          $BROKER_CPU with O_DIRECT writes (`crc direct`), `refsink source` on $CLIENT_CPU, for
#          $DURATION s — the least work a durable broker does per byte (receive, crc32c, DMA write);
#       2. brokers A and B in turn (the order flips every round), each started on a fresh data dir
#          under $BENCH_DIR (`taskset -c $BROKER_CPU`, shard.cores=$BROKER_CPU), loadgen on
#          $CLIENT_CPU for $DURATION s; broker CPU = utime+stime of the whole process from
#          /proc/PID/stat (io_uring workers are threads of the process, so they are included).
#       Scenarios: pN = produce, 1 KiB records, 256 KiB batches, acks=1, N partitions;
#       tail = produce 1 partition (as p1) with a tailing consumer at once (--mode both): the
#       consume figure is what recent data is served at; catchup = 2 x $DURATION s of produce to 1
#       partition (not measured), then a consumer reads it from the beginning (measured: data
#       no longer in the tail cache; MB/s and CPU s/GB are the consumer's); cached = 200,000
#       records (205 MB, within the 256 MiB tail cache, one active segment) produced to 1
#       partition (not measured), then read by $CACHED_GROUPS consumer groups of one consumer
#       each from the beginning (measured: recent data served from the tail cache, the
#       fan-out of many readers of what was just written).
#       The ceiling of each round: refsink for the produce scenarios; for cached, iperf3 -R
#       (the loopback in the consume direction, sender on $BROKER_CPU) for $DURATION s.
#       One line per run: ROUND VARIANT SCENARIO mb_s=.. cpu_s_per_gb=.. [consume_mb_s=..]; then
#       a summary per scenario and variant: median and range of MB/s, of the ratio to the
#       ceiling run of the same round, and of CPU s/GB.
# Why:  issue 20 — produce figures as ratios to the DMA refsink measured in the same minute, because
#       this machine's page-cache cost swings with its memory state (BENCHMARKS.md).
# How:  bash bench/refsink_ab.sh /path/A/shardlog /path/B/shardlog   (release builds; LOADGEN_BIN
#       defaults to target/release/loadgen). Env: ROUNDS (3), DURATION (10), SCENARIOS
#       ("p1 p16 p256 tail catchup"), PORT (29192), SINK_PORT (29199), BROKER_CPU (1), CLIENT_CPU (0),
#       BENCH_DIR (/tmp), SHARED (../shared/bench next to the repo), CACHED_GROUPS (16).
#       Needs gcc, taskset, python3 and, for `cached`, iperf3 (`apt-get install iperf3`).
# Safety: 127.0.0.1 only; every client run is bounded by `timeout`; data dirs removed after each run.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
A_BIN=${1:?A broker binary}; B_BIN=${2:?B broker binary}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/loadgen}
SHARED=${SHARED:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; SCENARIOS=${SCENARIOS:-"p1 p16 p256 tail catchup cached"}
CACHED_GROUPS=${CACHED_GROUPS:-16}
PORT=${PORT:-29192}; SINK_PORT=${SINK_PORT:-29199}
BROKER_CPU=${BROKER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/refsink-ab.XXXXXX")
trap 'pkill -P $$ 2>/dev/null; rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.txt
gcc -O2 -msse4.2 -o "$WORK/refsink" "$SHARED/refsink/refsink.c" || exit 1

run_iperf_reverse() { # ROUND — the consume-direction ceiling, as variant "ceiling"
  taskset -c "$BROKER_CPU" iperf3 -s -B 127.0.0.1 -p "$SINK_PORT" -1 >/dev/null 2>&1 &
  local pid=$!
  sleep 0.5
  timeout $((DURATION + 20)) taskset -c "$CLIENT_CPU" iperf3 -c 127.0.0.1 -p "$SINK_PORT" -t "$DURATION" -R -J > "$WORK/iperf.json" 2>&1
  wait "$pid" 2>/dev/null
  python3 - "$1" "$WORK/iperf.json" <<'EOF' | tee -a "$RESULTS"
import json, sys
try:
    end = json.load(open(sys.argv[2]))["end"]
except (ValueError, KeyError):
    print(f"{sys.argv[1]} ceiling cached failed"); sys.exit()
b = end["sum_received"]["bytes"]; secs = end["sum_received"]["seconds"]
# -R: the server (on the broker's core) sends; its CPU is the "remote" share.
cpu = end["cpu_utilization_percent"]["remote_total"] / 100 * secs
print(f"{sys.argv[1]} ceiling cached mb_s={b / 1e6 / secs:.1f} cpu_s_per_gb={cpu / (b / 1e9):.3f}")
EOF
}

run_refsink() { # SCENARIO ROUND
  [ "$1" = cached ] && { run_iperf_reverse "$2"; return; }
  rm -f "$WORK/sink.dat"
  taskset -c "$BROKER_CPU" "$WORK/refsink" sink "$SINK_PORT" "$WORK/sink.dat" crc direct > "$WORK/sink.json" &
  local pid=$!
  sleep 0.2
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" "$WORK/refsink" source 127.0.0.1 "$SINK_PORT" "$DURATION"
  wait "$pid"
  rm -f "$WORK/sink.dat"
  python3 - "$2" "$1" "$WORK/sink.json" <<'EOF' | tee -a "$RESULTS"
import json, sys
r = json.load(open(sys.argv[3]))
print(f"{sys.argv[1]} ceiling {sys.argv[2]} mb_s={r['mb_per_sec']:.1f} cpu_s_per_gb={r['cpu_s_per_gb']:.3f}")
EOF
}

run_broker() { # BIN NAME SCENARIO ROUND
  local bin=$1 name=$2 sc=$3 r=$4 dir=$WORK/data-$2
  rm -rf "$dir"
  taskset -c "$BROKER_CPU" "$bin" start --set "listeners=PLAINTEXT://127.0.0.1:$PORT" --set "log.dirs=$dir" \
      --set "shard.cores=$BROKER_CPU" --set "admin.listener=0" > "$WORK/broker-$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "^shardlog listening on" "$WORK/broker-$name.log" && break; sleep 0.1; done
  local args
  # fill LOADGEN_ARGS...: the data a consume scenario reads, produced to 1 partition (not measured).
  fill() { timeout $((2 * DURATION + 60)) taskset -c "$CLIENT_CPU" "$LOADGEN_BIN" --bootstrap-server "127.0.0.1:$PORT" \
             --topic "t-$sc" --record-size 1024 --batch-bytes 262144 --acks 1 --partitions 1 "$@" --quiet >/dev/null 2>&1; }
  case $sc in
    tail)    args="--partitions 1 --mode both" ;;
    catchup) args="--partitions 1 --mode consume --from earliest"
             # The data to catch up on: 2 x DURATION s of produce, far more than the tail cache holds.
             fill --duration $((2 * DURATION)) ;;
    cached)  args="--partitions 1 --mode consume --from earliest --consumer-groups $CACHED_GROUPS --records 200000"
             # Recent data: 205 MB, all of it in the active segment and the tail cache.
             fill --records 200000 ;;
    p*)      args="--partitions ${sc#p}" ;;
  esac
  local t0 t1 json
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  # shellcheck disable=SC2086
  json=$(timeout $((DURATION + 60)) taskset -c "$CLIENT_CPU" "$LOADGEN_BIN" --bootstrap-server "127.0.0.1:$PORT" \
      --topic "t-$sc" --record-size 1024 --batch-bytes 262144 --acks 1 $args --duration "$DURATION" --json --quiet 2>/dev/null | tail -1)
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$dir"
  python3 - "$r" "$name" "$sc" "$t0" "$t1" "$json" <<'EOF' | tee -a "$RESULTS"
import json, sys
r, name, sc, t0, t1, raw = sys.argv[1:]
try:
    j = json.loads(raw)
except ValueError:
    print(f"{r} {name} {sc} failed"); sys.exit()
mb = j["produce"]["mb_per_sec"] or j["consume"]["mb_per_sec"]; cons = j["consume"]["mb_per_sec"]
wire = (j["produce"]["wire_bytes"] + j["consume"]["wire_bytes"]) / 1e9
cpu = (float(t1) - float(t0)) / 100
extra = f" consume_mb_s={cons:.1f}" if sc in ("tail", "catchup", "cached") else ""
print(f"{r} {name} {sc} mb_s={mb:.1f} cpu_s_per_gb={cpu / max(wire, 1e-9):.3f}{extra}")
EOF
}

for r in $(seq 1 "$ROUNDS"); do
  for sc in $SCENARIOS; do
    run_refsink "$sc" "$r"
    if [ $((r % 2)) -eq 1 ]; then run_broker "$A_BIN" A "$sc" "$r"; run_broker "$B_BIN" B "$sc" "$r"
    else run_broker "$B_BIN" B "$sc" "$r"; run_broker "$A_BIN" A "$sc" "$r"; fi
  done
done

echo
echo "| scenario | variant | MB/s median (range) | x ceiling same round: median (range) | CPU s/GB median (range) | consume MB/s median |"
echo "| --- | --- | --- | --- | --- | --- |"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 4 or f[3] == "failed":
        continue
    kv = dict(x.split("=") for x in f[3:])
    rows[(f[0], f[1], f[2])] = {k: float(v) for k, v in kv.items()}
def fmt(xs, d=1):
    return f"{statistics.median(xs):.{d}f} ({min(xs):.{d}f}-{max(xs):.{d}f})" if xs else "-"
for sc in dict.fromkeys(k[2] for k in rows):
    for v in ("ceiling", "A", "B"):
        runs = [(k[0], x) for k, x in rows.items() if k[1] == v and k[2] == sc]
        mb = [x["mb_s"] for _, x in runs]
        ratio = [x["mb_s"] / rows[(rd, "ceiling", sc)]["mb_s"] for rd, x in runs if (rd, "ceiling", sc) in rows]
        cpu = [x["cpu_s_per_gb"] for _, x in runs]
        cons = [x["consume_mb_s"] for _, x in runs if "consume_mb_s" in x]
        print(f"| {sc} | {v} | {fmt(mb)} | {fmt(ratio, 2)} | {fmt(cpu, 2)} | {fmt(cons)} |")
EOF
