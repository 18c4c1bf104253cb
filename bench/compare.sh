#!/usr/bin/env bash
# bench/compare.sh — shardlog vs Apache Kafka vs the peer broker tansu (memory engine) vs this
# machine's limits, in one run, with the same clients, broker and client pinned to different cores.
#
# What: 1. iperf3 loopback ceiling, server on $BROKER_CPU / client on $CLIENT_CPU, both directions
#          (client->server = the produce direction, -R = the consume direction);
#       2. a short fio sequential write (1 MiB blocks, $FIO_SIZE, fsync at end) under $BENCH_DIR;
#          then refsink (../shared/bench/refsink, gcc -O2 -msse4.2): receive + crc32c + write with
#          O_DIRECT and through the page cache, sink on $BROKER_CPU, source on $CLIENT_CPU, the
#          produce limit every produce figure is divided by (ratios in the last table);
#       3. for each broker in $BROKERS (shardlog: `taskset -c $BROKER_CPU shardlog start --set
#          shard.cores=$BROKER_CPU`; kafka: Apache Kafka 4.1.1, one KRaft broker+controller node
#          via `BROKER_CPU=$BROKER_CPU bench/kafka-peer.sh start-single` (taskset inside; heap
#          $KAFKA_HEAP, G1; Kafka's defaults otherwise, see kafka-peer.sh); tansu: `taskset -c
#          $BROKER_CPU tansu-run.sh start memory`), with every client under `taskset -c $CLIENT_CPU`:
#          - a warm-up, same for every broker, not in the tables: loadgen produce to a 1-partition
#            topic ($WARMUP s or 3 x $RECORDS records, whichever first) and consume it back as a
#            consumer group. Why: a JVM broker compiles its hot paths first (Kafka on one core,
#            8 s loadgen runs back to back: 73, 169, 346, 377 MB/s at 13.9, 5.9, 2.7, 2.6 broker
#            CPU s/GB), and Kafka creates its __consumer_offsets before the measured runs;
#          - loadgen produce, 1 KiB records, acks=1 and acks=all, 1 and $NPARTS partitions
#            ($DURATION s, at most $RECORDS records per run);
#          - loadgen consume of the 1- and N-partition acks=1 topics from the beginning (fetch
#            max wait 500 ms = loadgen default, and 0 ms on the 1-partition topic);
#          - loadgen open loop (--rate) at half of the broker's own 1-partition peak (the better
#            of the closed-loop 1-partition acks=1 and acks=all runs),
#            acks=1 and acks=all, produce only (produce-ack latency) and producer + tailing
#            consumer (--mode both: produce-ack and end-to-end), plus --mode both at a quarter of
#            the peak: p50/p99/p99.9 ($LAT_DURATION s each);
#          - librdkafka's rdkafka_performance produce ($RDK_MSGS msgs, linger.ms=5,
#            batch.size=1 MiB) and consume (fetch.wait.max.ms=0) on 1 partition, to compare
#            client CPU per GB with loadgen's on the same broker;
#          - Apache Kafka's own perf clients (JPERF=1, the default when java is there), the classes
#            behind kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh:
#            org.apache.kafka.tools.ProducerPerformance ($JPERF_MSGS records of 1 KiB, --throughput
#            -1, acks=1 and acks=all on 1 partition, acks=1 on $NPARTS; linger.ms=5,
#            batch.size=1 MiB; the Java producer's defaults otherwise, so acks=all is idempotent)
#            and ConsumerPerformance (a consumer group subscribing to the 1- and N-partition acks=1
#            topics, reading all $JPERF_MSGS; figure = fetch.MB.sec, i.e. without the group join);
#            JVM $JPERF_HEAP + G1, as kafka-run-class.sh runs them;
#          - topics are deleted (DeleteTopics) once read back, so each broker keeps a few GB at most;
#          - per client run: client CPU (user+sys from /usr/bin/time), broker CPU seconds
#            (utime+stime deltas of /proc/PID/stat; for Kafka the java process, all its threads),
#            broker RSS and peak RSS (VmRSS / VmHWM).
#       4. optionally (PROFILE=1, needs linux-perf): a system-wide `perf record -a -e cpu-clock`
#          wrapped around three extra shardlog runs (produce 1 and N partitions, consume 1
#          partition; not in the table): top symbols by command/dso/symbol and the CPU split by
#          command in $OUT/shardlog.perf-*.txt.
# Why:  BENCHMARKS.md — the figures and ratios (shardlog / loopback ceiling, shardlog / Kafka,
#       shardlog / tansu); the per-broker summary table is the one issue 14 asks for.
# How:  builds nothing. Needs release binaries (`cargo build --release --workspace`; set
#       CARGO_TARGET_DIR or SHARDLOG_BIN / LOADGEN_BIN) and the peers from
#       ../shared/bench/peers-setup.sh (tansu, rdkafka_performance, a python venv with
#       confluent-kafka for topic creation), plus iperf3, fio, taskset, /usr/bin/time, kcat; for
#       kafka and the Java clients java 17+ and `bench/kafka-peer.sh install` (run here if missing:
#       Maven Central).
#       Run from anywhere:  bash bench/compare.sh   (about 6-8 min with the defaults)
#       Prints a markdown table to stdout; raw outputs (loadgen JSON, rdkafka_performance logs,
#       /usr/bin/time, broker /proc samples, iperf3/fio JSON) go to $OUT.
# Env (defaults): DURATION (10) s per throughput run, RECORDS (1000000) cap per produce run
#       (also bounds tansu's in-memory data), NPARTS (4), LAT_DURATION (5), RDK_MSGS (1000000),
#       SHARDLOG_PORT (19092), TANSU_PORT (19093), KAFKA_PORT (19094; controller on +1),
#       IPERF_PORT (15201), REFSINK_PORT (15202), IPERF_SECS (5; also refsink), FIO_SIZE (1G), BROKERS ("shardlog kafka tansu"),
#       KAFKA_HEAP ("-Xms1g -Xmx1g"), JPERF (1 if java), JPERF_MSGS ($RDK_MSGS), JPERF_HEAP
#       ("-Xmx512M", as kafka-producer-perf-test.sh), BROKER_CPU (0), CLIENT_CPU (1),
#       BENCH_DIR (/tmp: broker data + fio scratch, removed at exit), OUT
#       (bench/results-<UTC date>), PEERS (~/.cache/shardlog-peers), SHARED (../shared/bench
#       next to the repo), PROFILE (1 when perf exists, else 0), LG_ARGS (extra loadgen args),
#       WARMUP (30 s; 0 = none).
# Safety: only 127.0.0.1; every client run is bounded by `timeout`; brokers, iperf3 and perf
#       are stopped and the data directory removed on exit (trap), also on Ctrl-C.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared/bench}"
PEERS="${PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/shardlog-peers}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SHARDLOG_BIN="${SHARDLOG_BIN:-$TARGET/release/shardlog}"
LOADGEN_BIN="${LOADGEN_BIN:-$TARGET/release/loadgen}"
RDKPERF="${RDKPERF:-$PEERS/bin/rdkafka_performance}"
PY="${PY:-$PEERS/venv/bin/python}"
DURATION="${DURATION:-10}"
RECORDS="${RECORDS:-1000000}"
NPARTS="${NPARTS:-4}"
LAT_DURATION="${LAT_DURATION:-5}"
RDK_MSGS="${RDK_MSGS:-1000000}"
SHARDLOG_PORT="${SHARDLOG_PORT:-19092}"
TANSU_PORT="${TANSU_PORT:-19093}"
KAFKA_PORT="${KAFKA_PORT:-19094}"
IPERF_PORT="${IPERF_PORT:-15201}"
REFSINK_PORT="${REFSINK_PORT:-15202}"
IPERF_SECS="${IPERF_SECS:-5}"
FIO_SIZE="${FIO_SIZE:-1G}"
BROKERS="${BROKERS:-shardlog kafka tansu}"
export KAFKA_HEAP="${KAFKA_HEAP:--Xms1g -Xmx1g}"
JPERF_MSGS="${JPERF_MSGS:-$RDK_MSGS}"
JPERF_HEAP="${JPERF_HEAP:--Xmx512M}"
# the JVM options kafka-run-class.sh gives every Kafka tool (KAFKA_JVM_PERFORMANCE_OPTS)
JPERF_JVM="${JPERF_JVM:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
KPEER="$ROOT/bench/kafka-peer.sh"
if command -v java >/dev/null; then JPERF="${JPERF:-1}"; else JPERF="${JPERF:-0}"; fi
BROKER_CPU="${BROKER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
BENCH_DIR="${BENCH_DIR:-/tmp}"
OUT="${OUT:-$ROOT/bench/results-$(date -u +%F)}"
LG_ARGS="${LG_ARGS:-}"
WARMUP="${WARMUP:-30}"
if command -v perf >/dev/null; then PROFILE="${PROFILE:-1}"; else PROFILE=0; fi
TCK=$(getconf CLK_TCK)
BOUND=$((DURATION + LAT_DURATION + 60))   # hard wall-clock bound of any one client run

NEED=("$SHARDLOG_BIN" "$LOADGEN_BIN" "$RDKPERF" "$PY" "$SHARED/kadmin.py")
[[ " $BROKERS " != *" tansu "* ]] || NEED+=("$PEERS/bin/tansu" "$SHARED/tansu-run.sh")
for f in "${NEED[@]}"; do
  [ -e "$f" ] || { echo "compare.sh: missing $f (release build / ../shared/bench/peers-setup.sh)" >&2; exit 2; }
done
for c in iperf3 fio taskset /usr/bin/time python3; do
  command -v "$c" >/dev/null || { echo "compare.sh: missing $c" >&2; exit 2; }
done
if [ "$JPERF" = 1 ] || [[ " $BROKERS " == *" kafka "* ]]; then
  for c in java kcat; do command -v "$c" >/dev/null || { echo "compare.sh: missing $c (for kafka / JPERF)" >&2; exit 2; }; done
  bash "$KPEER" install || { echo "compare.sh: bench/kafka-peer.sh install failed" >&2; exit 2; }
  KCP="$(bash "$KPEER" classpath)"; KLOG4J="$(dirname "$(dirname "$KCP")")/config/log4j2-tools.properties"
fi

mkdir -p "$OUT"
DATA="$(mktemp -d "$BENCH_DIR/shardlog-compare.XXXXXX")"
SHARDLOG_PID=""; TANSU_UP=""; KAFKA_UP=""; BG_PIDS=()
cleanup() {
  for p in "${BG_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  if [ -n "$SHARDLOG_PID" ]; then
    kill "$SHARDLOG_PID" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$SHARDLOG_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$SHARDLOG_PID" 2>/dev/null
    SHARDLOG_PID=""
  fi
  if [ -n "$TANSU_UP" ]; then bash "$SHARED/tansu-run.sh" stop memory "$TANSU_PORT" >/dev/null 2>&1; TANSU_UP=""; fi
  if [ -n "$KAFKA_UP" ]; then bash "$KPEER" stop "$DATA/kafka" >/dev/null 2>&1; KAFKA_UP=""; fi
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
wait_port() { for _ in $(seq 60); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.5; done; return 1; }
INDEX="$OUT/index.tsv"
{
  echo "# compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm); cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); mem: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "# BENCH_DIR=$BENCH_DIR on $(df -PT "$BENCH_DIR" | awk 'NR==2{print $1" ("$2")"}')"
  echo "# DURATION=$DURATION RECORDS=$RECORDS NPARTS=$NPARTS LAT_DURATION=$LAT_DURATION RDK_MSGS=$RDK_MSGS WARMUP=$WARMUP JPERF=$JPERF JPERF_MSGS=$JPERF_MSGS BROKER_CPU=$BROKER_CPU CLIENT_CPU=$CLIENT_CPU LG_ARGS='$LG_ARGS' PROFILE=$PROFILE BROKERS='$BROKERS'"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# shardlog: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $("$SHARDLOG_BIN" --version 2>/dev/null | head -1); loadgen: $("$LOADGEN_BIN" --version 2>/dev/null); rdkafka_performance: $("$RDKPERF" -h 2>&1 | grep -m1 -o 'librdkafka version [^ ]*'); tansu: $("$PEERS/bin/tansu" --version 2>/dev/null | head -1)"
  if [ -n "${KCP:-}" ]; then
    echo "# kafka: $(ls $KCP | grep -o 'kafka_2.13-[0-9.]*[0-9]' | head -1) ($(java -version 2>&1 | head -1)); broker heap '$KAFKA_HEAP', G1; perf clients heap '$JPERF_HEAP', G1"
  fi
} >"$OUT/meta.txt"
: >"$INDEX"

# ------------------------------------------------------------------ 1. loopback ceiling
log "iperf3 loopback, server cpu$BROKER_CPU, client cpu$CLIENT_CPU, ${IPERF_SECS}s each direction"
for dir in fwd rev; do
  taskset -c "$BROKER_CPU" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" -1 >/dev/null 2>&1 &
  BG_PIDS+=("$!"); sleep 0.5
  r=(); [ "$dir" = rev ] && r=(-R)
  timeout $((IPERF_SECS + 20)) taskset -c "$CLIENT_CPU" iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECS" "${r[@]}" -J >"$OUT/iperf3-$dir.json" 2>&1
  wait "${BG_PIDS[-1]}" 2>/dev/null
done

# ------------------------------------------------------------------ 2. disk
log "fio sequential write, 1 MiB blocks, $FIO_SIZE, fsync at end, in $BENCH_DIR"
timeout 120 fio --name=seqwrite --filename="$DATA/fio.dat" --rw=write --bs=1M --size="$FIO_SIZE" \
  --ioengine=psync --end_fsync=1 --fallocate=none --output-format=json >"$OUT/fio-seqwrite.json" 2>&1
rm -f "$DATA/fio.dat"

# ------------------------------------------------------------------ 2b. receive-and-persist limit
# refsink (../shared/bench/refsink): receive + crc32c + write, sink on the broker's core, source
# on the client's; with O_DIRECT (`direct`, what shardlog's segment writes do) and through the
# page cache. Produce figures are read as ratios to the DMA one (issue 20).
if gcc -O2 -msse4.2 -o "$DATA/refsink" "$SHARED/refsink/refsink.c" 2>/dev/null; then
  for mode in direct buffered; do
    log "refsink $mode, sink cpu$BROKER_CPU, source cpu$CLIENT_CPU, ${IPERF_SECS}s"
    m=(crc direct); [ "$mode" = buffered ] && m=(crc)
    taskset -c "$BROKER_CPU" "$DATA/refsink" sink "$REFSINK_PORT" "$DATA/refsink.dat" "${m[@]}" >"$OUT/refsink-$mode.json" 2>&1 &
    BG_PIDS+=("$!"); sleep 0.3
    timeout $((IPERF_SECS + 20)) taskset -c "$CLIENT_CPU" "$DATA/refsink" source 127.0.0.1 "$REFSINK_PORT" "$IPERF_SECS"
    wait "${BG_PIDS[-1]}" 2>/dev/null
    rm -f "$DATA/refsink.dat"
  done
fi

# ------------------------------------------------------------------ 3. brokers
BROKER_PID=""
broker_mark() { # -> "ticks wall_ns"
  echo "$(awk '{print $14+$15}' "/proc/$BROKER_PID/stat" 2>/dev/null || echo 0) $(date +%s%N)"
}
# client BROKER SCENARIO KIND CMD... : runs CMD pinned on CLIENT_CPU under /usr/bin/time, bounded;
# stdout -> $OUT/BROKER.SCENARIO.out, and one index line
client() {
  local b=$1 sc=$2 kind=$3; shift 3
  local base="$OUT/$b.$sc" m0 t0 w0 t1 w1
  m0=$(broker_mark)
  /usr/bin/time -o "$base.time" -f '%e %U %S %M' \
    timeout -s INT -k 10 "$BOUND" taskset -c "$CLIENT_CPU" "$@" >"$base.out" 2>"$base.err"
  local rc=$?
  read -r t0 w0 <<<"$m0"; read -r t1 w1 <<<"$(broker_mark)"
  echo "$(( t1 - t0 )) $TCK $(( (w1 - w0) / 1000000 )) $(awk '/VmRSS/{print $2}' "/proc/$BROKER_PID/status" 2>/dev/null) $(awk '/VmHWM/{print $2}' "/proc/$BROKER_PID/status" 2>/dev/null)" >"$base.broker"
  printf '%s\t%s\t%s\t%s\t%s\n' "$b" "$sc" "$kind" "$rc" "$*" >>"$INDEX"
  [ -s "$base.err" ] || rm -f "$base.err"
  return $rc
}
jget() { python3 -c 'import json,sys
try:
  j=json.load(open(sys.argv[1])); v=j
  for k in sys.argv[2].split("."): v=v[k]
  print(v)
except Exception: print(0)' "$1" "$2"; }

# drop_topics TOPIC...: DeleteTopics between client runs, so a broker's data stays at a few GB
# (every broker gets the same; Kafka removes the files file.delete.delay.ms = 60 s later)
drop_topics() {
  timeout 90 "$PY" - "$BOOT" "$@" >>"$OUT/$b.admin.txt" 2>&1 <<'PYEOF'
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 10000})
for t, f in a.delete_topics(sys.argv[2:], operation_timeout=30, request_timeout=40).items():
    try:
        f.result(timeout=45)
        print(f"deleted {t}")
    except Exception as e:  # noqa: BLE001
        print(f"delete {t} failed: {e}")
PYEOF
}

start_broker() {
  case $1 in
    shardlog)
      mkdir -p "$DATA/shardlog"
      taskset -c "$BROKER_CPU" "$SHARDLOG_BIN" start --set "listeners=PLAINTEXT://127.0.0.1:$SHARDLOG_PORT" \
        --set "log.dirs=$DATA/shardlog" --set "shard.cores=$BROKER_CPU" >"$OUT/shardlog.broker-log.txt" 2>&1 &
      SHARDLOG_PID=$!; BROKER_PID=$SHARDLOG_PID; BOOT="127.0.0.1:$SHARDLOG_PORT"
      wait_port "$SHARDLOG_PORT" || { log "shardlog did not listen"; tail -5 "$OUT/shardlog.broker-log.txt" >&2; return 1; }
      ;;
    tansu)
      taskset -c "$BROKER_CPU" bash "$SHARED/tansu-run.sh" start memory "$TANSU_PORT" >&2 || return 1
      TANSU_UP=1; BROKER_PID=$(cat "$PEERS/tansu-$TANSU_PORT.pid"); BOOT="127.0.0.1:$TANSU_PORT"
      ;;
    kafka)
      KAFKA_UP=1
      BROKER_CPU="$BROKER_CPU" bash "$KPEER" start-single "$DATA/kafka" "$KAFKA_PORT" >&2 || return 1
      BROKER_PID=$(cat "$DATA/kafka/node-1/pid"); BOOT="127.0.0.1:$KAFKA_PORT"
      cp "$DATA/kafka/node-1/server.properties" "$OUT/kafka.server.properties"
      ;;
  esac
  echo "$1 pid $BROKER_PID affinity: $(taskset -cp "$BROKER_PID" 2>&1 | sed 's/.*: //')" >>"$OUT/meta.txt"
}
stop_broker() {
  case $1 in
    shardlog) kill "$SHARDLOG_PID" 2>/dev/null
              for _ in $(seq 20); do kill -0 "$SHARDLOG_PID" 2>/dev/null || break; sleep 0.5; done
              kill -9 "$SHARDLOG_PID" 2>/dev/null; SHARDLOG_PID=""; rm -rf "$DATA/shardlog" ;;
    tansu)    bash "$SHARED/tansu-run.sh" stop memory "$TANSU_PORT" >&2; TANSU_UP="" ;;
    kafka)    bash "$KPEER" stop "$DATA/kafka" >&2; KAFKA_UP=""
              # keep the broker's WARN/ERROR lines and a GC summary with the results; drop the data
              { echo "# Kafka server.log: $(wc -l <"$DATA/kafka/node-1/logs/server.log") lines; WARN/ERROR/FATAL lines follow"
                grep -E '\] (WARN|ERROR|FATAL) ' "$DATA/kafka/node-1/logs/server.log"; } >"$OUT/kafka.broker-log.txt" 2>/dev/null
              cat "$DATA"/kafka/node-1/logs/gc.log* 2>/dev/null | awk '
                /Using G1|Heap Min Capacity|Heap Initial Capacity|Heap Max Capacity|CPUs:/ { print }
                / Pause / && / [0-9.]+ms$/ { k = $0; sub(/.*\] GC\([0-9]+\) /, "", k); sub(/ [0-9]+[MKG]->.*/, "", k)
                  ms = $NF; sub(/ms/, "", ms); n[k]++; t[k] += ms; if (ms > mx[k]) mx[k] = ms }
                END { for (k in n) printf "GC %s: %d pauses, %.1f ms total, max %.1f ms\n", k, n[k], t[k], mx[k] }' \
                >"$OUT/kafka.gc-summary.txt"
              rm -rf "$DATA/kafka" ;;
  esac
}

STAMP=$(date +%s)
for b in $BROKERS; do
  log "== $b on cpu$BROKER_CPU, clients on cpu$CLIENT_CPU"
  echo "$b start $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
  start_broker "$b" || { echo "$b: FAILED to start" >>"$OUT/meta.txt"; continue; }
  sleep 1
  # shellcheck disable=SC2206
  LG=("$LOADGEN_BIN" --bootstrap-server "$BOOT" --record-size 1024 --json --quiet $LG_ARGS)
  if [ "$WARMUP" -gt 0 ]; then
    # same for every broker, not in the tables: lets a JVM broker compile its hot paths, and the
    # group consume makes Kafka create its 50-partition __consumer_offsets before the measured runs
    log "$b warm-up: loadgen produce ${WARMUP}s + consume (not in the tables)"
    client "$b" warmup-produce loadgen "${LG[@]}" --mode produce --topic "warm-$STAMP" --partitions 1 --acks 1 \
      --duration "$WARMUP" --records $((3 * RECORDS))
    client "$b" warmup-consume loadgen "${LG[@]}" --mode consume --group-mode group --topic "warm-$STAMP" --from earliest \
      --records "$(jget "$OUT/$b.warmup-produce.out" produce.records)" --duration "$WARMUP"
    drop_topics "warm-$STAMP"
  fi
  for p in 1 "$NPARTS"; do
    for a in 1 all; do
      log "$b produce p=$p acks=$a"
      client "$b" "produce-p$p-a$a" loadgen "${LG[@]}" --mode produce --topic "lg-$STAMP-p$p-a$a" --partitions "$p" \
        --acks "$a" --duration "$DURATION" --records "$RECORDS"
      [ "$a" = 1 ] || drop_topics "lg-$STAMP-p$p-a$a"   # only the acks=1 topics are read back
    done
  done
  for p in 1 "$NPARTS"; do
    n=$(jget "$OUT/$b.produce-p$p-a1.out" produce.records)
    [ "${n:-0}" -gt 0 ] || continue
    log "$b consume p=$p ($n records)"
    client "$b" "consume-p$p" loadgen "${LG[@]}" --mode consume --topic "lg-$STAMP-p$p-a1" --from earliest \
      --records "$n" --duration "$DURATION"
    if [ "$p" = 1 ]; then
      client "$b" "consume-p$p-wait0" loadgen "${LG[@]}" --mode consume --topic "lg-$STAMP-p$p-a1" --from earliest \
        --records "$n" --duration "$DURATION" --fetch-max-wait-ms 0
    fi
    drop_topics "lg-$STAMP-p$p-a1"
  done
  # own peak = the better of the two closed-loop 1-partition runs (acks=1, acks=all): one slow
  # first run (a JIT still compiling, a neighbour's burst) must not halve the latency runs' rate
  peak=$(python3 -c "print(max(float('$(jget "$OUT/$b.produce-p1-a1.out" records_per_sec)'), float('$(jget "$OUT/$b.produce-p1-aall.out" records_per_sec)')))")
  half=$(python3 -c "print(int(float('${peak:-0}')/2))")
  if [ "$half" -gt 0 ]; then
    for a in 1 all; do
      log "$b latency at half of peak, produce only: $half records/s acks=$a"
      client "$b" "latency-half-produce-a$a" loadgen "${LG[@]}" --mode produce --topic "latp-$STAMP-a$a" --partitions 1 \
        --acks "$a" --rate "$half" --duration "$LAT_DURATION"
      log "$b latency at half of peak, producer + tailing consumer: $half records/s acks=$a"
      client "$b" "latency-half-both-a$a" loadgen "${LG[@]}" --mode both --topic "lat-$STAMP-a$a" --partitions 1 \
        --acks "$a" --rate "$half" --duration "$LAT_DURATION"
      drop_topics "latp-$STAMP-a$a" "lat-$STAMP-a$a"
    done
    quarter=$((half / 2))
    log "$b latency at a quarter of peak, producer + tailing consumer: $quarter records/s acks=1"
    client "$b" "latency-quarter-both-a1" loadgen "${LG[@]}" --mode both --topic "latq-$STAMP-a1" --partitions 1 \
      --acks 1 --rate "$quarter" --duration "$LAT_DURATION"
    drop_topics "latq-$STAMP-a1"
  fi
  t="rdk-$STAMP-p1"
  if timeout 60 "$PY" "$SHARED/kadmin.py" "$BOOT" create "$t" 1 >>"$OUT/$b.admin.txt" 2>&1; then
    log "$b rdkafka_performance produce/consume $RDK_MSGS"
    client "$b" rdk-produce-p1-a1 rdkafka "$RDKPERF" -P -t "$t" -b "$BOOT" -s 1024 -c "$RDK_MSGS" -a 1 \
      -X linger.ms=5 -X batch.size=1048576 -i 1000
    d=$(grep -a 'messages produced' "$OUT/$b.rdk-produce-p1-a1.out" | tail -1 | sed -E 's/.*, ([0-9]+) delivered.*/\1/')
    if [ -n "$d" ] && [ "$d" -gt 0 ]; then
      client "$b" rdk-consume-p1 rdkafka "$RDKPERF" -C -t "$t" -b "$BOOT" -p 0 -o beginning -c "$d" -e \
        -X fetch.wait.max.ms=0 -i 1000
    fi
    drop_topics "$t"
  fi
  if [ "$JPERF" = 1 ]; then
    # Apache Kafka's own perf clients (the Java client), same record size, counts and pinning
    # shellcheck disable=SC2206
    JV=(java $JPERF_HEAP $JPERF_JVM -Dlog4j2.configurationFile="$KLOG4J" -cp "$KCP")
    PP=(linger.ms=5 batch.size=1048576)
    for spec in "1 1" "1 all" "$NPARTS 1"; do
      read -r p a <<<"$spec"
      t="kp-$STAMP-p$p-a$a"
      timeout 60 "$PY" "$SHARED/kadmin.py" "$BOOT" create "$t" "$p" >>"$OUT/$b.admin.txt" 2>&1 || continue
      log "$b Kafka ProducerPerformance p=$p acks=$a $JPERF_MSGS"
      client "$b" "kperf-produce-p$p-a$a" kperf "${JV[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$t" \
        --num-records "$JPERF_MSGS" --record-size 1024 --throughput -1 \
        --producer-props "bootstrap.servers=$BOOT" "acks=$a" "${PP[@]}"
      [ "$a" = 1 ] || drop_topics "$t"
    done
    for p in 1 "$NPARTS"; do
      d=$(grep -a ' records sent, ' "$OUT/$b.kperf-produce-p$p-a1.out" 2>/dev/null | tail -1 | cut -d' ' -f1)
      [ -n "$d" ] && [ "$d" -gt 0 ] || continue
      log "$b Kafka ConsumerPerformance p=$p ($d records)"
      client "$b" "kperf-consume-p$p" kperf "${JV[@]}" org.apache.kafka.tools.ConsumerPerformance \
        --bootstrap-server "$BOOT" --topic "kp-$STAMP-p$p-a1" --group "kp-$STAMP-p$p" --messages "$d" --timeout 20000
    done
    drop_topics "kp-$STAMP-p1-a1" "kp-$STAMP-p$NPARTS-a1"
  fi
  if [ "$b" = shardlog ] && [ "$PROFILE" = 1 ]; then
    # perf wraps the client run and samples both cpus (-a) while it lasts; extra runs, not in the table
    for what in produce-p1 produce-p$NPARTS consume-p1; do
      log "shardlog perf profile during $what (extra run, not in the table)"
      PERF=(perf record -a -e cpu-clock -F 999 -o "$DATA/perf.data" --)
      case $what in
        produce-*) p=${what#produce-p}
                   client "$b" "perf-$what" loadgen "${PERF[@]}" "${LG[@]}" --mode produce --topic "perf-$STAMP-p$p" \
                     --partitions "$p" --acks 1 --duration "$DURATION" --records "$RECORDS" ;;
        consume-*) client "$b" "perf-$what" loadgen "${PERF[@]}" "${LG[@]}" --mode consume --topic "perf-$STAMP-p1" \
                     --from earliest --records "$(jget "$OUT/$b.perf-produce-p1.out" produce.records)" --duration "$DURATION" ;;
      esac
      rm -f "$OUT/$b.perf-$what.err"
      perf report -i "$DATA/perf.data" --stdio --no-children --sort comm,dso,symbol --percent-limit 0.7 2>/dev/null \
        | grep -v '^$' | grep -v '^# *\.\.\.' | sed -E 's/ +$//; s/   +/  /g' | head -60 >"$OUT/shardlog.perf-$what.txt"
      perf report -i "$DATA/perf.data" --stdio --no-children --sort comm --percent-limit 0.5 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | sed -E 's/ +$//' >"$OUT/shardlog.perf-$what-by-comm.txt"
      rm -f "$DATA/perf.data"
    done
    drop_topics "perf-$STAMP-p1" "perf-$STAMP-p$NPARTS"
  fi
  echo "$b final: $(grep -E 'VmRSS|VmHWM' "/proc/$BROKER_PID/status" | tr -s ' \t' ' ' | tr '\n' ' ')" >>"$OUT/meta.txt"
  stop_broker "$b"
done

# ------------------------------------------------------------------ 4. table
echo "# end $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
python3 - "$OUT" "$NPARTS" <<'EOF' | tee "$OUT/summary.md"
import json, os, re, sys
out, nparts = sys.argv[1], sys.argv[2]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
def bps(p):
    j = load(p)
    try: return j["end"]["sum_received"]["bits_per_second"]
    except Exception: return None
rows, figs = [], {}
idx = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "index.tsv")) if l.strip()]
for b, sc, kind, rc, cmd in idx:
    if sc.startswith("perf-") or sc.startswith("warmup-"):
        continue
    base = os.path.join(out, f"{b}.{sc}")
    bt = open(base + ".broker").read().split()
    ticks, tck, wall_ms = int(bt[0]), int(bt[1]), int(bt[2])
    rss = int(bt[3]) if len(bt) > 3 else 0
    hwm = int(bt[4]) if len(bt) > 4 else 0
    bcpu = ticks / tck
    tm = open(base + ".time").read().split()
    try: ccpu = float(tm[-3]) + float(tm[-2])
    except Exception: ccpu = float("nan")
    r = dict(b=b, sc=sc, rc=rc, bcpu=bcpu, bpct=100 * bcpu / max(wall_ms / 1000, 1e-9), ccpu=ccpu,
             rss=rss / 1024, hwm=hwm / 1024, mbs=None, rps=None, gb=None, pl=None, e2e=None, err="")
    if kind == "loadgen":
        j = load(base + ".out")
        if j:
            role = j["produce"] if j["mode"] in ("produce", "both") else j["consume"]
            r["mbs"], r["rps"] = role["mb_per_sec"], role["records_per_sec"]
            r["gb"] = role["payload_bytes"] / 1e9
            if j["mode"] == "both":
                r["rate_c"] = j["consume"]["mb_per_sec"]
            pl, e2e = j.get("produce_latency_ms") or {}, j.get("e2e_latency_ms") or {}
            if pl.get("count"): r["pl"] = pl
            if e2e.get("count"): r["e2e"] = e2e
            r["err"] = ", ".join(f"{k}={v}" for k, v in (j.get("errors") or {}).items())
    elif kind == "rdkafka":
        t = open(base + ".out", errors="replace").read()
        m = re.findall(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered .* in (\d+)ms: (\d+) msgs/s and ([0-9.]+) MB/s", t)
        if m:
            sent, byt, dl, ms, mps, mb = m[-1]
            r["mbs"], r["rps"], r["gb"] = float(mb), float(mps), int(dl) * 1024 / 1e9
        m = [x for x in re.findall(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs/s \(([0-9.]+) MB/s\)", t)]
        if m:
            n, byt, ms, mps, mb = m[-1]
            r["mbs"], r["rps"], r["gb"] = float(mb), float(mps), int(byt) / 1e9
    elif kind == "kperf":
        t = open(base + ".out", errors="replace").read()
        m = re.findall(r"(\d+) records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\), ([0-9.]+) ms avg latency, "
                       r"([0-9.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", t)
        if m:  # ProducerPerformance's total line; its MB is 2^20 bytes, ours 10^6
            n, rps = int(m[-1][0]), float(m[-1][1])
            r["mbs"], r["rps"], r["gb"] = rps * 1024 / 1e6, rps, n * 1024 / 1e9
            r["pl"] = dict(p50=float(m[-1][5]), p99=float(m[-1][7]), p999=float(m[-1][8]))
        m = re.findall(r"^[0-9: -]+, [0-9: -]+, ([0-9.]+), ([0-9.]+), (\d+), ([0-9.]+), (\d+), (\d+), ([0-9.]+), ([0-9.]+)$", t, re.M)
        if m:  # ConsumerPerformance: MB (2^20), MB.sec, nMsg, nMsg.sec, rebalance ms, fetch ms, fetch MB.sec, fetch nMsg.sec
            mib, _, n, _, join_ms, fetch_ms, fmbs, fmps = m[-1]
            r["mbs"], r["rps"], r["gb"] = float(fmbs) * 1.048576, float(fmps), float(mib) * 1048576 / 1e9
            r["err"] = f"group join {join_ms} ms (not in MB/s)"
        if "WARNING: Exiting before consuming" in t:
            r["err"] = (r["err"] + ", " if r["err"] else "") + "consumer timed out before reading all"
        if not m and r["rc"] != "0":
            e = open(base + ".err", errors="replace").read() if os.path.exists(base + ".err") else ""
            e = [l for l in e.splitlines() if "Exception" in l or "ERROR" in l]
            r["err"] = (e[0][:120] if e else "no summary line").replace("|", "/")
    rows.append(r)
    figs[(b, sc)] = r

def client_name(sc):
    return "rdkafka_performance" if sc.startswith("rdk") else "Kafka perf (Java)" if sc.startswith("kperf") else "loadgen"
def f(x, d=1):
    return "–" if x is None else f"{x:,.{d}f}"
def pct(p):
    return "–" if not p else f"{p['p50']:.3f} / {p['p99']:.3f} / {p['p999']:.3f}"
fwd, rev = bps(os.path.join(out, "iperf3-fwd.json")), bps(os.path.join(out, "iperf3-rev.json"))
fio = load(os.path.join(out, "fio-seqwrite.json"))
fio_mb = fio["jobs"][0]["write"]["bw_bytes"] / 1e6 if fio else None
brokers = list(dict.fromkeys(r["b"] for r in rows))
def cell(b, *scs, key="mbs", d=1):
    return " / ".join(f((figs.get((b, sc)) or {}).get(key), d) for sc in scs)
def cpu_gb(b, sc):
    r = figs.get((b, sc))
    return f(r["bcpu"] / r["gb"], 2) if r and r["gb"] else "–"
def p99(b, sc):
    r = figs.get((b, sc))
    return "–" if not r or not r["pl"] else f"{r['pl']['p99']:.2f} ({r['mbs']:.0f})"
half = {}
for b in brokers:
    # the rate the latency runs asked for (records/s in their command line)
    m = [re.search(r"--rate (\d+)", cmd) for b2, sc, _, _, cmd in idx if b2 == b and sc == "latency-half-produce-a1"]
    half[b] = int(m[0].group(1)) * 1024 / 1e6 if m and m[0] else None
print(f"## Per broker (loadgen; 1 KiB records; MB = 10^6 payload bytes; {nparts} = N partitions)\n")
print(f"| broker | produce MB/s, 1 partition, acks=1 / all | produce MB/s, {nparts} partitions, acks=1 / all | consume MB/s, 1 / {nparts} partitions | "
      "half of own peak (MB/s asked) | produce-ack p99 ms at half of own peak, acks=1 / all (MB/s achieved) | "
      "broker CPU s per GB, produce 1 partition acks=1 / consume 1 partition | broker RSS at end / peak MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for b in brokers:
    rs = [r for r in rows if r["b"] == b]
    print(f"| {b} | {cell(b, 'produce-p1-a1', 'produce-p1-aall')} | {cell(b, f'produce-p{nparts}-a1', f'produce-p{nparts}-aall')} | "
          f"{cell(b, 'consume-p1', f'consume-p{nparts}')} | {f(half[b], 0)} | "
          f"{p99(b, 'latency-half-produce-a1')} / {p99(b, 'latency-half-produce-aall')} | "
          f"{cpu_gb(b, 'produce-p1-a1')} / {cpu_gb(b, 'consume-p1')} | {rs[-1]['rss']:.0f} / {max(r['hwm'] for r in rs):.0f} |")
print()
print(f"## Per broker and client (MB/s; broker CPU s per GB in brackets)\n")
print(f"| broker | client | produce 1 partition acks=1 | produce 1 partition acks=all | produce {nparts} partitions acks=1 | consume 1 partition | consume {nparts} partitions |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for b in brokers:
    for pre in ["", "rdk-", "kperf-"]:
        scs = [f"{pre}produce-p1-a1", f"{pre}produce-p1-aall", f"{pre}produce-p{nparts}-a1", f"{pre}consume-p1", f"{pre}consume-p{nparts}"]
        if not any((b, sc) in figs for sc in scs):
            continue
        print(f"| {b} | {client_name(pre)} | " + " | ".join(
            "–" if (b, sc) not in figs else f"{f(figs[(b, sc)]['mbs'])} [{cpu_gb(b, sc)}]" for sc in scs) + " |")
print()
print("## Machine limits (same run)\n")
print("| figure | value |\n| --- | --- |")
print(f"| TCP loopback iperf3, 1 stream, client cpu1 -> server cpu0 (produce direction) | {f(fwd and fwd/1e9, 2)} Gbit/s = {f(fwd and fwd/8e6, 0)} MB/s |")
print(f"| TCP loopback iperf3 -R, server cpu0 -> client cpu1 (consume direction) | {f(rev and rev/1e9, 2)} Gbit/s = {f(rev and rev/8e6, 0)} MB/s |")
print(f"| fio sequential write 1 MiB blocks, fsync at end | {f(fio_mb, 0)} MB/s |")
refsink = {m: load(os.path.join(out, f"refsink-{m}.json")) for m in ("direct", "buffered")}
for m, r in refsink.items():
    print(f"| refsink receive + crc32c + {'O_DIRECT' if m == 'direct' else 'page-cache'} write, sink on the broker's core | "
          f"{f(r and r['mb_per_sec'], 0)} MB/s at {f(r and r['cpu_s_per_gb'], 2)} CPU s/GB |")
print()
print("## Runs (broker pinned to cpu0, client pinned to cpu1; MB = 10^6 payload bytes)\n")
print("| broker | scenario | client | MB/s | records/s | produce-ack ms p50 / p99 / p99.9 | e2e ms p50 / p99 / p99.9 | broker CPU s (% of a core) | broker CPU s / GB | client CPU s / GB | broker RSS / peak MiB | rc, errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    kind = client_name(r["sc"])
    gb = r["gb"] or 0
    print(f"| {r['b']} | {r['sc']} | {kind} | {f(r['mbs'])} | {f(r['rps'], 0)} | {pct(r['pl'])} | {pct(r['e2e'])} | "
          f"{r['bcpu']:.2f} ({r['bpct']:.0f}%) | {f(r['bcpu']/gb if gb else None, 2)} | {f(r['ccpu']/gb if gb else None, 2)} | "
          f"{r['rss']:.0f} / {r['hwm']:.0f} | {r['rc']}{', ' + r['err'] if r['err'] else ''} |")
print()
print("## Ratios\n")
def g(b, sc):
    r = figs.get((b, sc)); return r and r["mbs"]
def ratio(a, c):
    return "–" if not a or not c else f"{a / c:.2f}"
print("| ratio | value |\n| --- | --- |")
ref_mb = refsink["direct"] and refsink["direct"]["mb_per_sec"]
for sc in ["produce-p1-a1", "produce-p1-aall", f"produce-p{nparts}-a1", f"produce-p{nparts}-aall"]:
    print(f"| shardlog {sc} / loopback ceiling (fwd) | {ratio(g('shardlog', sc), fwd and fwd/8e6)} |")
    print(f"| shardlog {sc} / refsink O_DIRECT | {ratio(g('shardlog', sc), ref_mb)} |")
for sc in ["consume-p1", "consume-p1-wait0", f"consume-p{nparts}"]:
    print(f"| shardlog {sc} / loopback ceiling (rev) | {ratio(g('shardlog', sc), rev and rev/8e6)} |")
for peer in [b for b in brokers if b != "shardlog"]:
    for sc in ["produce-p1-a1", "produce-p1-aall", f"produce-p{nparts}-a1", f"produce-p{nparts}-aall", "consume-p1",
               "consume-p1-wait0", f"consume-p{nparts}", "rdk-produce-p1-a1", "rdk-consume-p1", "kperf-produce-p1-a1",
               "kperf-produce-p1-aall", f"kperf-produce-p{nparts}-a1", "kperf-consume-p1", f"kperf-consume-p{nparts}"]:
        print(f"| shardlog / {peer}, {sc} | {ratio(g('shardlog', sc), g(peer, sc))} |")
EOF
log "raw outputs in $OUT"
