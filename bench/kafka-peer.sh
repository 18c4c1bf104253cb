#!/usr/bin/env bash
# bench/kafka-peer.sh — Apache Kafka as the peer broker we measure shardlog against (issue 14).
#
# What: install | start-single DIR PORT | start-cluster DIR BASEPORT | stop [DIR] | check BOOTSTRAP [N] | classpath
#   install        Apache Kafka $KAFKA_VERSION (4.1.1) from Maven Central into $KAFKA_HOME
#                  (~/.cache/shardlog-peers/kafka-4.1.1): a generated pom that depends on
#                  org.apache.kafka:kafka_2.13 (the broker), org.apache.kafka:kafka-tools
#                  (ProducerPerformance / ConsumerPerformance live there in 4.x) and
#                  org.apache.logging.log4j:log4j-slf4j-impl (slf4j 1.7 -> log4j2, the binding Kafka's
#                  own distribution ships), then `mvn dependency:copy-dependencies` into $KAFKA_HOME/libs.
#                  Nothing of Kafka is committed; re-running skips an existing install (FORCE=1 redoes).
#   start-single   one KRaft node with process.roles=broker,controller on 127.0.0.1:PORT (controller
#                  listener on PORT+1), storage formatted with `kafka.tools.StorageTool format
#                  --standalone` (KIP-853 dynamic quorum of one). Data, config, logs and the pid file in
#                  DIR/node-1/. Prints `bootstrap 127.0.0.1:PORT` (also in DIR/bootstrap).
#   start-cluster  three combined KRaft nodes (ids 1-3) on 127.0.0.1:BASEPORT..BASEPORT+2, controller
#                  listeners on BASEPORT+10..+12, a static quorum of 3 (`controller.quorum.voters`), each
#                  formatted with the same cluster id. Prints the bootstrap (all three).
#   stop [DIR]     stops the nodes started in DIR (SIGTERM = controlled shutdown, SIGKILL after 40 s);
#                  without DIR every node this script started that is still listed in $KAFKA_HOME/running.
#   check BOOT [N] kcat -L (waits until N brokers are listed, default 1), then a produce/consume round
#                  trip of 10 records through a fresh 1-partition topic; exits non-zero on a mismatch.
#   classpath      prints the java classpath (for ProducerPerformance etc.: java -cp "$(... classpath)").
# Settings (stated, everything else is Kafka's default):
#   JVM: $KAFKA_HEAP (default -Xms1g -Xmx1g, Kafka's own kafka-server-start.sh default) and Kafka's
#        KAFKA_JVM_PERFORMANCE_OPTS: -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
#        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent; GC log in the node's
#        logs/gc.log as kafka-server-start.sh writes it. G1 is asked for explicitly: on one CPU (taskset)
#        the JVM would otherwise pick the serial collector.
#   Broker: log.flush.interval.messages / log.flush.interval.ms unset (Kafka default Long.MAX_VALUE:
#        no fsync per write; data reaches disk by the OS's writeback, and segments are fsynced when
#        rolled), num.partitions=1, default.replication.factor=1, min.insync.replicas=1,
#        log.segment.bytes=1 GiB, num.network.threads=3, num.io.threads=8, auto.create.topics.enable=true,
#        group.initial.rebalance.delay.ms=3000 (Kafka default; the shipped config/server.properties
#        sets 0 — we do not). Single node only: the internal topics' replication factors
#        (offsets.topic.replication.factor, transaction.state.log.replication.factor,
#        share.coordinator.state.topic.replication.factor) = 1 and their min ISR = 1, as in Kafka's
#        shipped config/server.properties; the cluster keeps the defaults (3 and 2).
#        KAFKA_EXTRA_PROPS (newline- or space-separated k=v) is appended to every node's config.
#   Pinning: with BROKER_CPU set (e.g. 0) every node runs under `taskset -c $BROKER_CPU`.
# Why: issue 14 — every performance claim is shardlog vs Apache Kafka on the same machine, same client,
#   same minutes (bench/compare.sh), and the cluster issues need a real 3-node Kafka to compare with.
# Needs: java 17+, mvn (Maven Central reachable for `install`), kcat (for start's readiness wait and
#   `check`), python3. Talks to 127.0.0.1 only.
set -euo pipefail

PEERS="${PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/shardlog-peers}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"   # the log4j2 that kafka-server 4.1.1 depends on
KAFKA_HOME="${KAFKA_HOME:-$PEERS/kafka-$KAFKA_VERSION}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms1g -Xmx1g}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
KAFKA_EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"
BROKER_CPU="${BROKER_CPU:-}"
START_TIMEOUT="${START_TIMEOUT:-90}"   # seconds until every node must be listed by kcat -L
FORCE="${FORCE:-0}"
JAVA="${JAVA:-java}"

log() { printf '[kafka-peer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

install() {
  if [ "$FORCE" != 1 ] && [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] \
     && [ -f "$KAFKA_HOME/libs/kafka-tools-$KAFKA_VERSION.jar" ]; then
    log "Kafka $KAFKA_VERSION already installed in $KAFKA_HOME"; return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$KAFKA_HOME/config"
  rm -rf "$KAFKA_HOME/libs"
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- generated by shardlog bench/kafka-peer.sh: Apache Kafka $KAFKA_VERSION broker + tools, fetched from Maven Central -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>shardlog.bench</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  log "mvn dependency:copy-dependencies: kafka_2.13 + kafka-tools $KAFKA_VERSION -> $KAFKA_HOME/libs"
  mvn -B -q -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_HOME/libs" >"$KAFKA_HOME/install.log" 2>&1 \
    || { tail -30 "$KAFKA_HOME/install.log" >&2; die "maven failed (log: $KAFKA_HOME/install.log)"; }
  # log4j2: broker logs to DIR/node-N/logs/server.log (INFO, like Kafka's shipped log4j2.yaml);
  # tools (perf clients) log WARN to stderr.
  cat >"$KAFKA_HOME/config/log4j2-server.properties" <<'EOF'
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
  cat >"$KAFKA_HOME/config/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  "$JAVA" -version >"$KAFKA_HOME/java-version.txt" 2>&1
  log "installed: $(ls "$KAFKA_HOME/libs" | wc -l) jars, $(du -sh "$KAFKA_HOME/libs" | cut -f1); $(head -1 "$KAFKA_HOME/java-version.txt")"
}

need_install() { [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || die "Kafka not installed: run $0 install"; }

classpath() { need_install; echo "$KAFKA_HOME/libs/*"; }

# node_config DIR ID PORT CPORT VOTERS(empty = standalone) SINGLE(1|0)
node_config() {
  local d=$1 id=$2 port=$3 cport=$4 voters=$5 single=$6
  mkdir -p "$d/data" "$d/logs"
  {
    echo "# generated by shardlog bench/kafka-peer.sh; Kafka $KAFKA_VERSION KRaft combined node"
    echo "process.roles=broker,controller"
    echo "node.id=$id"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [ -n "$voters" ]; then
      echo "controller.quorum.voters=$voters"
    else
      echo "controller.quorum.bootstrap.servers=127.0.0.1:$cport"
    fi
    echo "log.dirs=$d/data"
    if [ "$single" = 1 ]; then
      echo "offsets.topic.replication.factor=1"
      echo "transaction.state.log.replication.factor=1"
      echo "transaction.state.log.min.isr=1"
      echo "share.coordinator.state.topic.replication.factor=1"
      echo "share.coordinator.state.topic.min.isr=1"
    fi
    [ -z "$KAFKA_EXTRA_PROPS" ] || tr ' ' '\n' <<<"$KAFKA_EXTRA_PROPS" | grep -v '^$'
  } >"$d/server.properties"
}

# launch DIR: starts the node whose config is DIR/server.properties; pid in DIR/pid (the java pid)
launch() {
  local d=$1 pin=()
  [ -z "$BROKER_CPU" ] || pin=(taskset -c "$BROKER_CPU")
  # shellcheck disable=SC2086
  nohup "${pin[@]}" "$JAVA" $KAFKA_HEAP $KAFKA_JVM_PERFORMANCE_OPTS \
    "-Xlog:gc*:file=$d/logs/gc.log:time,tags:filecount=10,filesize=100M" \
    -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2-server.properties" -Dkafka.logs.dir="$d/logs" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$d/server.properties" >"$d/logs/stdout.log" 2>&1 &
  echo $! >"$d/pid"
  mkdir -p "$KAFKA_HOME/running"; echo "$d" >"$(reg "$d")"
}

format() { # DIR CLUSTER_ID [--standalone]
  local d=$1 cid=$2; shift 2
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2-tools.properties" -cp "$KAFKA_HOME/libs/*" \
    kafka.tools.StorageTool format -t "$cid" -c "$d/server.properties" "$@" >"$d/logs/format.log" 2>&1 \
    || { cat "$d/logs/format.log" >&2; die "StorageTool format failed for $d"; }
}

cluster_id() { python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'; }

# wait_ready BOOT N PIDFILES...: until kcat -L lists N brokers, or a node died, or START_TIMEOUT
wait_ready() {
  local boot=$1 n=$2; shift 2
  local t0; t0=$(date +%s)
  while :; do
    local f; for f in "$@"; do kill -0 "$(cat "$f")" 2>/dev/null || { tail -20 "$(dirname "$f")/logs/server.log" >&2 2>/dev/null; tail -5 "$(dirname "$f")/logs/stdout.log" >&2; die "node $(dirname "$f") exited"; }; done
    if timeout 10 kcat -L -b "$boot" -m 5 2>/dev/null | grep -q "^ $n brokers:"; then return 0; fi
    [ $(( $(date +%s) - t0 )) -lt "$START_TIMEOUT" ] || die "not ready in $START_TIMEOUT s ($boot)"
    sleep 1
  done
}

start_single() {
  local dir=${1:?start-single DIR PORT} port=${2:?start-single DIR PORT}
  need_install
  dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
  local d="$dir/node-1"
  [ ! -f "$d/pid" ] || ! kill -0 "$(cat "$d/pid")" 2>/dev/null || die "already running: pid $(cat "$d/pid") in $d"
  rm -rf "$d"; mkdir -p "$d"
  node_config "$d" 1 "$port" $((port + 1)) "" 1
  format "$d" "$(cluster_id)" --standalone
  launch "$d"
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  wait_ready "127.0.0.1:$port" 1 "$d/pid"
  log "Kafka $KAFKA_VERSION single KRaft node up: pid $(cat "$d/pid")${BROKER_CPU:+, cpus $BROKER_CPU}, heap '$KAFKA_HEAP'"
  echo "bootstrap 127.0.0.1:$port"
}

start_cluster() {
  local dir=${1:?start-cluster DIR BASEPORT} base=${2:?start-cluster DIR BASEPORT}
  need_install
  dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
  local i voters="" boot="" cid pids=()
  for i in 1 2 3; do
    local d="$dir/node-$i"
    [ ! -f "$d/pid" ] || ! kill -0 "$(cat "$d/pid")" 2>/dev/null || die "already running: pid $(cat "$d/pid") in $d"
    voters="$voters${voters:+,}$i@127.0.0.1:$((base + 9 + i))"
    boot="$boot${boot:+,}127.0.0.1:$((base + i - 1))"
  done
  cid=$(cluster_id)
  for i in 1 2 3; do
    local d="$dir/node-$i"
    rm -rf "$d"; mkdir -p "$d"
    node_config "$d" "$i" $((base + i - 1)) $((base + 9 + i)) "$voters" 0
    format "$d" "$cid"
  done
  for i in 1 2 3; do launch "$dir/node-$i"; pids+=("$dir/node-$i/pid"); done
  echo "$boot" >"$dir/bootstrap"
  wait_ready "$boot" 3 "${pids[@]}"
  log "Kafka $KAFKA_VERSION 3-node KRaft cluster up (cluster id $cid): pids $(cat "${pids[@]}" | tr '\n' ' ')${BROKER_CPU:+, cpus $BROKER_CPU}"
  echo "bootstrap $boot"
}

reg() { echo "$KAFKA_HOME/running/$(echo "$1" | md5sum | cut -c1-12)"; }

stop_dir() {
  local dir f pid
  dir=$(cd "$1" 2>/dev/null && pwd) || { log "no such dir $1"; return 0; }
  for f in "$dir"/node-*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; log "stopping pid $pid ($(dirname "$f"))"; fi
  done
  for f in "$dir"/node-*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -9 "$pid" 2>/dev/null; then log "pid $pid killed after 40 s"; fi
    rm -f "$f" "$(reg "$(dirname "$f")")"
  done
}

stop() {
  if [ $# -ge 1 ]; then stop_dir "$1"; return; fi
  local k; for k in "$KAFKA_HOME"/running/*; do
    [ -f "$k" ] || continue; stop_dir "$(dirname "$(cat "$k")")"; rm -f "$k"
  done
}

check() {
  local boot=${1:?check BOOTSTRAP [N]} n=${2:-1} t="peer-check-$(date +%s)-$$"
  timeout 20 kcat -L -b "$boot" -m 10 | head -$((n + 2))
  timeout 20 kcat -L -b "$boot" -m 10 | grep -q "^ $n brokers:" || die "kcat -L: expected $n brokers"
  seq 1 10 | sed 's/^/record-/' >"/tmp/$t.in"
  timeout 30 kcat -P -b "$boot" -t "$t" -p 0 -X topic.request.required.acks=-1 -l "/tmp/$t.in" \
    || { rm -f "/tmp/$t.in"; die "kcat produce failed"; }
  timeout 30 kcat -C -b "$boot" -t "$t" -p 0 -o beginning -c 10 -e -q >"/tmp/$t.out" || true
  if cmp -s "/tmp/$t.in" "/tmp/$t.out"; then
    log "round trip ok: 10 records through $t on $boot"; rm -f "/tmp/$t.in" "/tmp/$t.out"
  else
    diff "/tmp/$t.in" "/tmp/$t.out" >&2 || true; rm -f "/tmp/$t.in" "/tmp/$t.out"; die "round trip mismatch"
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  start-single) start_single "$@" ;;
  start-cluster) start_cluster "$@" ;;
  stop) stop "$@" ;;
  check) check "$@" ;;
  classpath) classpath ;;
  *) echo "usage: $0 install | start-single DIR PORT | start-cluster DIR BASEPORT | stop [DIR] | check BOOTSTRAP [N] | classpath" >&2; exit 2 ;;
esac
