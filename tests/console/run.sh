#!/usr/bin/env bash
# Admin console browser tests (issue 19).
#
# What: starts the real broker with its admin listener (free ports picked
# here, fresh temp log dir, a fast lag sampler: 500 ms x 5 samples), then
# drives the console it serves at / with Debian's chromium through
# playwright-core (console.test.mjs): the overview, creating a topic through
# the form (checked with `shardlog topic list`), records produced with kcat
# (librdkafka) shown with keys and headers, a lagging group's lag and
# verdict, resetting a group's offsets (checked with `shardlog group
# describe`), deleting a topic (checked with `shardlog topic list`). Then it
# restarts the broker on the same data with admin.console.read.only=true and
# checks that the console offers no actions and that a POST answers 403.
# Prints "PASS name" / "FAIL name: reason" per test and ends with
# "N passed, M failed"; exits non-zero if anything failed. The broker is
# stopped with SIGTERM; the temp dir is removed unless something failed.
#
# Why: the console is JavaScript no Rust test runs; only a browser against
# the real API shows that it renders what the broker answers.
#
# Builds nothing. Needs node, /usr/bin/chromium and `npm ci` in tests/console
# (.ci/run does all three). Inputs (environment):
#   SHARDLOG_BIN        broker binary (default target/debug/shardlog)
#   CHROMIUM_BIN        browser (default /usr/bin/chromium)
#   CONSOLE_SCREENSHOTS where each test saves its screenshot (default <tmp>/screenshots)
#   CONSOLE_DOCS=1      after a green run, copy the overview and group-lag
#                       screenshots to docs/console-overview.png and docs/console-group.png
#   CONSOLE_KEEP=1      keep the temp dir (broker logs, data) even when all pass
#   CONSOLE_ONLY        regex: run only the tests whose names match

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

BIN=${SHARDLOG_BIN:-target/debug/shardlog}
HERE=tests/console
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardlog-console.XXXXXX")
SHOTS=${CONSOLE_SCREENSHOTS:-$WORK/screenshots}
mkdir -p "$SHOTS"
BROKER_PID=""
BOOTSTRAP=""
ADMIN_URL=""
RESULTS="$WORK/results"      # the PASS/FAIL lines, counted for the summary
: >"$RESULTS"

setup_fail() {
    echo "FAIL setup: $*"
    echo "FAIL setup: $*" >>"$RESULTS"
    summary_and_exit
}

summary_and_exit() {
    local passed failed
    passed=$(grep -c '^PASS ' "$RESULTS")
    failed=$(grep -c '^FAIL ' "$RESULTS")
    echo "$passed passed, $failed failed"
    FAILED=$failed
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

# A port nothing listens on now, below the ephemeral range (the worker binds it a moment later).
free_port() {
    python3 tests/free_port.py
}

# start_broker [--set K=V ...]: starts the broker on $WORK/data with fresh
# ports and waits for both listeners. Sets BROKER_PID, BOOTSTRAP, ADMIN_URL.
start_broker() {
    local kafka_port admin_port i
    kafka_port=$(free_port)
    admin_port=$(free_port)
    while [ "$admin_port" = "$kafka_port" ]; do admin_port=$(free_port); done
    touch "$WORK/broker.out" "$WORK/broker.err"
    BOOTSTRAP="127.0.0.1:$kafka_port"
    ADMIN_URL="http://127.0.0.1:$admin_port"
    "$BIN" start \
        --set "listeners=PLAINTEXT://$BOOTSTRAP" \
        --set "admin.listener=$ADMIN_URL" \
        --set "log.dirs=$WORK/data" \
        --set consumer.lag.sample.interval.ms=500 \
        --set consumer.lag.window.samples=5 \
        "$@" >>"$WORK/broker.out" 2>>"$WORK/broker.err" </dev/null &
    BROKER_PID=$!
    # Kafka listener: the broker prints "shardlog listening on HOST:PORT".
    # Admin listener: answers GET /api/v1/cluster. Up to 30 s for both.
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            BROKER_PID=""
            tail -20 "$WORK/broker.err" | sed 's/^/    /'
            setup_fail "broker exited before listening (log: $WORK/broker.err)"
        fi
        if grep -q "^shardlog listening on $BOOTSTRAP" "$WORK/broker.out" &&
            curl -fs -o /dev/null --max-time 2 "$ADMIN_URL/api/v1/cluster"; then
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$WORK/broker.err" | sed 's/^/    /'
    setup_fail "broker not listening on $BOOTSTRAP and $ADMIN_URL within 30 s"
}

# SIGTERM, up to 20 s, then SIGKILL (reported as a failure).
stop_broker() {
    local i
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null
        echo "FAIL broker-stop: still running 20 s after SIGTERM (killed)" | tee -a "$RESULTS"
    fi
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=""
}

on_exit() {
    stop_broker
    if [ "${FAILED:-1}" -eq 0 ] && [ "${CONSOLE_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "logs kept in $WORK" >&2
        rm -rf "$WORK/data"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- checks ---
[ -x "$BIN" ] || setup_fail "broker binary $BIN not found (cargo build)"
command -v node >/dev/null || setup_fail "node not found"
[ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || setup_fail "${CHROMIUM_BIN:-/usr/bin/chromium} not found (apt-get install chromium)"
[ -d "$HERE/node_modules/playwright-core" ] || setup_fail "playwright-core missing: run npm ci in $HERE"

# node runs the tests named on its command line; it prints their PASS/FAIL lines.
run_tests() {
    SHARDLOG_BIN="$BIN" BOOTSTRAP="$BOOTSTRAP" ADMIN_URL="$ADMIN_URL" SHOTS="$SHOTS" \
        timeout -k 5 600 node "$HERE/console.test.mjs" "$@" 2>"$WORK/node.err" | tee -a "$RESULTS"
    if [ "${PIPESTATUS[0]}" -gt 1 ]; then   # 1 = some test failed; more = the runner broke
        echo "FAIL runner: node exited abnormally" | tee -a "$RESULTS"
        tail -20 "$WORK/node.err" | sed 's/^/    /'
    fi
}

start_broker
# overview last: by then it shows topics, partitions and some throughput.
run_tests create-topic records group-lag reset-offsets delete-topic overview
stop_broker

# Same data, read-only console.
start_broker --set admin.console.read.only=true
run_tests read-only
stop_broker

if [ "${CONSOLE_DOCS:-0}" = 1 ] && ! grep -q '^FAIL ' "$RESULTS"; then
    mkdir -p docs
    cp "$SHOTS/overview.png" docs/console-overview.png
    cp "$SHOTS/group-lag.png" docs/console-group.png
    echo "copied screenshots to docs/console-overview.png, docs/console-group.png" >&2
fi
summary_and_exit
