#!/usr/bin/env bash
# shardlog client-compatibility suite.
#
# What: starts one broker (port 0, fresh temp log dir), then drives it with
# real Kafka clients -- kafka-python, confluent-kafka (librdkafka) and kcat --
# producing and consuming across clients, codecs and size limits. Prints one
# line per test, "PASS name" or "FAIL name: reason" (a failing test's log
# tail follows, indented), and ends with "N passed, M failed"; exits non-zero
# if anything failed. The broker is stopped with SIGTERM on exit.
#
# Why: the broker must be a drop-in for Apache Kafka for the clients people
# already use; unit tests cannot show that, only real clients can.
#
# Builds no broker. The Java client checks (tests/compat/java, a Maven project)
# are compiled here with `mvn package` (seconds once ~/.m2 holds the jars);
# without mvn or java they are skipped with one "SKIP java: ..." line.
# Inputs (environment):
#   SHARDLOG_BIN   broker binary (default target/debug/shardlog, from repo root)
#   COMPAT_VENV    venv with kafka-python + confluent-kafka (default
#                  /opt/shardlog-compat-venv; .ci/run creates it)
#   SHARDLOG_CORES shard.cores for the broker (default 0,1)
#   COMPAT_TIMEOUT seconds allowed for each client command (default 120)
#   COMPAT_KEEP=1  keep the temp dir (logs, data) even when all tests pass
#   COMPAT_ONLY    bash regex matched (=~) against each test's name: only the
#                  tests that match run; the others are neither run nor counted
#                  (e.g. COMPAT_ONLY='^connect-'). Unset: every test runs.
# Kafka Connect (tests/compat/connect pins connect-runtime; connect_check.py)
# runs standalone, distributed and distributed exactly-once workers (see the
# "Kafka Connect" section); skipped with one SKIP line without mvn or java.
# Most tests assign partitions by hand; kafka_python_groups.py covers consumer groups;
# kafka_python_idempotent.py and txn_confluent.py cover idempotent and
# transactional producers (issue 7); consumer_protocol.py covers the KIP-848
# consumer group protocol; tests/compat/java/ covers the Java client
# (kafka-clients 4.x and 3.x: producer codecs, groups, static membership, Admin,
# transactions); tests/compat/streams/ runs Kafka Streams with exactly_once_v2
# (a KStream-KTable join and a windowed count) across SIGKILLs of the application
# and restarts of the broker (see "Kafka Streams" below)

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

BIN=${SHARDLOG_BIN:-target/debug/shardlog}
VENV=${COMPAT_VENV:-/opt/shardlog-compat-venv}
PY="$VENV/bin/python3"
CORES=${SHARDLOG_CORES:-0,1}
CLIENT_TIMEOUT=${COMPAT_TIMEOUT:-120}
HERE=tests/compat
RUN=$$                                   # makes topic names unique per run
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardlog-compat.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/io"
BROKER_PID=""
BOOTSTRAP=""
NOT_RUNNABLE=""      # set when no test can run (no broker, missing client)
PASSED=0
FAILED=0
CREATED_TOPICS=()    # "topic=partitions" of topics made by passing tests

# ---------------------------------------------------------------- broker ----

start_broker() {
    if [ ! -x "$BIN" ]; then
        NOT_RUNNABLE="broker binary $BIN not found or not executable (run cargo build)"
        return 1
    fi
    "$BIN" start \
        --set listeners=PLAINTEXT://127.0.0.1:0 \
        --set admin.listener=http://127.0.0.1:0 \
        --set "log.dirs=$WORK/data" \
        --set "shard.cores=$CORES" \
        >"$WORK/broker.out" 2>"$WORK/broker.err" </dev/null &
    BROKER_PID=$!
    # The broker prints "shardlog listening on HOST:PORT" once it accepts
    # connections; port 0 means it chose the port, so read it from there.
    local addr="" i
    for ((i = 0; i < 300; i++)); do        # up to 30 s
        addr=$(sed -n 's/^shardlog listening on \([^ ]*:[0-9][0-9]*\)[[:space:]]*$/\1/p' \
                   "$WORK/broker.out" | head -n 1)
        [ -n "$addr" ] && break
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            wait "$BROKER_PID"
            NOT_RUNNABLE="broker exited with status $? before listening"
            BROKER_PID=""
            return 1
        fi
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        NOT_RUNNABLE="broker printed no 'shardlog listening on HOST:PORT' line within 30 s"
        return 1
    fi
    BOOTSTRAP=$addr
}

# SIGTERM, wait up to $1 seconds, then SIGKILL. Sets STOP_STATUS.
stop_broker() {
    local grace=$1 i
    STOP_STATUS=""
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
        STOP_STATUS="still running ${grace}s after SIGTERM (killed)"
    else
        wait "$BROKER_PID" 2>/dev/null
        STOP_STATUS=$?
    fi
    BROKER_PID=""
}

on_exit() {  # silent: the summary line must stay the last line printed
    connect_stop_all 5
    stop_broker 10
    if [ "$FAILED" -eq 0 ] && [ "${COMPAT_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- helpers ----

# Every client call goes through this: bounded in time, and a timeout is
# reported as such (exit 124) rather than as a silent hang.
bounded() {
    timeout -k 5 "$CLIENT_TIMEOUT" "$@"
    local rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "FAIL: timed out after ${CLIENT_TIMEOUT}s: ${*:1:3} ..." >&2
    fi
    return $rc
}

py() { bounded "$PY" "$@"; }

# N "key:value" lines, all distinct, tagged so cross-client mixups show.
make_lines() {
    awk -v n="$1" -v tag="$2" \
        'BEGIN { for (i = 1; i <= n; i++) printf "key-%s-%04d:value-%s-%04d payload %d\n", tag, i, tag, i, i * i }'
}

# compare EXPECTED ACTUAL: identical files, or a diff excerpt and a reason.
# The topics are 1-partition (auto-created, num.partitions=1), so order counts.
compare() {
    cmp -s "$1" "$2" && return 0
    if cmp -s <(sort "$1") <(sort "$2"); then
        echo "FAIL: same records but in a different order; a 1-partition topic" \
             "(auto-created with num.partitions=1) must keep produce order" >&2
        return 1
    fi
    diff "$1" "$2" | head -n 10 >&2
    echo "FAIL: consumed data differs from produced: $(wc -l <"$2") lines back," \
         "$(wc -l <"$1") sent (diff above)" >&2
    return 1
}

kcat_produce() {  # TOPIC < lines
    bounded kcat -P -b "$BOOTSTRAP" -t "$1" -K: -X message.timeout.ms=30000 \
        || { echo "FAIL: kcat -P to $1 exited with status $?" >&2; return 1; }
}

kcat_consume() {  # TOPIC > lines
    bounded kcat -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q -f '%k:%s\n' \
        || { echo "FAIL: kcat -C from $1 exited with status $?" >&2; return 1; }
}

run_test() {  # NAME FUNCTION [ARGS...]
    local name=$1; shift
    local log="$WORK/logs/$name.log" rc reason
    if [ -n "${COMPAT_ONLY:-}" ] && ! [[ $name =~ $COMPAT_ONLY ]]; then
        return
    fi
    if [ -n "$NOT_RUNNABLE" ]; then
        echo "FAIL $name: not run: $NOT_RUNNABLE"
        FAILED=$((FAILED + 1))
        return
    fi
    "$@" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "FAIL: broker process died during the test" >>"$log"
        rc=1
    fi
    if [ $rc -eq 0 ]; then
        echo "PASS $name"
        PASSED=$((PASSED + 1))
    else
        reason=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
        reason=${reason#FAIL: }
        echo "FAIL $name: ${reason:-exit status $rc}"
        tail -n 25 "$log" | sed 's/^/    | /'
        FAILED=$((FAILED + 1))
    fi
    if [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID"
        NOT_RUNNABLE="broker died (exit status $?) during test $name"
        BROKER_PID=""
    fi
}

# ----------------------------------------------------------------- tests ----

# kafka-python alone: CreateTopics (3 partitions), 1000 keyed records with
# headers at acks=all, read back by assign + seek_to_beginning.
test_kafka_python_roundtrip() {
    local t="kp-roundtrip-$RUN"
    py "$HERE/kafka_python_roundtrip.py" --bootstrap "$BOOTSTRAP" --topic "$t" || return 1
    CREATED_TOPICS+=("$t=3")
}

# kcat alone, 1-partition auto-created topic, so order must be exact.
test_kcat_roundtrip() {
    local t="kcat-roundtrip-$RUN"
    make_lines 500 kcat >"$WORK/io/$t.in"
    kcat_produce "$t" <"$WORK/io/$t.in" || return 1
    kcat_consume "$t" >"$WORK/io/$t.out" || return 1
    compare "$WORK/io/$t.in" "$WORK/io/$t.out" || return 1
    CREATED_TOPICS+=("$t=1")
}

test_kcat_to_kafka_python() {
    local t="kcat-to-kp-$RUN"
    make_lines 300 kcat2kp >"$WORK/io/$t.in"
    kcat_produce "$t" <"$WORK/io/$t.in" || return 1
    py "$HERE/kafka_python_tool.py" consume --bootstrap "$BOOTSTRAP" --topic "$t" \
        --expect 300 >"$WORK/io/$t.out" || return 1
    compare "$WORK/io/$t.in" "$WORK/io/$t.out"
}

test_kafka_python_to_kcat() {
    local t="kp-to-kcat-$RUN"
    make_lines 300 kp2kcat >"$WORK/io/$t.in"
    py "$HERE/kafka_python_tool.py" produce --bootstrap "$BOOTSTRAP" --topic "$t" \
        <"$WORK/io/$t.in" || return 1
    kcat_consume "$t" >"$WORK/io/$t.out" || return 1
    compare "$WORK/io/$t.in" "$WORK/io/$t.out"
}

# confluent-kafka produces with CODEC; kafka-python and confluent-kafka consume.
test_compression() {
    py "$HERE/compression.py" --bootstrap "$BOOTSTRAP" --topic "compressed-$1-$RUN" --codec "$1"
}

# kcat -L -J must list a CreateTopics topic, an auto-created one, and the
# topics earlier passing tests created, with their partition counts.
test_kcat_metadata() {
    local t1="meta-created-$RUN" t2="meta-auto-$RUN" json="$WORK/io/metadata.json"
    py "$HERE/kafka_python_tool.py" create --bootstrap "$BOOTSTRAP" --topic "$t1" \
        --partitions 4 || return 1
    echo "k:v" | kcat_produce "$t2" || return 1
    bounded kcat -L -b "$BOOTSTRAP" -J >"$json" \
        || { echo "FAIL: kcat -L exited with status $?" >&2; return 1; }
    local expect=(--expect "$t1=4" --expect "$t2=1") spec
    for spec in ${CREATED_TOPICS[@]+"${CREATED_TOPICS[@]}"}; do
        expect+=(--expect "$spec")
    done
    py "$HERE/kcat_metadata_check.py" "$json" --broker "$BOOTSTRAP" "${expect[@]}"
}

test_large_message() {
    py "$HERE/large_message.py" --bootstrap "$BOOTSTRAP" --topic "large-$1-$RUN" --mode "$1"
}

# Consumer groups: two kafka-python members with the range or the roundrobin
# assignor, or one kafka-python + one confluent-kafka member on "range"
# (mixed); disjoint and complete assignments, every record consumed once,
# and a new member resumes from the committed offsets.
# Topic/log admin (configs, incremental alter, partitions, delete-records,
# cluster, log dirs, delete) through kafka-python's and confluent-kafka's
# admin clients. The topic is deleted at the end.
test_admin() {
    py "$HERE/admin_clients.py" --bootstrap "$BOOTSTRAP" --topic "admin-$1-$RUN" --client "$1"
}

test_kafka_python_groups() {
    py "$HERE/kafka_python_groups.py" --bootstrap "$BOOTSTRAP" \
        --topic "kp-groups-$1-$RUN" --scenario "$1"
}

# Idempotent producer: kafka-python enable_idempotence=True, acks=all; 2000
# records on 3 partitions read back once each, in order, at the offsets they
# were acknowledged at (read_uncommitted and read_committed).
test_kafka_python_idempotent() {
    py "$HERE/kafka_python_idempotent.py" --bootstrap "$BOOTSTRAP" --topic "kp-idempotent-$RUN"
}

# Transactions: a confluent-kafka transactional producer commits one
# transaction, aborts one, and runs a consume-transform-produce step with
# send_offsets_to_transaction; read_committed sees only the committed
# records, read_uncommitted all of them; the group offsets are committed.
test_txn_confluent() {
    py "$HERE/txn_confluent.py" --bootstrap "$BOOTSTRAP" --topic "txn-confluent-$RUN"
}

# The consumer group protocol (KIP-848, group.protocol=consumer) with
# confluent-kafka: server-side assignment, incremental hand-over between three
# members, commits resumed from, the group described by AdminClient.
test_consumer_protocol() {
    py "$HERE/consumer_protocol.py" --bootstrap "$BOOTSTRAP" --topic "cgp-confluent-$RUN"
}

# ---- Go clients (issue 14) ----
# Sarama (tests/compat/go/sarama, its own go.mod/go.sum, pinned): ClusterAdmin
# creates/describes a 4-partition topic, a 2-member consumer group joins, an
# idempotent sync producer (acks=all, zstd) writes 2000 keyed records with
# headers; each record is read exactly once, committed offsets equal the log
# end offsets; the static members (KIP-345) are removed by the admin; a
# transactional producer commits/aborts (read_committed skips the aborted
# records); then the group and topics are deleted. Needs go >= 1.26
# (GO=/path/to/go, else PATH; .ci/run provides it) and the Go module proxy
# or a filled module cache.
GO_BIN=${GO:-$(command -v go || true)}
test_sarama_roundtrip() {
    (cd "$HERE/go/sarama" && bounded "$GO_BIN" build -o "$WORK/sarama-roundtrip" .) \
        || { echo "FAIL: go build of $HERE/go/sarama failed" >&2; return 1; }
    bounded "$WORK/sarama-roundtrip" -bootstrap "$BOOTSTRAP" -topic "sarama-$RUN" \
        -timeout "$((CLIENT_TIMEOUT - 10))s"
}
# franz-go's own kgo integration tests (tests/compat/go/franz-go-suite.sh,
# pinned franz-go, fetched by the module proxy), 100k records per ETL test,
# go test -timeout 300 s; ~60 s (+~40 s first compile) with a debug broker
# on 2 cores.
test_franz_go_suite() {
    GO=$GO_BIN KGO_TEST_RECORDS=100000 SUITE_TIMEOUT=300 \
        timeout -k 5 900 bash "$HERE/go/franz-go-suite.sh" "$BOOTSTRAP" "$WORK/franz-go"
}
run_go_tests() {
    if [ -z "$GO_BIN" ] || ! "$GO_BIN" version >/dev/null 2>&1; then
        echo "SKIP sarama-roundtrip, franz-go-kgo-suite: no go toolchain" \
             "(set GO=/path/to/go or run .ci/run)"
        return
    fi
    run_test sarama-roundtrip test_sarama_roundtrip
    if ! command -v jq >/dev/null; then
        echo "SKIP franz-go-kgo-suite: jq is not installed (apt-get install jq)"
        return
    fi
    run_test franz-go-kgo-suite test_franz_go_suite
}
# ---- end Go clients ----
# Java client (kafka-clients, tests/compat/java): each release in
# JAVA_CLIENTS -- the newest 4.x, and the last 3.x, which most deployed
# applications still use -- is compiled once into its own directory; each check
# below is one JVM run of shardlog.compat.JavaCompat, which prints a PASS/FAIL
# line per assertion (see its classes' doc comments for what).
JAVA_DIR=$HERE/java
JAVA_CLIENTS=(4.1.1 3.9.1)
declare -A JAVA_CP=()
test_java_build() {  # VERSION
    local out="$PWD/$JAVA_DIR/target/kafka-clients-$1"
    local CLIENT_TIMEOUT=$((CLIENT_TIMEOUT * 5))   # a first run downloads the jars
    bounded mvn -q -B -f "$JAVA_DIR/pom.xml" package -Dkafka.version="$1" \
        -Dcompat.build.dir="$out" \
        || { echo "FAIL: mvn package (kafka-clients $1) exited with status $?" >&2; return 1; }
    JAVA_CP[$1]="$out/classes:$(cat "$out/classpath.txt")" || return 1
}

test_java() {  # VERSION CHECK
    bounded java -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "${JAVA_CP[$1]}" shardlog.compat.JavaCompat "$2" \
        --bootstrap "$BOOTSTRAP" --topic "java${1//./}-$2-$RUN"
}

# ---- Kafka Connect (issue 14) ----
# Real Connect workers -- connect-runtime and connect-file 4.1.1, pinned in
# tests/compat/connect/pom.xml, which compiles nothing and only writes their
# classpath -- run against the broker, started the way Kafka's
# bin/connect-*.sh scripts start them; connect_check.py drives their REST API
# and reads what they wrote to the broker.
#   connect-standalone: ConnectStandalone, StringConverter. FileStreamSource
#     copies a 5000-line file (multi-byte UTF-8, empty, blank, tab, quoted and
#     10 kB lines) into a topic, FileStreamSink copies the topic into a file:
#     the copy equals the input line for line; after SIGTERM the worker stops
#     cleanly and the sink's group has committed offset 5000.
#   connect-distributed: ConnectDistributed, JsonConverter without schemas,
#     group.id and config/offset/status topics at replication factor 1. The
#     three internal topics exist, compacted (DescribeConfigs); a source and a
#     sink are created over REST, RUNNING, and copy 5000 lines; the worker
#     created the source's topic with the configs the connector asked for
#     (topic.creation.*); the source's position reaches the offsets topic.
#     The worker is stopped, 1000 lines are appended, and a new worker reads
#     both connectors' configs back from the
#     config topic and copies the new lines without duplicating old ones
#     (source position from the offsets topic, sink position from the group's
#     committed offsets). DELETE of the sink: 404, no longer listed, a
#     tombstone in the config topic, and 500 more lines reach the topic (the
#     source's position) but not the sink's file.
#     Its input is ASCII on purpose: FileStreamSourceTask counts its position
#     in UTF-16 chars but resumes by skipping that many bytes, so a restart
#     after multi-byte text resumes mid-line. That is connect-file's own
#     defect (its bytecode: InputStream.skip(position)), not the broker's.
#   connect-distributed-eos: two workers with exactly-once source support;
#     the one running the source task is SIGKILLed mid-copy (see
#     test_connect_distributed_eos).
# Each worker runs under `timeout` (its own process group) and is killed on
# exit. A WARN/ERROR line in a worker's log fails the test unless
# connect_log_check names it benign; so does one in the broker's stderr.
CONNECT_DIR=$HERE/connect
CONNECT_CHECK=$HERE/connect_check.py
CONNECT_CP=""
CONNECT_WORKER_PID=""    # the worker started last: its `timeout` wrapper's pid
CONNECT_PIDS=()          # every worker still running, stopped on exit

test_connect_build() {
    local out="$PWD/$CONNECT_DIR/target"
    local CLIENT_TIMEOUT=$((CLIENT_TIMEOUT * 5))   # a first run downloads the jars
    bounded mvn -q -B -f "$CONNECT_DIR/pom.xml" package -Dcompat.build.dir="$out" \
        || { echo "FAIL: mvn package ($CONNECT_DIR) exited with status $?" >&2; return 1; }
    CONNECT_CP=$(cat "$out/classpath.txt") || return 1
}

# A port nothing listens on now, below the ephemeral range (the worker binds it a moment later).
free_port() {
    python3 tests/free_port.py
}

# Start a worker in the background under `timeout`, which makes itself a
# process-group leader: killing the group -PID kills the JVM too.
connect_start_worker() {  # CLASS LOG ARGS...: CLASS is ConnectStandalone or ConnectDistributed
    local class=$1 log=$2; shift 2
    timeout -k 5 "$CLIENT_TIMEOUT" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
        -cp "$CONNECT_CP" "org.apache.kafka.connect.cli.$class" "$@" \
        >>"$log" 2>&1 </dev/null &
    CONNECT_WORKER_PID=$!
    CONNECT_PIDS+=("$!")
    echo "worker $class started (pid $CONNECT_WORKER_PID), log $log"
}

connect_forget() {  # PID: no longer running
    local p keep=()
    for p in ${CONNECT_PIDS[@]+"${CONNECT_PIDS[@]}"}; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    CONNECT_PIDS=(${keep[@]+"${keep[@]}"})
    [ "$CONNECT_WORKER_PID" != "$1" ] || CONNECT_WORKER_PID=""
}

# SIGTERM a worker (default: the last started) and wait up to GRACE seconds:
# Connect's shutdown hook stops the connectors, commits the sinks' offsets
# and leaves the group.
connect_stop_worker() {  # GRACE [PID]
    local grace=$1 pid=${2:-$CONNECT_WORKER_PID} i rc
    [ -n "$pid" ] || return 0
    connect_forget "$pid"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null    # timeout's process group: it and the JVM
        wait "$pid" 2>/dev/null
        echo "FAIL: Connect worker still running ${grace}s after SIGTERM (killed)" >&2
        return 1
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL: Connect worker ran past its ${CLIENT_TIMEOUT}s limit (killed)" >&2
        return 1
    fi
    echo "worker stopped $((i / 10)).$((i % 10))s after SIGTERM (status $rc)"
}

connect_stop_all() {  # GRACE: every worker still running (on failure and on exit)
    local pid
    for pid in ${CONNECT_PIDS[@]+"${CONNECT_PIDS[@]}"}; do
        connect_stop_worker "$1" "$pid" >/dev/null 2>&1
    done
    CONNECT_PIDS=()
}

# A worker's log ends with "Kafka Connect stopped" after a clean stop, and has
# no WARN/ERROR line but the ones Connect logs on a healthy run:
#  - "Catching up to assignment's config offset": a starting herder's config
#    snapshot is at offset -1 until its first join, then it reads the topic;
#  - "Close timed out with N pending requests to coordinator": the worker
#    closes its group client with a zero timer (AbstractCoordinator.close()),
#    so the LeaveGroup it has just queued is always still pending.
connect_log_check() {  # LOG [killed]: "killed" if the worker was SIGKILLed on purpose
    local bad
    if [ "${2:-}" != killed ] && ! grep -q 'Kafka Connect stopped' "$1"; then
        echo "FAIL: $1 has no 'Kafka Connect stopped' line: the worker did not stop cleanly" >&2
        return 1
    fi
    bad=$(grep -E '^[0-9:.]+ \[[^]]*\] (WARN|ERROR) ' "$1" \
          | grep -v -e "Catching up to assignment's config offset" \
                    -e 'Close timed out with [0-9]* pending requests to coordinator')
    if [ -n "$bad" ]; then
        echo "$bad" | head -n 20 >&2
        echo "FAIL: $(echo "$bad" | wc -l) WARN/ERROR lines in $1 (above)" >&2
        return 1
    fi
}

broker_log_check() {  # LINE: no WARN/ERROR in the broker's stderr after line LINE
    local bad
    bad=$(tail -n "+$(($1 + 1))" "$WORK/broker.err" | sed 's/\x1b\[[0-9;]*m//g' \
          | grep -E '^[^ ]+ +(WARN|ERROR) ')
    if [ -n "$bad" ]; then
        echo "$bad" | head -n 20 >&2
        echo "FAIL: the broker logged $(echo "$bad" | wc -l) WARN/ERROR lines (above)" >&2
        return 1
    fi
}

# Wait up to SECONDS for OUT to have as many lines as IN, then OUT must equal
# IN byte for byte: the same lines, in order, none twice. On failure the
# worker at URL (if given) says what its connectors and tasks are doing.
connect_wait_copy() {  # IN OUT SECONDS [URL]
    local want have=0 i
    want=$(wc -l <"$1")
    for ((i = 0; i < $3 * 2; i++)); do
        [ -f "$2" ] && have=$(wc -l <"$2")
        [ "$have" -ge "$want" ] && break
        sleep 0.5
    done
    if ! cmp -s "$1" "$2"; then
        [ -z "${4:-}" ] || py "$CONNECT_CHECK" status "$4" >&2
        diff "$1" "$2" 2>&1 | head -n 10 | cut -c 1-200 >&2
        echo "FAIL: the sink's file has $have lines, the source's $want, and they differ" \
             "(diff above)" >&2
        return 1
    fi
    echo "sink file equals source file: $want lines"
}

test_connect_standalone() {
    local d="$WORK/connect-standalone" t="connect-sa-$RUN" since port url
    since=$(wc -l <"$WORK/broker.err")
    mkdir -p "$d"
    py "$CONNECT_CHECK" lines 5000 --tag "sa-$RUN" >"$d/in.txt" || return 1
    port=$(free_port) || return 1
    url="http://127.0.0.1:$port"
    cat >"$d/worker.properties" <<EOF
bootstrap.servers=$BOOTSTRAP
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$d/source.offsets
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$port
plugin.discovery=only_scan
EOF
    cat >"$d/source.properties" <<EOF
name=file-source
connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector
tasks.max=1
file=$d/in.txt
topic=$t
EOF
    cat >"$d/sink.properties" <<EOF
name=file-sink
connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector
tasks.max=1
file=$d/out.txt
topics=$t
EOF
    connect_start_worker ConnectStandalone "$d/worker.log" "$d/worker.properties" \
        "$d/source.properties" "$d/sink.properties"
    if ! { py "$CONNECT_CHECK" wait-rest "$url" &&
           py "$CONNECT_CHECK" running "$url" file-source file-sink &&
           connect_wait_copy "$d/in.txt" "$d/out.txt" 60 "$url" &&
           connect_stop_worker 30; }; then
        connect_stop_all 10
        return 1
    fi
    py "$CONNECT_CHECK" committed --bootstrap "$BOOTSTRAP" --group connect-file-sink \
        --topic "$t" --expect 5000 || return 1
    connect_log_check "$d/worker.log" && broker_log_check "$since"
}

test_connect_distributed() {
    local d="$WORK/connect-distributed" t="connect-dist-$RUN" since port url
    local configs="connect-configs-$RUN" offsets="connect-offsets-$RUN" status="connect-status-$RUN"
    since=$(wc -l <"$WORK/broker.err")
    mkdir -p "$d"
    py "$CONNECT_CHECK" lines 5000 --ascii --tag "dist-$RUN" >"$d/in.txt" || return 1
    port=$(free_port) || return 1
    url="http://127.0.0.1:$port"
    cat >"$d/worker.properties" <<EOF
bootstrap.servers=$BOOTSTRAP
group.id=connect-cluster-$RUN
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
config.storage.topic=$configs
offset.storage.topic=$offsets
status.storage.topic=$status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
plugin.discovery=only_scan
EOF
    # The worker creates the source's topic itself (KIP-158 topic.creation.*),
    # passing these topic configs through CreateTopics.
    local created=(compression.type=lz4 retention.ms=86400000 min.compaction.lag.ms=60000)
    local source=(connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector
                  tasks.max=1 "file=$d/in.txt" "topic=$t"
                  topic.creation.default.partitions=1 topic.creation.default.replication.factor=1
                  "${created[@]/#/topic.creation.default.}")
    local sink=(connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector
                tasks.max=1 "file=$d/out.txt" "topics=$t")
    local check=(py "$CONNECT_CHECK")

    echo "== worker 1: internal topics, create over REST, copy 5000 lines"
    connect_start_worker ConnectDistributed "$d/worker-1.log" "$d/worker.properties"
    if ! { "${check[@]}" wait-rest "$url" &&
           "${check[@]}" listed "$url" &&
           "${check[@]}" internal-topics --bootstrap "$BOOTSTRAP" "$configs" "$offsets" "$status" &&
           "${check[@]}" create "$url" file-source "${source[@]}" &&
           "${check[@]}" create "$url" file-sink "${sink[@]}" &&
           "${check[@]}" running "$url" file-source file-sink &&
           connect_wait_copy "$d/in.txt" "$d/out.txt" 60 "$url" &&
           "${check[@]}" topic-configs --bootstrap "$BOOTSTRAP" --topic "$t" "${created[@]}" &&
           "${check[@]}" source-position --bootstrap "$BOOTSTRAP" --topic "$offsets" \
               --connector file-source --file "$d/in.txt" --expect "$(wc -c <"$d/in.txt")" &&
           connect_stop_worker 30; }; then
        connect_stop_all 10
        return 1
    fi
    connect_log_check "$d/worker-1.log" || return 1

    echo "== worker down: 1000 lines appended; worker 2 resumes from the topics"
    py "$CONNECT_CHECK" lines 1000 --ascii --tag "dist-$RUN-more" >>"$d/in.txt" || return 1
    connect_start_worker ConnectDistributed "$d/worker-2.log" "$d/worker.properties"
    if ! { "${check[@]}" wait-rest "$url" &&
           "${check[@]}" listed "$url" file-source file-sink &&
           "${check[@]}" config-is "$url" file-source "${source[@]}" &&
           "${check[@]}" config-is "$url" file-sink "${sink[@]}" &&
           "${check[@]}" running "$url" file-source file-sink &&
           connect_wait_copy "$d/in.txt" "$d/out.txt" 60 "$url" &&
           "${check[@]}" source-position --bootstrap "$BOOTSTRAP" --topic "$offsets" \
               --connector file-source --file "$d/in.txt" --expect "$(wc -c <"$d/in.txt")"; }; then
        connect_stop_all 10
        return 1
    fi

    echo "== DELETE the sink: gone, tombstoned, and it copies no more"
    cp "$d/out.txt" "$d/out-at-delete.txt"
    if ! { "${check[@]}" delete "$url" file-sink &&
           "${check[@]}" listed "$url" file-source &&
           "${check[@]}" tombstone --bootstrap "$BOOTSTRAP" --topic "$configs" \
               --key connector-file-sink &&
           "${check[@]}" lines 500 --ascii --tag "dist-$RUN-after-delete" >>"$d/in.txt" &&
           "${check[@]}" source-position --bootstrap "$BOOTSTRAP" --topic "$offsets" \
               --connector file-source --file "$d/in.txt" --expect "$(wc -c <"$d/in.txt")" &&
           "${check[@]}" committed --bootstrap "$BOOTSTRAP" --group connect-file-sink \
               --topic "$t" --expect "$(wc -l <"$d/out-at-delete.txt")" &&
           connect_stop_worker 30; }; then
        connect_stop_all 10
        return 1
    fi
    if ! cmp -s "$d/out-at-delete.txt" "$d/out.txt"; then
        echo "FAIL: the deleted sink went on writing: $(wc -l <"$d/out.txt") lines," \
             "$(wc -l <"$d/out-at-delete.txt") at DELETE" >&2
        return 1
    fi
    echo "the deleted sink's file kept its $(wc -l <"$d/out.txt") lines"
    connect_log_check "$d/worker-2.log" && broker_log_check "$since"
}

# Two workers, exactly.once.source.support=enabled: the source task writes
# each poll's records and its position in one transaction (transactional id
# GROUP-CONNECTOR-TASK; the leader fences zombies through InitProducerId). The
# worker running the task is SIGKILLed mid-copy, with transactions in
# flight; the survivor takes the task over after the session timeout and the
# scheduled rebalance delay, fences the dead producer (its open transaction
# is aborted) and resumes from the committed position. Once that position has
# settled, the topic read with read_committed must hold exactly the lines
# before it: each once, in order, none missing -- records and position are
# committed together or not at all.
# (The position settles short of the file's end: with batch.size=5,
# FileStreamSourceTask leaves the lines it has already buffered unread until
# its file grows again -- it polls its reader's ready() -- so the check is
# against the position, not the whole file. 100 lines appended after the
# takeover make sure the survivor has lines to copy even where the first
# worker had copied the whole file before the kill.)
test_connect_distributed_eos() {
    local d="$WORK/connect-eos" t="connect-eos-$RUN" since w i port size pos victim
    local urls=() pids=() check=(py "$CONNECT_CHECK") survivor="" survivor_pid="" survivor_log=""
    local dead=""
    since=$(wc -l <"$WORK/broker.err")
    mkdir -p "$d"
    py "$CONNECT_CHECK" lines 6000 --ascii --tag "eos-$RUN" >"$d/in.txt" || return 1
    size=$(wc -c <"$d/in.txt")
    for w in 0 1; do
        port=$(free_port) || return 1
        urls+=("http://127.0.0.1:$port")
        cat >"$d/worker-$w.properties" <<EOF
bootstrap.servers=$BOOTSTRAP
group.id=connect-eos-$RUN
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
config.storage.topic=connect-eos-configs-$RUN
offset.storage.topic=connect-eos-offsets-$RUN
status.storage.topic=connect-eos-status-$RUN
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
plugin.discovery=only_scan
exactly.once.source.support=enabled
session.timeout.ms=6000
heartbeat.interval.ms=1000
scheduled.rebalance.max.delay.ms=2000
EOF
        connect_start_worker ConnectDistributed "$d/worker-$w.log" "$d/worker-$w.properties"
        pids+=("$CONNECT_WORKER_PID")
    done
    local source=(connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector
                  tasks.max=1 "file=$d/in.txt" "topic=$t" batch.size=5
                  exactly.once.support=required transaction.boundary=poll)
    if ! { "${check[@]}" wait-rest "${urls[0]}" && "${check[@]}" wait-rest "${urls[1]}" &&
           "${check[@]}" create "${urls[0]}" file-source "${source[@]}" &&
           "${check[@]}" running "${urls[0]}" file-source; }; then
        connect_stop_all 10
        return 1
    fi

    echo "== SIGKILL the worker running the task, a fifth of the way in"
    for ((i = 0; i < 240; i++)); do
        pos=$("${check[@]}" position "${urls[0]}" file-source) || { connect_stop_all 10; return 1; }
        [ "$pos" -ge $((size / 5)) ] && break
        sleep 0.25
    done
    victim=$("${check[@]}" task-worker "${urls[0]}" file-source) || { connect_stop_all 10; return 1; }
    for w in 0 1; do
        if [ "${urls[$w]}" = "http://$victim" ]; then
            kill -KILL -- "-${pids[$w]}" 2>/dev/null
            wait "${pids[$w]}" 2>/dev/null
            connect_forget "${pids[$w]}"
            dead=$d/worker-$w.log
        else
            survivor=${urls[$w]}
            survivor_pid=${pids[$w]}
            survivor_log=$d/worker-$w.log
        fi
    done
    if [ -z "$dead" ] || [ -z "$survivor" ]; then
        echo "FAIL: the task runs on $victim, which is neither worker (${urls[*]})" >&2
        connect_stop_all 10
        return 1
    fi
    echo "killed $victim at source position $pos of $size bytes"

    echo "== the survivor ${survivor#http://} takes the task over"
    for ((i = 0; i < 120; i++)); do
        [ "$("${check[@]}" task-worker "$survivor" file-source 2>/dev/null)" = "${survivor#http://}" ] \
            && break
        sleep 0.5
    done
    local final
    if ! { "${check[@]}" running "$survivor" file-source &&
           "${check[@]}" lines 100 --ascii --tag "eos-$RUN-more" >>"$d/in.txt" &&
           final=$("${check[@]}" settled "$survivor" file-source) &&
           echo "the source's position settled at $final of $size bytes" &&
           if [ "$final" -le "$pos" ]; then
               echo "FAIL: the survivor copied nothing after the takeover (position $final)" >&2
               false
           fi &&
           "${check[@]}" topic-equals --bootstrap "$BOOTSTRAP" --topic "$t" --file "$d/in.txt" \
               --bytes "$final" &&
           connect_stop_worker 30 "$survivor_pid"; }; then
        connect_stop_all 10
        return 1
    fi
    connect_log_check "$survivor_log" && connect_log_check "$dead" killed &&
        broker_log_check "$since"
}

connect_selected() {  # is any Connect test selected by COMPAT_ONLY?
    local name
    [ -z "${COMPAT_ONLY:-}" ] && return 0
    for name in connect-build connect-standalone connect-distributed connect-distributed-eos; do
        [[ $name =~ $COMPAT_ONLY ]] && return 0
    done
    return 1
}
# ---- end Kafka Connect ----
# ---- Kafka Streams (issue 14) ----
# tests/compat/streams (a Maven project, kafka-streams 4.1.1): a KStream-KTable
# join (orders keyed by customer id x a compacted customers table, 4 partitions
# each) and a 10 s tumbling-window count of clicks (event time set by the
# producer; every update, and the suppressed final count), and the join results
# re-keyed by customer tier through a repartition topic into running totals, run
# with processing.guarantee=exactly_once_v2 and 2 stream threads. An idempotent
# producer writes 2000 orders and 2000 clicks at STREAMS_RATE a second while the
# application is SIGKILLed and restarted (same state dir, then a wiped one that
# restores from the changelog topics), or while the broker is restarted (SIGTERM,
# then again on the same port and data dir); a read_committed checker then wants
# every order joined exactly once, every window's count and every tier's total
# exact, and, after a clean close, the application's committed offsets at the
# inputs' end.
STREAMS_DIR=$HERE/streams
STREAMS_CP=""
STREAMS_COUNT=2000       # orders, and clicks
STREAMS_RATE=100         # of each per second: the input takes 20 s to write
STREAMS_WAIT=120         # seconds for the outputs to become complete
STREAMS_JAVA=(java -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn
              -Dorg.slf4j.simpleLogger.showDateTime=true)

test_streams_build() {
    local out="$PWD/$STREAMS_DIR/target"
    local CLIENT_TIMEOUT=$((CLIENT_TIMEOUT * 5))   # a first run downloads the jars
    bounded mvn -q -B -f "$STREAMS_DIR/pom.xml" package -Dcompat.build.dir="$out" \
        || { echo "FAIL: mvn package ($STREAMS_DIR) exited with status $?" >&2; return 1; }
    STREAMS_CP="$out/classes:$(cat "$out/classpath.txt")" || return 1
}

streams_step() {  # STEP ARGS...: one bounded JVM run of StreamsCompat
    local out="$WORK/io/streams-step.out" rc
    bounded "${STREAMS_JAVA[@]}" -cp "$STREAMS_CP" shardlog.streams.StreamsCompat "$@" 2>&1 \
        | tee "$out"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] && return 0
    echo "StreamsCompat $1 exited with status $rc"
    # The step's own reason last, for run_test's one-line summary.
    grep '^FAIL: ' "$out" | tail -n 1 | grep . >&2 \
        || echo "FAIL: StreamsCompat $1 exited with status $rc" >&2
    return 1
}

# The Streams application runs in the background (its own JVM, so that SIGKILL
# hits it and nothing else); S_APP_PID, S_APP_LOG. Every wait on it is bounded.
streams_app_start() {  # BOOTSTRAP PREFIX STATE_DIR LOG
    S_APP_LOG=$4
    : >"$S_APP_LOG"      # exists before the first wait reads it
    "${STREAMS_JAVA[@]}" -cp "$STREAMS_CP" shardlog.streams.StreamsCompat app \
        --bootstrap "$1" --prefix "$2" --app-id "$2-app" --state-dir "$3" \
        >"$S_APP_LOG" 2>&1 </dev/null &
    S_APP_PID=$!
    echo "streams app pid $S_APP_PID started (state dir $3, log $S_APP_LOG)"
}

streams_app_alive() {
    kill -0 "$S_APP_PID" 2>/dev/null && return 0
    echo "FAIL: the Streams application exited on its own; its log's end:" >&2
    tail -n 30 "$S_APP_LOG" | sed 's/^/      /' >&2
    return 1
}

# Waits (up to 90 s) until this instance is RUNNING and has processed at least
# MIN orders itself (its "progress orders=N" lines), so a kill lands mid-stream.
streams_app_wait() {  # MIN
    local n end=$((SECONDS + 90))
    while [ "$SECONDS" -lt "$end" ]; do
        streams_app_alive || return 1
        n=$(sed -n 's/^progress orders=\([0-9]*\) .*/\1/p' "$S_APP_LOG" | tail -n 1)
        if grep -q '^STATE RUNNING' "$S_APP_LOG" && [ "${n:-0}" -ge "$1" ]; then
            echo "streams app $S_APP_PID: RUNNING, $n orders processed"
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL: streams app $S_APP_PID not RUNNING with $1 orders processed within 90 s" \
         "(last: $(grep -E '^(STATE|progress)' "$S_APP_LOG" | tail -n 1))" >&2
    return 1
}

streams_app_kill() {  # SIGKILL: open transactions are left behind
    streams_app_alive || return 1
    kill -KILL "$S_APP_PID"
    wait "$S_APP_PID" 2>/dev/null
    echo "streams app $S_APP_PID SIGKILLed"
    S_APP_PID=""
}

streams_app_stop() {  # SIGTERM: a clean close must end with status 0 within 60 s
    local i rc
    streams_app_alive || return 1
    kill -TERM "$S_APP_PID"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$S_APP_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$S_APP_PID" 2>/dev/null; then
        kill -KILL "$S_APP_PID"
        wait "$S_APP_PID" 2>/dev/null
        echo "FAIL: the Streams application did not close within 60 s of SIGTERM" >&2
        return 1
    fi
    wait "$S_APP_PID"
    rc=$?
    S_APP_PID=""
    # A JVM ended by SIGTERM after its shutdown hook ran exits 143.
    if [ $rc -ne 0 ] && [ $rc -ne 143 ]; then
        echo "FAIL: the Streams application exited with status $rc on SIGTERM" >&2
        return 1
    fi
    echo "streams app closed cleanly (status $rc)"
}

streams_cleanup() {  # the EXIT trap of each streams test's subshell
    [ -n "${S_PRODUCER_PID:-}" ] && kill -KILL "$S_PRODUCER_PID" 2>/dev/null
    [ -n "${S_APP_PID:-}" ] && kill -KILL "$S_APP_PID" 2>/dev/null
    if [ -n "${S_BROKER_PID:-}" ]; then
        kill -KILL "$S_BROKER_PID" 2>/dev/null
        wait "$S_BROKER_PID" 2>/dev/null
    fi
}

# The input producer runs in the background too, as a direct child (so that
# the cleanup's SIGKILL reaches the JVM itself); its output goes to the test log.
streams_produce_start() {  # BOOTSTRAP PREFIX BASE
    "${STREAMS_JAVA[@]}" -cp "$STREAMS_CP" shardlog.streams.StreamsCompat produce \
        --bootstrap "$1" --prefix "$2" --base-ms "$3" \
        --count "$STREAMS_COUNT" --rate "$STREAMS_RATE" </dev/null &
    S_PRODUCER_PID=$!
}

streams_produce_wait() {  # up to CLIENT_TIMEOUT more seconds
    local rc end=$((SECONDS + CLIENT_TIMEOUT))
    while kill -0 "$S_PRODUCER_PID" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do
        sleep 0.2
    done
    if kill -0 "$S_PRODUCER_PID" 2>/dev/null; then
        echo "FAIL: the input producer still ran ${CLIENT_TIMEOUT}s after the input should" \
             "have been written" >&2
        return 1     # the cleanup kills it
    fi
    wait "$S_PRODUCER_PID"
    rc=$?
    S_PRODUCER_PID=""
    [ $rc -eq 0 ] || { echo "FAIL: the input producer exited with status $rc" >&2; return 1; }
}

# Waits for complete outputs, closes the application cleanly, and checks it all
# once more with nothing running (so late duplicates would show).
streams_finish() {  # BOOTSTRAP PREFIX BASE
    local CLIENT_TIMEOUT=$((STREAMS_WAIT + 60))
    streams_step check --bootstrap "$1" --prefix "$2" --base-ms "$3" --count "$STREAMS_COUNT" \
        --app-id "$2-app" --wait-s "$STREAMS_WAIT" || return 1
    streams_app_stop || return 1
    streams_step check --bootstrap "$1" --prefix "$2" --base-ms "$3" --count "$STREAMS_COUNT" \
        --app-id "$2-app" --wait-s 60 --final
}

# The first event time: a multiple of 10 s, ten minutes ago (fresh for retention
# and for the broker's timestamp bounds; the whole input spans under a minute).
streams_base_ms() {
    echo $((($(date +%s) - 600) / 10 * 10000))
}

# (1) The application is SIGKILLed twice mid-stream: restarted on the same state
# dir (its transactional ids are the same, so the new instance fences the
# old one's open transactions), then on a wiped state dir (new transactional ids:
# the old open transactions end by the broker's transaction timeout, and the
# tables and windows are restored from the changelog topics).
test_streams_app_kill() (
    trap streams_cleanup EXIT
    local p="streams-kill-$RUN" state="$WORK/streams/kill-state" base from
    from=$(wc -l <"$WORK/broker.err")
    base=$(streams_base_ms)
    mkdir -p "$state"
    streams_step setup --bootstrap "$BOOTSTRAP" --prefix "$p" || exit 1
    streams_step customers --bootstrap "$BOOTSTRAP" --prefix "$p" --base-ms "$base" || exit 1
    streams_app_start "$BOOTSTRAP" "$p" "$state" "$WORK/logs/streams-kill-app1.log"
    streams_app_wait 0 || exit 1
    streams_produce_start "$BOOTSTRAP" "$p" "$base"
    streams_app_wait 300 || exit 1
    streams_app_kill || exit 1
    streams_app_start "$BOOTSTRAP" "$p" "$state" "$WORK/logs/streams-kill-app2.log"
    streams_app_wait 300 || exit 1
    streams_app_kill || exit 1
    rm -rf "$state" && mkdir -p "$state"
    echo "state dir wiped"
    streams_app_start "$BOOTSTRAP" "$p" "$state" "$WORK/logs/streams-kill-app3.log"
    streams_app_wait 1 || exit 1
    # On a wiped state dir the stores can only have come back from their changelogs.
    # The table and the window counts had been committed by the first instance,
    # which ran for seconds (the tier totals, two transactions downstream, may not).
    grep -E '^restored [1-9][0-9]* records of ' "$S_APP_LOG" | sed 's/^/  /'
    local store
    for store in customers-store click-counts-store; do
        grep -qE "^restored [1-9][0-9]* records of $store " "$S_APP_LOG" || {
            echo "FAIL: the instance on the wiped state dir restored no record of $store" >&2
            exit 1
        }
    done
    streams_produce_wait || exit 1
    streams_finish "$BOOTSTRAP" "$p" "$base" || exit 1
    streams_broker_log_report "$WORK/broker.err" "$from"
)

# A broker of this test's own on a fixed port (the suite's broker listens on
# port 0, which a restart would not get back); same flags as start_broker.
streams_broker_start() {  # PORT DATA_DIR LOG_PREFIX
    local i
    touch "$3.out" "$3.err"
    "$BIN" start \
        --set "listeners=PLAINTEXT://127.0.0.1:$1" \
        --set admin.listener=http://127.0.0.1:0 \
        --set "log.dirs=$2" \
        --set "shard.cores=$CORES" \
        >>"$3.out" 2>>"$3.err" </dev/null &
    S_BROKER_PID=$!
    for ((i = 0; i < 300; i++)); do        # up to 30 s
        if [ "$(grep -c "^shardlog listening on 127.0.0.1:$1" "$3.out")" -gt "${S_BROKER_STARTS:-0}" ]; then
            S_BROKER_STARTS=$((${S_BROKER_STARTS:-0} + 1))
            echo "broker pid $S_BROKER_PID listening on 127.0.0.1:$1"
            return 0
        fi
        if ! kill -0 "$S_BROKER_PID" 2>/dev/null; then
            echo "FAIL: the test's broker exited before listening on port $1:" >&2
            tail -n 10 "$3.err" >&2
            S_BROKER_PID=""
            return 1
        fi
        sleep 0.1
    done
    echo "FAIL: the test's broker was not listening on port $1 within 30 s" >&2
    return 1
}

streams_broker_stop() {  # SIGTERM; a clean exit (status 0) within 30 s
    local i rc
    kill -TERM "$S_BROKER_PID"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$S_BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$S_BROKER_PID" 2>/dev/null; then
        echo "FAIL: the test's broker still ran 30 s after SIGTERM" >&2
        return 1
    fi
    wait "$S_BROKER_PID"
    rc=$?
    S_BROKER_PID=""
    [ $rc -eq 0 ] || { echo "FAIL: the test's broker exited with status $rc on SIGTERM" >&2; return 1; }
    echo "broker stopped cleanly"
}

# What a broker logged at WARN or above since line FROM of its stderr, for the
# record (the Streams scenarios should cause none); a panic fails the test.
streams_broker_log_report() {  # STDERR_FILE FROM_LINE
    local new n
    new=$(tail -n "+$(($2 + 1))" "$1")
    n=$(grep -cE 'WARN|ERROR|panick' <<<"$new")
    echo "the broker logged $n WARN/ERROR line(s) on stderr during the test ($1)"
    grep -E 'WARN|ERROR|panick' <<<"$new" | head -n 20 | sed 's/^/      /'
    if grep -q 'panick' <<<"$new"; then
        echo "FAIL: the broker panicked (see $1)" >&2
        return 1
    fi
}

# (2) The broker is restarted (SIGTERM, start on the same port and data dir)
# while the application keeps running, and it must go on processing; then twice
# the application is SIGKILLed and the broker restarted while it is down: the
# next instance starts on the same state dir (its InitProducerId fences the open
# transactions the restarted broker loaded from __transaction_state), then on a
# wiped one (new transactional ids: the loaded open transactions must end by
# the broker's transaction timeout, or read_committed output stays stuck).
test_streams_broker_restart() (
    trap streams_cleanup EXIT
    local p="streams-restart-$RUN" state="$WORK/streams/restart-state" base port bs n0 n
    local blog="$WORK/logs/streams-broker"
    base=$(streams_base_ms)
    port=$(free_port) || exit 1
    bs="127.0.0.1:$port"
    mkdir -p "$state"
    streams_broker_start "$port" "$WORK/streams/broker-data" "$blog" || exit 1
    streams_step setup --bootstrap "$bs" --prefix "$p" || exit 1
    streams_step customers --bootstrap "$bs" --prefix "$p" --base-ms "$base" || exit 1
    streams_app_start "$bs" "$p" "$state" "$WORK/logs/streams-restart-app1.log"
    streams_app_wait 0 || exit 1
    streams_produce_start "$bs" "$p" "$base"
    streams_app_wait 300 || exit 1
    streams_broker_stop || exit 1
    streams_broker_start "$port" "$WORK/streams/broker-data" "$blog" || exit 1
    n0=$(sed -n 's/^progress orders=\([0-9]*\) .*/\1/p' "$S_APP_LOG" | tail -n 1)
    streams_app_wait $((n0 + 300)) || exit 1     # it goes on after the restart
    streams_app_kill || exit 1
    streams_broker_stop || exit 1
    streams_broker_start "$port" "$WORK/streams/broker-data" "$blog" || exit 1
    streams_app_start "$bs" "$p" "$state" "$WORK/logs/streams-restart-app2.log"
    streams_app_wait 100 || exit 1
    streams_app_kill || exit 1
    streams_broker_stop || exit 1
    streams_broker_start "$port" "$WORK/streams/broker-data" "$blog" || exit 1
    rm -rf "$state" && mkdir -p "$state"
    echo "state dir wiped"
    streams_app_start "$bs" "$p" "$state" "$WORK/logs/streams-restart-app3.log"
    streams_app_wait 1 || exit 1
    streams_produce_wait || exit 1
    streams_finish "$bs" "$p" "$base" || exit 1
    streams_broker_stop || exit 1
    streams_broker_log_report "$blog.err" 0
)

run_streams_tests() {
    if ! command -v mvn >/dev/null; then
        echo "SKIP streams: mvn not found (apt-get install maven)"
        return
    elif ! command -v java >/dev/null; then
        echo "SKIP streams: java not found (apt-get install openjdk-17-jdk-headless)"
        return
    fi
    mkdir -p "$WORK/streams"
    run_test streams-build test_streams_build
    [ -n "$STREAMS_CP" ] || return
    run_test streams-eos-app-kill test_streams_app_kill
    run_test streams-eos-broker-restart test_streams_broker_restart
}
# ---- end Kafka Streams ----

test_sigterm_shutdown() {
    stop_broker 20
    if [ "$STOP_STATUS" != 0 ]; then
        echo "FAIL: broker did not exit cleanly on SIGTERM: status $STOP_STATUS" >&2
        return 1
    fi
    echo "broker exited with status 0 after SIGTERM"
}

# ------------------------------------------------------------------ main ----

if [ ! -x "$PY" ] || ! "$PY" -c 'import kafka, confluent_kafka' 2>/dev/null; then
    NOT_RUNNABLE="no venv with kafka-python and confluent-kafka at $VENV (see .ci/run)"
elif ! command -v kcat >/dev/null; then
    NOT_RUNNABLE="kcat is not installed (apt-get install kcat)"
elif ! start_broker; then
    :   # NOT_RUNNABLE says why
fi
if [ -n "$NOT_RUNNABLE" ]; then
    echo "FAIL broker-start: $NOT_RUNNABLE"
    FAILED=$((FAILED + 1))
    NOT_RUNNABLE="see broker-start"
else
    echo "compat: broker pid $BROKER_PID at $BOOTSTRAP, work dir $WORK" >&2
fi

run_test kafka-python-roundtrip test_kafka_python_roundtrip
run_test kcat-roundtrip test_kcat_roundtrip
run_test kcat-to-kafka-python test_kcat_to_kafka_python
run_test kafka-python-to-kcat test_kafka_python_to_kcat
for codec in gzip snappy lz4 zstd; do
    run_test "confluent-$codec-to-kafka-python-and-confluent" test_compression "$codec"
done
run_test kcat-metadata test_kcat_metadata
run_test large-message-under-limit test_large_message under
run_test large-message-over-limit test_large_message over
for scenario in range roundrobin mixed; do
    run_test "kafka-python-group-$scenario" test_kafka_python_groups "$scenario"
done
for client in kafka-python confluent; do
    run_test "admin-$client" test_admin "$client"
done
run_test kafka-python-idempotent test_kafka_python_idempotent
run_test confluent-transactions test_txn_confluent
run_test confluent-consumer-protocol test_consumer_protocol
run_go_tests
if ! command -v mvn >/dev/null; then
    echo "SKIP java: mvn not found (apt-get install maven)"
elif ! command -v java >/dev/null; then
    echo "SKIP java: java not found (apt-get install openjdk-17-jdk-headless)"
else
    for version in "${JAVA_CLIENTS[@]}"; do
        run_test "java-$version-build" test_java_build "$version"
        [ -n "${JAVA_CP[$version]:-}" ] || continue
        checks=(producer group-eager group-cooperative static-membership admin transactions)
        # The consumer group protocol (KIP-848) is generally available from
        # kafka-clients 4.0; 3.x has only a preview of it.
        [[ $version == 4.* ]] && checks+=(consumer-protocol)
        for check in "${checks[@]}"; do
            run_test "java-$version-$check" test_java "$version" "$check"
        done
    done
fi
if ! connect_selected; then
    :
elif ! command -v mvn >/dev/null; then
    echo "SKIP connect-standalone, connect-distributed: mvn not found (apt-get install maven)"
elif ! command -v java >/dev/null; then
    echo "SKIP connect-standalone, connect-distributed: java not found" \
         "(apt-get install openjdk-17-jdk-headless)"
else
    COMPAT_ONLY='' run_test connect-build test_connect_build   # whenever a Connect test runs
    if [ -n "$CONNECT_CP" ]; then
        run_test connect-standalone test_connect_standalone
        run_test connect-distributed test_connect_distributed
        run_test connect-distributed-eos test_connect_distributed_eos
    fi
fi
run_streams_tests
run_test broker-sigterm-shutdown test_sigterm_shutdown

if [ "$FAILED" -gt 0 ] && [ -s "$WORK/broker.err" ]; then
    echo "---- last lines of the broker's stderr ($WORK/broker.err) ----"
    tail -n 40 "$WORK/broker.err" | sed 's/^/    | /'
fi
if [ "$FAILED" -gt 0 ] || [ "${COMPAT_KEEP:-0}" = 1 ]; then
    echo "compat: logs and broker data kept in $WORK"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
