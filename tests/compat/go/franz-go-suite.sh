#!/usr/bin/env bash
# franz-go's own integration suite (the tests of its pkg/kgo package) used as
# an external conformance gauge for a single Kafka-compatible broker -- the
# suite other Kafka-compatible brokers (Tansu) report their score against.
#
# Usage: franz-go-suite.sh BOOTSTRAP [RESULTS_DIR]
#   BOOTSTRAP    host:port of the broker under test (e.g. 127.0.0.1:9092)
#   RESULTS_DIR  where the go test -json stream and logs go
#                (default ${TMPDIR:-/tmp}/franz-go-suite-<epoch>)
#
# Tunables (environment):
#   FRANZ_GO_VERSION  franz-go module version (default v1.22.3, pinned so a
#                     release cannot change the verdict overnight)
#   SUITE_TIMEOUT     seconds, go test -timeout for the whole package
#                     (default 1200); the process is also bounded by
#                     `timeout` (+60 s)
#   RUN               go test -run regexp to restrict the tests (default: all)
#   KGO_TEST_RF       replication factor of the topics the tests create
#                     (default 1: shardlog is a single broker; franz-go's own
#                     CI uses 1 too)
#   KGO_TEST_RECORDS  records per produce/consume test (default: franz-go's
#                     500000; its CI runs with that)
#   KGO_TEST_UNSAFE   if set, lets the transaction tests use
#                     EndBeginTxnUnsafe (Kafka allows it; franz-go's CI does
#                     not set it)
#   GO                go binary (default: `go` on PATH, else /usr/local/go/bin/go)
#
# Source: the module is fetched through the Go module proxy into the module
# cache (go mod download) and tested from there; nothing of franz-go is
# copied into this repository. Needs network only the first time.
#
# Prints one line per top-level test ("PASS name (1.2s)", "FAIL name",
# "SKIP name: reason") and a final line "N passed, M failed, K skipped".
# Exit status: 0 if nothing failed, 1 if a test failed, 2 if the suite could
# not be built or run.
set -u
BOOTSTRAP=${1:?usage: $0 host:port [results_dir]}
VERSION=${FRANZ_GO_VERSION:-v1.22.3}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-1200}
RES=${2:-${TMPDIR:-/tmp}/franz-go-suite-$(date +%s)}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

log() { echo "[franz-go] $*" >&2; }

[ -x "$GO" ] || { log "no go toolchain (set GO=/path/to/go)"; exit 2; }
command -v jq >/dev/null || { log "jq is required to read go test -json"; exit 2; }
mkdir -p "$RES"

# Fetch the pinned module; its directory in the module cache is read-only,
# which go test does not mind (build output goes to GOCACHE).
DIR=$(cd /tmp && timeout 300 "$GO" mod download -json "github.com/twmb/franz-go@$VERSION" \
        | jq -r '.Dir // empty')
[ -d "${DIR:-}" ] || { log "go mod download github.com/twmb/franz-go@$VERSION failed"; exit 2; }
log "franz-go $VERSION from $DIR against $BOOTSTRAP; results in $RES"

# Compile first (bounded) so that a build failure is not counted as test failures.
( cd "$DIR" && timeout 900 "$GO" test -count=1 -run '^$' ./pkg/kgo/ ) >"$RES/build.log" 2>&1 \
    || { log "building the kgo tests failed:"; tail -20 "$RES/build.log" >&2; exit 2; }

# go test's -timeout panics the package (all running tests then report FAIL);
# `timeout` is the outer bound in case even that hangs.
( cd "$DIR" &&
  KGO_SEEDS=$BOOTSTRAP KGO_TEST_RF=${KGO_TEST_RF:-1} \
    timeout -k 10 $((SUITE_TIMEOUT + 60)) "$GO" test -count=1 -json -timeout "${SUITE_TIMEOUT}s" \
    ${RUN:+-run "$RUN"} ./pkg/kgo/ ) >"$RES/test.json" 2>"$RES/stderr.log"
rc=$?
log "go test exited with status $rc"

# Output lines of each test (for failure analysis) go to RES/logs/NAME.log.
mkdir -p "$RES/logs"
jq -r 'select(.Action=="output" and .Test != null) | [.Test, .Output] | @tsv' "$RES/test.json" \
    | awk -F'\t' -v d="$RES/logs" '{ t=$1; sub(/\/.*/, "", t); gsub(/\\n$/, "", $2); gsub(/\\t/, "\t", $2); print $2 >> (d "/" t ".log") }'

# Top-level tests only (subtests roll up into their parent).
jq -r 'select((.Action=="pass" or .Action=="fail" or .Action=="skip") and .Test != null and (.Test | contains("/") | not))
       | [.Action, .Test, (.Elapsed // 0)] | @tsv' "$RES/test.json" >"$RES/results.tsv"
# A test still running when the package timed out has no verdict: a failure.
jq -r 'select(.Action=="run" and .Test != null and (.Test | contains("/") | not)) | .Test' \
    "$RES/test.json" | sort -u >"$RES/started.txt"
cut -f2 "$RES/results.tsv" | sort -u >"$RES/finished.txt"

pass=0 fail=0 skip=0
while IFS=$'\t' read -r action name elapsed; do
    case $action in
    pass) echo "PASS $name (${elapsed}s)"; pass=$((pass + 1)) ;;
    fail) echo "FAIL $name (${elapsed}s)"; fail=$((fail + 1)) ;;
    skip) why=$(grep -m1 -E '_test\.go:[0-9]+: ' "$RES/logs/$name.log" 2>/dev/null | sed -E 's/^[[:space:]]*//')
          echo "SKIP $name${why:+: $why}"; skip=$((skip + 1)) ;;
    esac
done <"$RES/results.tsv"
for name in $(comm -23 "$RES/started.txt" "$RES/finished.txt"); do
    echo "FAIL $name (no verdict: still running when the run ended)"; fail=$((fail + 1))
done
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    log "go test failed outside any test:"; tail -20 "$RES/stderr.log" >&2
    jq -r 'select(.Test == null and .Action=="output") | .Output' "$RES/test.json" | tail -20 >&2
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
