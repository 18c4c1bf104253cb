#!/usr/bin/env bash
# bench/cluster-failover.sh — how long a 3-node shardlog cluster takes to recover from a kill -9.
#
# What: starts a 3-node cluster of combined nodes (broker + controller, one shard each, nodes
#       spread over cores 0 and 1) on 127.0.0.1 from the release binary, then TRIES times:
#       (a) controller failover: finds the quorum leader (DescribeQuorum, key 55, sent raw by a
#           few lines of python), kill -9s it and measures until `shardlog topic create` through
#           a surviving node succeeds (a new topic per attempt, an attempt every 50 ms, each
#           bounded by `timeout`); then restarts it and waits until all three nodes list all
#           three brokers again;
#       (b) broker fencing: creates a 6-partition topic, kill -9s a broker that is not the quorum
#           leader and measures until `shardlog topic describe --output json` through a survivor
#           shows every partition it led without a leader (-1), polled every 50 ms; then
#           restarts it and waits until it leads them again.
#       Prints each try's time and the min / median / max of each kind.
# Why:  the issue's "Done when": a new quorum leader and CreateTopics within 3 s of losing the
#       active controller; a dead broker fenced after broker.session.timeout.ms.
# How:  bash bench/cluster-failover.sh   (builds the release binary first if it is missing;
#       SHARDLOG_BIN overrides). Needs python3 and jq. All processes are killed and the data
#       directories removed on exit (also on Ctrl-C).
# Env (defaults): TRIES (10), SESSION_TIMEOUT_MS (3000), HEARTBEAT_INTERVAL_MS (500),
#       ELECTION_TIMEOUT_MS (1000), ATTEMPT_TIMEOUT_S (2: bound of one CLI call),
#       GIVE_UP_S (60: a try that has not recovered by then fails the run),
#       KEEP=1 keeps the data directories and logs (printed path).
set -euo pipefail

TRIES=${TRIES:-10}
SESSION_TIMEOUT_MS=${SESSION_TIMEOUT_MS:-3000}
HEARTBEAT_INTERVAL_MS=${HEARTBEAT_INTERVAL_MS:-500}
ELECTION_TIMEOUT_MS=${ELECTION_TIMEOUT_MS:-1000}
ATTEMPT_TIMEOUT_S=${ATTEMPT_TIMEOUT_S:-2}
GIVE_UP_S=${GIVE_UP_S:-60}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${SHARDLOG_BIN:-}" ]]; then
    SHARDLOG_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/shardlog
    if [[ ! -x "$SHARDLOG_BIN" ]]; then
        echo "building $SHARDLOG_BIN" >&2
        (cd "$ROOT" && cargo build --release --bin shardlog) >&2
    fi
fi
BIN=$SHARDLOG_BIN
for tool in python3 jq timeout; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardlog-failover.XXXXXX")
declare -A PID=()

cleanup() {
    local rc=$?
    for n in "${!PID[@]}"; do
        kill -9 "${PID[$n]}" 2>/dev/null || true
        wait "${PID[$n]}" 2>/dev/null || true
    done
    if [[ $KEEP == 1 || $rc != 0 ]]; then
        echo "data and logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
log() { echo "[$(date +%T.%3N)] $*" >&2; }

# Six free ports: node n's client port is PORTS[2n-2], its controller port PORTS[2n-1].
read -r -a PORTS < <(python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
)
cport() { echo "${PORTS[$((2 * $1 - 2))]}"; }
qport() { echo "${PORTS[$((2 * $1 - 1))]}"; }
addr() { echo "127.0.0.1:$(cport "$1")"; }
VOTERS="1@127.0.0.1:$(qport 1),2@127.0.0.1:$(qport 2),3@127.0.0.1:$(qport 3)"
CLUSTER_ID=$("$BIN" storage random-uuid)

node_sets() {
    local n=$1
    echo --set "log.dirs=$WORK/node$n" --set "node.id=$n" --set process.roles=broker,controller \
        --set "controller.quorum.voters=$VOTERS" \
        --set "listeners=PLAINTEXT://127.0.0.1:$(cport "$n"),CONTROLLER://127.0.0.1:$(qport "$n")"
}

# The quorum leader as node $1 sees it (DescribeQuorum v0 of __cluster_metadata-0), or -1.
quorum_leader() {
    python3 - "$(cport "$1")" <<'EOF' 2>/dev/null || echo -1
import socket, struct, sys
def uvarint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, i
name = b"__cluster_metadata"
body = struct.pack(">hhih", 55, 0, 1, 5) + b"bench" + b"\x00"          # header v2, no tags
body += b"\x02" + bytes([len(name) + 1]) + name + b"\x02" + struct.pack(">i", 0) + b"\x00" + b"\x00" + b"\x00"
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(struct.pack(">i", len(body)) + body)
def readn(n):
    out = b""
    while len(out) < n:
        c = s.recv(n - len(out))
        if not c: raise EOFError
        out += c
    return out
r = readn(struct.unpack(">i", readn(4))[0])
i = 4                                   # correlation id
_, i = uvarint(r, i)                    # header tags (count 0)
err = struct.unpack(">h", r[i:i + 2])[0]; i += 2
_, i = uvarint(r, i)                    # topics
n, i = uvarint(r, i); i += n - 1        # topic name
_, i = uvarint(r, i)                    # partitions
_, perr, leader = struct.unpack(">ihi", r[i:i + 10])
print(leader if err == 0 and perr == 0 else -1)
EOF
}

start_node() {
    local n=$1
    # shellcheck disable=SC2046
    SHARDLOG_LOG=${SHARDLOG_LOG:-info} "$BIN" start $(node_sets "$n") --set "shard.cores=$(((n - 1) % 2))" \
        --set "broker.session.timeout.ms=$SESSION_TIMEOUT_MS" --set "broker.heartbeat.interval.ms=$HEARTBEAT_INTERVAL_MS" \
        --set "controller.quorum.election.timeout.ms=$ELECTION_TIMEOUT_MS" >>"$WORK/node$n.log" 2>&1 &
    PID[$n]=$!
}

kill9() {
    kill -9 "${PID[$1]}"
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}

# Fails the run if a node this script did not kill has exited (its log's tail is printed).
check_alive() {
    local n
    for n in "${!PID[@]}"; do
        if ! kill -0 "${PID[$n]}" 2>/dev/null; then
            log "node $n (pid ${PID[$n]}) exited unexpectedly; the tail of its log:"
            tail -n 20 "$WORK/node$n.log" >&2
            exit 1
        fi
    done
}

# Waits (up to GIVE_UP_S) until `cond` succeeds, polling every 50 ms; fails the run otherwise
# (or as soon as a node exits unexpectedly).
wait_for() {
    local what=$1
    shift
    local deadline=$(($(now_ms) + GIVE_UP_S * 1000))
    until "$@"; do
        check_alive
        if (($(now_ms) > deadline)); then
            log "gave up after ${GIVE_UP_S}s waiting for $what"
            exit 1
        fi
        sleep 0.05
    done
}

brokers_of() { timeout "$ATTEMPT_TIMEOUT_S" "$BIN" cluster info --bootstrap-server "$(addr "$1")" --output json 2>/dev/null | jq -c '[.brokers[].id]' 2>/dev/null; }

# All running nodes list exactly the running nodes.
formed() {
    local want n
    want=$(printf '%s\n' "${!PID[@]}" | sort -n | jq -sc .)
    for n in "${!PID[@]}"; do
        [[ "$(brokers_of "$n")" == "$want" ]] || return 1
    done
}

agreed_leader() {
    local n l first=""
    for n in "${!PID[@]}"; do
        l=$(quorum_leader "$n")
        ((l >= 1)) || return 1
        [[ -z $first || $first == "$l" ]] || return 1
        first=$l
    done
    LEADER=$first
}

# Leaders of topic $2 as node $1 sees them: a JSON array, partition order.
leaders() { timeout "$ATTEMPT_TIMEOUT_S" "$BIN" topic describe "$2" --bootstrap-server "$(addr "$1")" --output json 2>/dev/null | jq -c '[.[0].partitions[].leader]' 2>/dev/null; }

create_topic() { timeout "$ATTEMPT_TIMEOUT_S" "$BIN" topic create "$2" --partitions "$3" --replication-factor 1 --bootstrap-server "$(addr "$1")" >/dev/null 2>&1; }

log "binary $BIN, cluster $CLUSTER_ID, voters $VOTERS, work dir $WORK"
for n in 1 2 3; do
    # shellcheck disable=SC2046
    "$BIN" storage format --cluster-id="$CLUSTER_ID" $(node_sets "$n") >/dev/null
done
t0=$(now_ms)
for n in 1 2 3; do start_node "$n"; done
wait_for "the cluster to form" formed
log "cluster formed in $(($(now_ms) - t0)) ms"

CTRL=()
FENCE=()
for try in $(seq 1 "$TRIES"); do
    # (a) controller failover
    wait_for "an agreed quorum leader" agreed_leader
    old=$LEADER
    survivors=()
    for n in 1 2 3; do [[ $n == "$old" ]] || survivors+=("$n"); done
    kill9 "$old"
    t=$(now_ms)
    attempt=0
    until create_topic "${survivors[$((attempt % 2))]}" "failover-$try-$attempt" 3; do
        attempt=$((attempt + 1))
        check_alive
        if (($(now_ms) - t > GIVE_UP_S * 1000)); then log "try $try: CreateTopics never succeeded"; exit 1; fi
        sleep 0.05
    done
    ms=$(($(now_ms) - t))
    CTRL+=("$ms")
    wait_for "a new quorum leader" agreed_leader
    log "try $try: controller failover: killed leader $old, CreateTopics ok after ${ms} ms ($((attempt + 1)) attempts), new leader $LEADER"
    start_node "$old"
    wait_for "node $old to rejoin" formed

    # (b) broker fencing
    wait_for "an agreed quorum leader" agreed_leader
    victim=0
    for n in 1 2 3; do [[ $n == "$LEADER" ]] || { victim=$n; break; }; done
    other=$((LEADER))
    topic="fence-$try"
    wait_for "CreateTopics $topic" create_topic "$other" "$topic" 6
    before_ok() { before=$(leaders "$other" "$topic") && [[ -n $before ]] && ! jq -e 'any(. < 0)' <<<"$before" >/dev/null; }
    wait_for "leaders of $topic" before_ok
    if ! jq -e "any(. == $victim)" <<<"$before" >/dev/null; then
        log "try $try: broker $victim leads no partition of $topic ($before); skipped"
        continue
    fi
    kill9 "$victim"
    t=$(now_ms)
    fenced() {
        local now
        now=$(leaders "$other" "$topic") || return 1
        [[ -n $now ]] || return 1
        # every partition the victim led is leaderless now; no other changed
        jq -e --argjson b "$before" --argjson v "$victim" \
            '[range(0; length) as $i | if $b[$i] == $v then .[$i] == -1 else .[$i] == $b[$i] end] | all' <<<"$now" >/dev/null
    }
    wait_for "broker $victim to be fenced" fenced
    ms=$(($(now_ms) - t))
    FENCE+=("$ms")
    log "try $try: broker fencing: killed broker $victim, its partitions leaderless after ${ms} ms (session timeout ${SESSION_TIMEOUT_MS} ms)"
    start_node "$victim"
    back() { [[ "$(leaders "$other" "$topic")" == "$before" ]]; }
    wait_for "broker $victim to lead again" back
    wait_for "node $victim to rejoin" formed
done

stats() {
    local name=$1
    shift
    if (($# == 0)); then
        echo "$name: no samples"
        return
    fi
    printf '%s\n' "$@" | sort -n | awk -v name="$name" '{ v[NR] = $1 } END {
        med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s: n=%d min=%d ms median=%d ms max=%d ms\n", name, NR, v[1], med, v[NR] }'
}
echo "per try (ms): controller failover: ${CTRL[*]:-}"
echo "per try (ms): broker fencing:      ${FENCE[*]:-}"
stats "controller failover (kill -9 of the quorum leader -> CreateTopics ok)" "${CTRL[@]}"
stats "broker fencing (kill -9 of a broker -> its partitions leaderless)" "${FENCE[@]}"
