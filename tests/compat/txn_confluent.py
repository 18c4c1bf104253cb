# confluent-kafka (librdkafka) transactions (KIP-98, KIP-447): what
# exactly-once applications built on the confluent clients need.
#
# 1. Creates <topic>-in and <topic>-out, 2 partitions each.
# 2. A transactional Producer (transactional.id <topic>-txn):
#    transaction 1 writes 10 records "commit-i" to -out and commits;
#    transaction 2 writes 10 records "abort-i", flushes them (so they are in
#    the log) and aborts.
# 3. Consume-transform-produce: 20 plain records "in-i" go to -in; a
#    read_committed group Consumer (group <topic>-group, no auto commit)
#    reads all 20; one transaction writes "ctp-in-i" for each to -out (same
#    partition), send_offsets_to_transaction(position, group metadata),
#    commit.
# 4. Checks: a read_committed Consumer of -out sees exactly the 30 committed
#    records (commit-* and ctp-*, no abort-*) in produce order per
#    partition; a read_uncommitted one sees all 40; the group's committed
#    offsets on -in are its end offsets (committed by the transaction).

import time

from compat_common import arg_parser, ck_consume_all, die, setup_logging

PARTITIONS = 2
N_TXN = 10
N_IN = 20


def create_topics(bootstrap, names, timeout):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names],
                                  operation_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            die(f"create topic {name}: {e!r}")


class Deliveries:
    """Delivery-report bookkeeping for one confluent-kafka Producer."""

    def __init__(self):
        self.results = {}

    def cb(self, tag):
        def on_delivery(err, msg):
            self.results[tag] = (err, msg.partition(), msg.offset())
        return on_delivery

    def check(self, tags, what):
        for tag in tags:
            res = self.results.get(tag)
            if res is None:
                die(f"{what}: no delivery report for {tag}")
            if res[0] is not None:
                die(f"{what}: {tag} not delivered: {res[0]}")


def produce(producer, deliveries, topic, items):
    """items: [(partition, value)]; returns the delivery tags (the values)."""
    for part, value in items:
        while True:
            try:
                producer.produce(topic, value=value.encode(), partition=part,
                                 on_delivery=deliveries.cb(value))
                break
            except BufferError:          # local queue full: serve callbacks, retry
                producer.poll(0.1)
        producer.poll(0)
    return [v for _, v in items]


def main():
    args = arg_parser("confluent-kafka transactions").parse_args()
    setup_logging()
    from confluent_kafka import Consumer, Producer, TopicPartition

    t = args.timeout
    t_in, t_out = f"{args.topic}-in", f"{args.topic}-out"
    group = f"{args.topic}-group"
    create_topics(args.bootstrap, [t_in, t_out], t)

    d = Deliveries()
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "client.id": "compat-confluent-txn",
        "transactional.id": f"{args.topic}-txn",
        "transaction.timeout.ms": 60000,
    })
    try:
        producer.init_transactions(t)

        # 2. commit one, abort one
        producer.begin_transaction()
        tags = produce(producer, d, t_out, [(i % PARTITIONS, f"commit-{i}") for i in range(N_TXN)])
        producer.commit_transaction(t)
        d.check(tags, "committed transaction")

        producer.begin_transaction()
        tags = produce(producer, d, t_out, [(i % PARTITIONS, f"abort-{i}") for i in range(N_TXN)])
        left = producer.flush(t)
        if left:
            die(f"{left} records of the transaction to abort still undelivered after {t}s")
        d.check(tags, "transaction to abort (flushed before the abort)")
        producer.abort_transaction(t)

        # 3. consume-transform-produce
        plain = Producer({"bootstrap.servers": args.bootstrap, "client.id": "compat-confluent-plain"})
        tags = produce(plain, d, t_in, [(i % PARTITIONS, f"in-{i}") for i in range(N_IN)])
        if plain.flush(t):
            die(f"input records still undelivered after {t}s")
        d.check(tags, "input")

        consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "client.id": "compat-confluent-ctp",
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        })
        try:
            consumer.subscribe([t_in])
            got = []
            deadline = time.monotonic() + t
            while len(got) < N_IN:
                if time.monotonic() > deadline:
                    die(f"consume-transform-produce: read {len(got)} of {N_IN} input records in {t}s")
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().fatal():
                        die(f"fatal consumer error: {msg.error()}")
                    print(f"consumer error (ignored): {msg.error()}", flush=True)
                    continue
                got.append((msg.partition(), msg.value().decode()))
            producer.begin_transaction()
            tags = produce(producer, d, t_out, [(p, f"ctp-{v}") for p, v in got])
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), t)
            producer.commit_transaction(t)
            d.check(tags, "consume-transform-produce transaction")

            ends = {}
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(t_in, p), timeout=t)
                ends[p] = high
            # Kafka writes the markers (which make the offsets committed)
            # after answering EndTxn: allow the bounded wait for them.
            deadline = time.monotonic() + t
            while True:
                committed = {tp.partition: tp.offset for tp in
                             consumer.committed([TopicPartition(t_in, p) for p in range(PARTITIONS)],
                                                timeout=t)}
                if committed == ends:
                    break
                if time.monotonic() > deadline:
                    die(f"group {group}: committed offsets {committed} after the transaction, "
                        f"expected the input's end offsets {ends}")
                time.sleep(0.2)
        finally:
            consumer.close()
    except Exception as e:  # noqa: BLE001 - KafkaException from the transactional API
        die(f"transactional API call failed: {e!r}")

    # 4. what readers see
    def expected(prefixes):
        out = {p: [] for p in range(PARTITIONS)}
        for prefix in prefixes:
            if prefix == "ctp":
                for p, v in got:
                    out[p].append(f"ctp-{v}")
            else:
                for i in range(N_TXN):
                    out[i % PARTITIONS].append(f"{prefix}-{i}")
        return out

    for isolation, prefixes in (("read_committed", ["commit", "ctp"]),
                                ("read_uncommitted", ["commit", "abort", "ctp"])):
        want = expected(prefixes)
        n = sum(len(v) for v in want.values())
        recs = ck_consume_all(args.bootstrap, t_out, t, n,
                              extra_conf={"isolation.level": isolation})
        have = {p: [m.value().decode() for m in recs[p]] for p in recs}
        if have != want:
            die(f"{isolation} consumer of {t_out}: got {have}, expected {want}")

    print(f"ok: read_committed saw the {N_TXN + N_IN} committed records, "
          f"read_uncommitted all {2 * N_TXN + N_IN}; group offsets committed in the transaction")


if __name__ == "__main__":
    main()
