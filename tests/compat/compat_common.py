# Shared helpers for the compatibility suite's Python scripts (run.sh runs
# them with the suite's venv python). Kept tiny on purpose: each scenario
# script should read top to bottom on its own.
#
# Convention: a script exits 0 on success; on failure it prints one line
# starting with "FAIL:" as its LAST line on stderr and exits 1. run.sh
# shows that last line as the test's reason.

import argparse
import logging
import sys
import time


def die(msg):
    sys.stdout.flush()
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def arg_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True, help="host:port of the broker")
    p.add_argument("--topic", required=True, help="topic (or topic prefix) to use")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds allowed for each produce / consume phase")
    return p


def setup_logging():
    # Client libraries log warnings (connection errors, retries) here; run.sh
    # keeps them in the test's log and prints them when the test fails.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def kp_consume_all(bootstrap, topic, timeout, expect_partitions=None,
                   isolation_level="read_uncommitted"):
    """Read a whole topic with kafka-python (manual assignment, no group).

    Assigns every partition, seeks to the beginning, asks ListOffsets for
    the end offsets (with read_committed: the last stable offsets) and polls
    until every partition's position reaches its end offset. Returns
    {partition: [ConsumerRecord, ...]} in offset order.
    """
    from kafka import KafkaConsumer, TopicPartition

    deadline = time.monotonic() + timeout
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="compat-kafka-python-consumer",
        group_id=None,                 # no consumer groups on the broker yet
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
        isolation_level=isolation_level,
    )
    try:
        partitions = set()
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                if time.monotonic() > deadline:
                    die(f"kafka-python: topic {topic!r} not found in metadata")
                time.sleep(0.2)
        if expect_partitions is not None and len(partitions) != expect_partitions:
            die(f"kafka-python: topic {topic!r} has partitions {sorted(partitions)},"
                f" expected {expect_partitions}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = {tp.partition: [] for tp in tps}
        def remaining_ms():
            return max(1, int((deadline - time.monotonic()) * 1000))

        while any(consumer.position(tp, timeout_ms=remaining_ms()) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                got = {tp.partition: len(records[tp.partition]) for tp in tps}
                want = {tp.partition: end[tp] for tp in tps}
                die(f"kafka-python: timed out consuming {topic!r}: got {got} records,"
                    f" end offsets {want}")
            for tp, recs in consumer.poll(timeout_ms=500).items():
                records[tp.partition].extend(recs)
        return records
    finally:
        consumer.close()


def ck_consume_all(bootstrap, topic, timeout, expect_count, extra_conf=None):
    """Read a whole topic with confluent-kafka (librdkafka), manual assignment.

    confluent-kafka refuses to build a Consumer without group.id, so one is
    set, but nothing subscribes or commits: every partition is assign()ed
    at OFFSET_BEGINNING and read until librdkafka reports partition EOF
    (fetch offset == high watermark) on all of them. Returns
    {partition: [Message, ...]} in offset order.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    deadline = time.monotonic() + timeout
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "compat-confluent-consumer",
        "group.id": "compat-unused-group",   # required by the binding; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra_conf or {})
    consumer = Consumer(conf)
    try:
        md = consumer.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            die(f"confluent-kafka: no usable metadata for {topic!r}: "
                f"{tmd.error if tmd is not None else 'topic missing'}")
        parts = sorted(tmd.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        records = {p: [] for p in parts}
        at_eof = set()
        while len(at_eof) < len(parts) or sum(map(len, records.values())) < expect_count:
            if time.monotonic() > deadline:
                got = {p: len(r) for p, r in records.items()}
                die(f"confluent-kafka: timed out consuming {topic!r}: got {got} records,"
                    f" expected {expect_count} in total, EOF seen on {sorted(at_eof)}")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                records[msg.partition()].append(msg)
                at_eof.discard(msg.partition())
            elif err.code() == KafkaError._PARTITION_EOF:
                at_eof.add(msg.partition())
            elif err.fatal():
                die(f"confluent-kafka: fatal consumer error: {err}")
            else:
                # e.g. the (unused) group's coordinator lookup failing while
                # the broker has no consumer groups: log it, keep going.
                print(f"confluent-kafka consumer error (ignored): {err}", file=sys.stderr)
        return records
    finally:
        consumer.close()


def ck_produce(producer_conf, topic, items, timeout):
    """Produce (key, value, headers) items with confluent-kafka and wait for
    every delivery report. Returns a list of (error_or_None, partition, offset)
    in the order of items."""
    from confluent_kafka import Producer

    results = [None] * len(items)

    def on_delivery(i):
        def cb(err, msg):
            results[i] = (err, msg.partition(), msg.offset())
        return cb

    producer = Producer(producer_conf)
    for i, (key, value, headers) in enumerate(items):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers,
                                 on_delivery=on_delivery(i))
                break
            except BufferError:          # local queue full: serve callbacks, retry
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(timeout)
    if left:
        die(f"confluent-kafka: {left} of {len(items)} messages still undelivered after {timeout}s")
    return results
