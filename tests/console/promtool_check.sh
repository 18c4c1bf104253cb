#!/usr/bin/env bash
# promtool check of the admin listener's /metrics under load (issue 19).
#
# What: starts the real broker with its admin listener (free ports, fresh
# temp log dir), runs the bundled loadgen for a few seconds (produce and a
# consumer group reading, rate-bounded), scrapes GET /metrics twice WHILE the
# load runs (once the broker reports records coming in, and 2 s later), and
# runs `promtool check metrics` on each scrape. Fails on any
# promtool finding (a parse error or a lint problem: promtool exits non-zero
# for both), on a wrong Content-Type, or when loadgen fails. Prints
# "PASS name" / "FAIL name: reason" per check, the number of metric families
# scraped, and "N passed, M failed"; exits non-zero if anything failed.
#
# Why: Prometheus rejects a whole scrape for one malformed line, and the
# metrics that matter (rates, lag, request latencies) only exist under load;
# promtool (Debian's prometheus package) is the reference parser and linter.
#
# Builds nothing. Inputs (environment):
#   SHARDLOG_BIN   broker binary (default target/debug/shardlog)
#   LOADGEN_BIN    loadgen binary (default target/debug/loadgen)
#   PROMTOOL       promtool (default promtool on PATH)
#   LOAD_SECONDS   measured seconds of load (default 6)
#   PROMTOOL_KEEP=1 keep the temp dir (scrapes, logs) even when all pass

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

BIN=${SHARDLOG_BIN:-target/debug/shardlog}
LG=${LOADGEN_BIN:-target/debug/loadgen}
PROMTOOL=${PROMTOOL:-promtool}
LOAD_SECONDS=${LOAD_SECONDS:-6}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardlog-promtool.XXXXXX")
BROKER_PID=""
LOADGEN_PID=""
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: $2"; }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

on_exit() {
    for pid in "$LOADGEN_PID" "$BROKER_PID"; do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$FAILED" -eq 0 ] && [ "${PROMTOOL_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        rm -rf "$WORK/data"
        echo "scrapes and logs kept in $WORK" >&2
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

for b in "$BIN" "$LG"; do
    [ -x "$b" ] || { fail setup "$b not found (cargo build --workspace)"; finish; }
done
command -v "$PROMTOOL" >/dev/null || { fail setup "promtool not found (apt-get install --no-install-recommends prometheus)"; finish; }

# Two ports nothing listens on now, below the ephemeral range (tests/free_port.py says why).
{ read -r KAFKA_PORT; read -r ADMIN_PORT; } < <(python3 tests/free_port.py 2)
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"

"$BIN" start \
    --set "listeners=PLAINTEXT://$BOOTSTRAP" \
    --set "admin.listener=$ADMIN_URL" \
    --set "log.dirs=$WORK/data" \
    --set consumer.lag.sample.interval.ms=500 \
    --set consumer.lag.window.samples=5 \
    >"$WORK/broker.out" 2>"$WORK/broker.err" </dev/null &
BROKER_PID=$!
up=""
for _ in $(seq 1 300); do       # up to 30 s for both listeners
    kill -0 "$BROKER_PID" 2>/dev/null || break
    if grep -q "^shardlog listening on $BOOTSTRAP" "$WORK/broker.out" &&
        curl -fs -o /dev/null --max-time 2 "$ADMIN_URL/metrics"; then
        up=1
        break
    fi
    sleep 0.1
done
if [ -z "$up" ]; then
    fail setup "broker not listening on $BOOTSTRAP and $ADMIN_URL"
    tail -20 "$WORK/broker.err" | sed 's/^/    /'
    finish
fi

# A consumer group (group mode) as well as producers, so that group and lag
# metrics exist too; --rate keeps a 2-core machine responsive.
timeout 120 "$LG" --bootstrap-server "$BOOTSTRAP" --mode both --topic promtool-load \
    --partitions 4 --consumer-groups 1 --consumers 2 --group-mode group \
    --rate 20000 --record-size 512 --duration "$LOAD_SECONDS" --json --quiet \
    >"$WORK/loadgen.json" 2>"$WORK/loadgen.err" &
LOADGEN_PID=$!

# Scrape while loadgen runs: once the broker reports records coming in
# (GET /api/v1/cluster's throughput; loadgen first sets up its topic and
# group), then 2 s later; each scrape must also end with loadgen still running.
loaded=""
for _ in $(seq 1 300); do       # up to 30 s
    kill -0 "$LOADGEN_PID" 2>/dev/null || break
    if curl -fs --max-time 2 "$ADMIN_URL/api/v1/cluster" |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["throughput"]["records_in_per_sec"] > 0 else 1)' 2>/dev/null; then
        loaded=1
        break
    fi
    sleep 0.1
done
[ -n "$loaded" ] || fail load "the broker saw no records coming in while loadgen ran"
families=0
for n in 1 2; do
    [ -n "$loaded" ] || break
    [ "$n" = 1 ] || sleep 2
    scrape="$WORK/scrape-$n.txt"
    name="metrics-under-load-$n"
    ctype=$(curl -fsS --max-time 10 -o "$scrape" -w '%{content_type}' "$ADMIN_URL/metrics") || {
        fail "$name" "GET /metrics failed"
        continue
    }
    if ! kill -0 "$LOADGEN_PID" 2>/dev/null; then
        fail "$name" "loadgen had finished by the end of the scrape (raise LOAD_SECONDS)"
        continue
    fi
    if [[ "$ctype" != text/plain*version=0.0.4* ]]; then
        fail "$name" "Content-Type is '$ctype', not text/plain; version=0.0.4"
        continue
    fi
    if out=$("$PROMTOOL" check metrics <"$scrape" 2>&1); then
        families=$(grep -c '^# TYPE ' "$scrape")
        pass "$name ($families metric families, $(grep -vc '^#' "$scrape") samples)"
    else
        fail "$name" "promtool check metrics found problems"
        echo "$out" | head -30 | sed 's/^/    /'
    fi
done

wait "$LOADGEN_PID"
rc=$?
LOADGEN_PID=""
if [ $rc -eq 0 ]; then
    pass "loadgen (exit 0)"
else
    fail loadgen "exit status $rc"
    tail -5 "$WORK/loadgen.err" | sed 's/^/    /'
fi
kill -0 "$BROKER_PID" 2>/dev/null || fail broker-alive "the broker exited during the load"

echo "metric families: $families"
finish
