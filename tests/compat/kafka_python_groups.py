# Consumer groups with real clients: kafka-python, and kafka-python together
# with confluent-kafka (librdkafka) in one group.
#
#   --scenario range       two kafka-python members, RangePartitionAssignor
#   --scenario roundrobin  two kafka-python members, RoundRobinPartitionAssignor
#   --scenario mixed       one kafka-python member (RangePartitionAssignor) and
#                          one confluent-kafka member (partition.assignment.
#                          strategy=range): both name the protocol "range"
#
# Every scenario:
# 1. creates a 4-partition topic; starts the two members (each in its own
#    thread, group "<topic>-group") and waits until their assignments are
#    non-empty, disjoint, cover partitions 0..3 and stay so for 2 s; with
#    two members and 4 partitions each must own 2, in the assignor's shape
#    (range: {0,1}/{2,3}, roundrobin: {0,2}/{1,3});
# 2. produces 400 records (partition i % 4) only then, so no rebalance can
#    hand a partition over mid-way; the members must consume every one of
#    them exactly once between them, each only from its own partitions, with
#    the values that were produced at those offsets;
# 3. both members commit synchronously and close (LeaveGroup); the committed
#    offsets (read back with kafka-python's committed()) are the log ends;
# 4. 100 more records are produced and a new member (kafka-python; in the
#    mixed scenario confluent-kafka, which reads offsets kafka-python
#    committed) joins the group alone: it must get exactly the 100 new
#    records, i.e. resume from the committed offsets, not from the start.

import threading
import time

from compat_common import arg_parser, die, setup_logging

PARTITIONS = 4
N_FIRST = 400
N_SECOND = 100
STABLE_FOR = 2.0      # seconds an assignment must hold to count as settled
GRACE = 2.0           # keep polling this long after the expected count


class Member(threading.Thread):
    """A group member polled by its own thread (clients are not thread-safe,
    and a member blocked in a rebalance must not stall the other one)."""

    def __init__(self, name, topic):
        super().__init__(name=name, daemon=True)
        self.topic = topic
        self.lock = threading.Lock()
        self._assignment = frozenset()
        self._records = []          # (partition, offset, value)
        self.failure = None
        self.stop_event = threading.Event()
        self.commit_request = threading.Event()
        self.commit_done = threading.Event()
        self.commit_error = None
        self.finished = threading.Event()

    def assignment(self):
        with self.lock:
            return self._assignment

    def records(self):
        with self.lock:
            return list(self._records)

    def _set_assignment(self, parts):
        with self.lock:
            self._assignment = frozenset(parts)

    def _add(self, partition, offset, value):
        with self.lock:
            self._records.append((partition, offset, value))

    def _maybe_commit(self, commit):
        if self.commit_request.is_set():
            try:
                commit()
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                self.commit_error = repr(e)
            self.commit_request.clear()
            self.commit_done.set()

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.failure = repr(e)
        finally:
            self.finished.set()

    def commit(self, timeout):
        self.commit_done.clear()
        self.commit_request.set()
        if not self.commit_done.wait(timeout):
            die(f"{self.name}: synchronous commit did not finish within {timeout}s")
        if self.commit_error:
            die(f"{self.name}: commit failed: {self.commit_error}")

    def close(self, timeout):
        self.stop_event.set()
        if not self.finished.wait(timeout):
            die(f"{self.name}: close did not finish within {timeout}s")
        if self.failure:
            die(f"{self.name}: {self.failure}")


class KpMember(Member):
    def __init__(self, name, bootstrap, group, topic, assignor):
        super().__init__(name, topic)
        self.bootstrap, self.group, self.assignor = bootstrap, group, assignor

    def loop(self):
        from kafka import KafkaConsumer

        c = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.name,
            group_id=self.group,
            partition_assignment_strategy=[self.assignor],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        try:
            c.subscribe([self.topic])
            while not self.stop_event.is_set():
                for tp, recs in c.poll(timeout_ms=200).items():
                    for r in recs:
                        self._add(r.partition, r.offset, r.value)
                self._set_assignment(tp.partition for tp in c.assignment() if tp.topic == self.topic)
                # synchronous, of the consumed positions
                self._maybe_commit(lambda: c.commit(timeout_ms=30000))
        finally:
            c.close(autocommit=False, timeout_ms=30000)   # LeaveGroup


class CkMember(Member):
    def __init__(self, name, bootstrap, group, topic):
        super().__init__(name, topic)
        self.bootstrap, self.group = bootstrap, group

    def loop(self):
        from confluent_kafka import Consumer

        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "client.id": self.name,
            "group.id": self.group,
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        })
        try:
            c.subscribe([self.topic])
            while not self.stop_event.is_set():
                msg = c.poll(0.2)
                if msg is not None:
                    err = msg.error()
                    if err is None:
                        self._add(msg.partition(), msg.offset(), msg.value())
                    elif err.fatal():
                        raise RuntimeError(f"fatal consumer error: {err}")
                    else:
                        print(f"{self.name}: consumer error (ignored): {err}", flush=True)
                self._set_assignment(tp.partition for tp in c.assignment() if tp.topic == self.topic)
                self._maybe_commit(lambda: c.commit(asynchronous=False))
        finally:
            c.close()                            # LeaveGroup


def check_alive(members):
    for m in members:
        if m.failure:
            die(f"{m.name}: {m.failure}")
        if m.finished.is_set() and not m.stop_event.is_set():
            die(f"{m.name}: member thread ended on its own")


def wait_settled(members, timeout, what):
    """Wait until the members' assignments are non-empty, disjoint, cover
    0..PARTITIONS-1 and have not changed for STABLE_FOR seconds."""
    full = frozenset(range(PARTITIONS))
    deadline = time.monotonic() + timeout
    last, since = None, None
    while True:
        check_alive(members)
        snap = tuple(m.assignment() for m in members)
        ok = (all(snap) and sum(len(s) for s in snap) == PARTITIONS
              and frozenset().union(*snap) == full)
        now = time.monotonic()
        if ok:
            if snap == last:
                if now - since >= STABLE_FOR:
                    return snap
            else:
                last, since = snap, now
        else:
            last = None
        if now > deadline:
            die(f"{what}: assignments did not settle into a disjoint, complete split of "
                f"partitions 0..{PARTITIONS - 1} within {timeout}s; last seen: "
                f"{ {m.name: sorted(s) for m, s in zip(members, snap)} }")
        time.sleep(0.1)


def create_topic(bootstrap, topic):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-groups-admin")
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)], timeout_ms=10000)
    finally:
        admin.close()


def produce(bootstrap, topic, start, count, timeout):
    """Produce records start..start+count-1 to partition i % PARTITIONS;
    returns {(partition, offset): value}."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="compat-groups-producer",
                      acks="all", linger_ms=5)
    futures = []
    for i in range(start, start + count):
        value = f"group-record-{i:05d}".encode()
        futures.append((i, value, p.send(topic, key=f"k{i}".encode(), value=value,
                                         partition=i % PARTITIONS)))
    p.flush(timeout=timeout)
    out = {}
    for i, value, fut in futures:
        try:
            md = fut.get(timeout=1)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            die(f"produce of record {i} failed: {e!r}")
        out[(md.partition, md.offset)] = value
    p.close()
    return out


def wait_consumed(members, baseline, expected, timeout, what, owned=None):
    """Wait until the members, together, have consumed every record of
    `expected` ({(partition, offset): value}) after their first
    baseline[name] records; then poll GRACE longer and check: each record
    exactly once, nothing else, and (if `owned` is given) each member only
    from its own partitions."""
    deadline = time.monotonic() + timeout
    grace_end = None
    while True:
        check_alive(members)
        new = {m.name: m.records()[baseline.get(m.name, 0):] for m in members}
        seen = {(p, o) for recs in new.values() for p, o, _ in recs}
        now = time.monotonic()
        if grace_end is None and set(expected) <= seen:
            grace_end = now + GRACE
        if grace_end is not None and now >= grace_end:
            break
        if now > deadline:
            missing = sorted(set(expected) - seen)
            die(f"{what}: {len(missing)} of {len(expected)} records not consumed within "
                f"{timeout}s (first missing (partition, offset): {missing[:5]}; got "
                f"{ {n: len(r) for n, r in new.items()} })")
        time.sleep(0.1)
    counts = {}
    for name, recs in new.items():
        for p, o, v in recs:
            counts[(p, o)] = counts.get((p, o), 0) + 1
            if (p, o) not in expected:
                die(f"{what}: {name} consumed partition {p} offset {o}, which is not one of "
                    f"the records it should get (resumed from the wrong offset?)")
            if v != expected[(p, o)]:
                die(f"{what}: partition {p} offset {o}: value {v!r}, produced {expected[(p, o)]!r}")
            if owned is not None and p not in owned[name]:
                die(f"{what}: {name} consumed from partition {p}, which is assigned to another "
                    f"member (its assignment: {sorted(owned[name])})")
    dups = sorted(k for k, n in counts.items() if n > 1)
    if dups:
        die(f"{what}: {len(dups)} records consumed more than once, e.g. {dups[:5]}")
    return {name: len(recs) for name, recs in new.items()}


def committed_offsets(bootstrap, group, topic, timeout):
    """{partition: committed offset} as kafka-python's committed() (OffsetFetch) reads it."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="compat-groups-offset-reader",
                      group_id=group, enable_auto_commit=False)
    try:
        return {p: c.committed(TopicPartition(topic, p), timeout_ms=int(timeout * 1000))
                for p in range(PARTITIONS)}
    finally:
        c.close(autocommit=False, timeout_ms=10000)


def main():
    p = arg_parser("consumer groups with kafka-python (+ confluent-kafka)")
    p.add_argument("--scenario", required=True, choices=["range", "roundrobin", "mixed"])
    args = p.parse_args()
    setup_logging()
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    bs, topic, t = args.bootstrap, args.topic, args.timeout
    group = f"{topic}-group"
    create_topic(bs, topic)

    if args.scenario == "range":
        members = [KpMember("kp-range-1", bs, group, topic, RangePartitionAssignor),
                   KpMember("kp-range-2", bs, group, topic, RangePartitionAssignor)]
    elif args.scenario == "roundrobin":
        members = [KpMember("kp-roundrobin-1", bs, group, topic, RoundRobinPartitionAssignor),
                   KpMember("kp-roundrobin-2", bs, group, topic, RoundRobinPartitionAssignor)]
    else:
        members = [KpMember("kp-mixed", bs, group, topic, RangePartitionAssignor),
                   CkMember("ck-mixed", bs, group, topic)]
    for m in members:
        m.start()

    # 1. settle
    split = wait_settled(members, t, f"{args.scenario}: two members")
    shapes = {frozenset(map(frozenset, s)) for s in
              ([{0, 1}, {2, 3}], [{0, 2}, {1, 3}])}
    want_shape = frozenset(map(frozenset, [{0, 2}, {1, 3}] if args.scenario == "roundrobin"
                               else [{0, 1}, {2, 3}]))
    got_shape = frozenset(split)
    if got_shape != want_shape:
        hint = " (the other assignor's shape)" if got_shape in shapes else ""
        die(f"{args.scenario}: assignment {[sorted(s) for s in split]} is not what the "
            f"{'roundrobin' if args.scenario == 'roundrobin' else 'range'} assignor gives "
            f"({[sorted(s) for s in want_shape]}){hint}")
    owned = {m.name: s for m, s in zip(members, split)}

    # 2. produce, consume once between them
    first = produce(bs, topic, 0, N_FIRST, t)
    got = wait_consumed(members, {}, first, t, f"{args.scenario}: first {N_FIRST} records", owned)
    if wait_settled(members, t, f"{args.scenario}: after consuming") != split:
        die(f"{args.scenario}: the assignment changed while consuming")

    # 3. commit, leave, check the committed offsets
    for m in members:
        m.commit(t)
    for m in members:
        m.close(t)
    ends = {}
    for (part, off) in first:
        ends[part] = max(ends.get(part, 0), off + 1)
    committed = committed_offsets(bs, group, topic, t)
    if committed != ends:
        die(f"{args.scenario}: committed offsets {committed}, expected the log ends {ends}")

    # 4. a new member resumes from the committed offsets
    second = produce(bs, topic, N_FIRST, N_SECOND, t)
    if args.scenario == "mixed":
        newcomer = CkMember("ck-resume", bs, group, topic)
    else:
        assignor = RoundRobinPartitionAssignor if args.scenario == "roundrobin" else RangePartitionAssignor
        newcomer = KpMember("kp-resume", bs, group, topic, assignor)
    newcomer.start()
    wait_settled([newcomer], t, f"{args.scenario}: new member alone")
    wait_consumed([newcomer], {}, second, t, f"{args.scenario}: new member after the commit")
    newcomer.close(t)

    print(f"ok: {args.scenario}: assignment {[sorted(s) for s in split]}, "
          f"{N_FIRST} records consumed once ({got}), committed {committed}, "
          f"new member resumed with exactly the {N_SECOND} later records")


if __name__ == "__main__":
    main()
