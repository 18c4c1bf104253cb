# confluent-kafka (librdkafka >= 2.10) with the consumer group protocol of
# KIP-848 (group.protocol=consumer): the broker assigns partitions with its
# server-side assignor and moves them between members incrementally.
#
# 1. Creates <topic> with 4 partitions and produces 40 keyed records.
# 2. Consumer A joins alone, gets all 4 partitions, consumes 20 records,
#    commits them synchronously (OffsetCommit v9, member epoch) and closes
#    (leaving heartbeat).
# 3. 20 more records; consumers B and C join the group: they end up with 2
#    partitions each, disjoint, and no partition is ever owned by both at
#    once (checked in the rebalance callbacks). Together they consume every
#    record A did not commit, once each (OffsetFetch v9): a member commits in
#    its revocation callback, as applications do, so a partition that moves
#    from B to C is read on from where B stopped.
# 4. AdminClient describes the group: a consumer-protocol group, Stable,
#    assignor "uniform", 2 members with 2 partitions each.
# 5. C closes: B gets all 4 partitions back.

import time

from compat_common import arg_parser, die, setup_logging

PARTITIONS = 4


class Member:
    """One consumer; owner records every partition -> member name across members."""

    def __init__(self, name, bootstrap, group, topic, owner, violations):
        from confluent_kafka import Consumer, KafkaError, KafkaException

        self.name = name
        self.owned = set()
        self.consumed = []
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": f"compat-cgp-{name}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })

        def on_assign(_consumer, partitions):
            for p in partitions:
                other = owner.get(p.partition)
                if other is not None and other != name:
                    violations.append(f"partition {p.partition} given to {name} while {other} owned it")
                owner[p.partition] = name
                self.owned.add(p.partition)

        def on_revoke(consumer, partitions):
            # Commit what was consumed before the partitions move: without it the
            # next owner starts from the last commit and reads some records again
            # (at-least-once, the client's choice, not a broker fault).
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    violations.append(f"{name}: commit on revocation failed: {e}")
            for p in partitions:
                if owner.get(p.partition) == name:
                    del owner[p.partition]
                self.owned.discard(p.partition)

        self.c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)

    def poll(self):
        m = self.c.poll(0.1)
        if m is None:
            return
        if m.error():
            print(f"{self.name}: {m.error()}")
            return
        self.consumed.append((m.partition(), m.offset()))


def poll_until(members, what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            state = {m.name: sorted(m.owned) for m in members}
            die(f"timed out waiting for {what}: owned {state}")
        for m in members:
            m.poll()


def main():
    args = arg_parser(__doc__).parse_args()
    setup_logging()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap, topic, timeout = args.bootstrap, args.topic, args.timeout
    group = f"{topic}-group"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, PARTITIONS, 1)], operation_timeout=timeout).values():
        fut.result(timeout)

    produced = set()

    def produce(n, tag):
        p = Producer({"bootstrap.servers": bootstrap})

        def delivered(err, msg):
            if err is not None:
                die(f"produce: {err}")
            produced.add((msg.partition(), msg.offset()))

        for i in range(n):
            p.produce(topic, key=f"{tag}-{i}", value=f"{tag}-{i}", partition=i % PARTITIONS, on_delivery=delivered)
        if p.flush(timeout) != 0:
            die("produce: records left unflushed")

    produce(40, "first")
    owner, violations = {}, []
    a = Member("a", bootstrap, group, topic, owner, violations)
    poll_until([a], "a to own all partitions", lambda: a.owned == set(range(PARTITIONS)), timeout)
    poll_until([a], "a to consume 20 records", lambda: len(a.consumed) >= 20, timeout)
    a.c.commit(asynchronous=False)
    a.c.close()
    owner.clear()

    produce(20, "second")
    b = Member("b", bootstrap, group, topic, owner, violations)
    c = Member("c", bootstrap, group, topic, owner, violations)
    want = len(produced) - len(a.consumed)
    poll_until([b, c], "b and c to split 2/2 and consume the rest",
               lambda: len(b.owned) == 2 and len(c.owned) == 2 and not (b.owned & c.owned)
               and len(b.consumed) + len(c.consumed) >= want, timeout)
    end = time.monotonic() + 2   # anything more would be a duplicate
    while time.monotonic() < end:
        b.poll()
        c.poll()
    seen = a.consumed + b.consumed + c.consumed
    if len(seen) != len(set(seen)):
        die(f"records consumed twice: {len(seen) - len(set(seen))}")
    if set(seen) != produced:
        die(f"records not consumed: {sorted(produced - set(seen))[:10]}")
    if violations:
        die(f"a partition had two owners: {violations}")

    d = admin.describe_consumer_groups([group])[group].result(timeout)
    kind = getattr(d, "type", None)
    if kind is not None and "CONSUMER" not in str(kind).upper():
        die(f"described group type {kind}, expected the consumer protocol")
    if "STABLE" not in str(d.state).upper():
        die(f"described group state {d.state}, expected Stable")
    if d.partition_assignor != "uniform":
        die(f"described assignor {d.partition_assignor!r}, expected 'uniform'")
    sizes = sorted(len(m.assignment.topic_partitions) for m in d.members)
    if sizes != [2, 2]:
        die(f"described members' assignments {sizes}, expected [2, 2]")

    c.c.close()
    poll_until([b], "b to own all partitions after c left", lambda: b.owned == set(range(PARTITIONS)), timeout)
    b.c.close()
    if violations:
        die(f"a partition had two owners: {violations}")
    print(f"consumer protocol: {len(seen)} records once each across 3 members, group described as {kind}, {d.state}")


if __name__ == "__main__":
    main()
