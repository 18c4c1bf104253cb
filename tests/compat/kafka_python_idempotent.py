# kafka-python idempotent producer (KIP-98): what a pure-Python client needs
# from the broker for enable_idempotence=True.
#
# 1. KafkaAdminClient.create_topics: a 3-partition topic.
# 2. KafkaProducer(enable_idempotence=True, acks='all'): N records, record i
#    to partition i % 3; every send must be acknowledged, and the producer
#    must have been given a producer id (InitProducerId) -- kafka-python
#    2.2.21 keeps it in producer._transaction_manager, a private attribute of
#    this pinned version.
# 3. A kafka-python consumer (assign + seek_to_beginning, no group) reads the
#    topic back, read_uncommitted and then read_committed (no transactions,
#    so the last stable offset is the high watermark): exactly N records,
#    each once, at the partition/offset it was acknowledged at, offsets
#    0..count-1 per partition in produce order.

import logging
import os
import sys

from compat_common import arg_parser, die, kp_consume_all, setup_logging

N = 2000
PARTITIONS = 3


def value(i):
    return f"idempotent-{i:05d}".encode()


def check(records, acked, isolation):
    total = sum(len(r) for r in records.values())
    if total != N:
        die(f"{isolation}: consumed {total} records, produced {N}")
    by_pos = {pos: i for i, pos in acked.items()}
    seen = set()
    for p, recs in records.items():
        last_i = -1
        for expected_offset, r in enumerate(recs):
            if r.offset != expected_offset:
                die(f"{isolation}: partition {p}: record #{expected_offset} has offset {r.offset}"
                    " (a gap or a duplicate)")
            i = by_pos.get((p, r.offset))
            if i is None:
                die(f"{isolation}: partition {p} offset {r.offset} was never acknowledged")
            if r.value != value(i):
                die(f"{isolation}: partition {p} offset {r.offset}: value {r.value!r},"
                    f" acknowledged for {value(i)!r}")
            if i <= last_i:
                die(f"{isolation}: partition {p}: record {i} after record {last_i}: produce order lost")
            if i in seen:
                die(f"{isolation}: record {i} consumed twice")
            seen.add(i)
            last_i = i


def main():
    args = arg_parser("kafka-python idempotent producer").parse_args()
    setup_logging()
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                             client_id="compat-kafka-python-admin")
    try:
        admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)], timeout_ms=10000)
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="compat-kafka-python-idempotent",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
    )

    def fail(msg):
        # Like die(), but without running the producer's __del__ at exit:
        # a producer that never got a producer id keeps failing (its I/O
        # thread logs, close() raises), which would bury the FAIL line that
        # must come last.
        logging.disable(logging.CRITICAL)
        sys.stdout.flush()
        print(f"FAIL: {msg}", file=sys.stderr, flush=True)
        os._exit(1)

    futures = [producer.send(args.topic, value=value(i), partition=i % PARTITIONS)
               for i in range(N)]
    try:
        producer.flush(timeout=args.timeout)
    except Exception as e:  # noqa: BLE001 - e.g. KafkaTimeoutError
        fail(f"idempotent producer: flush of {N} records did not finish: {e!r}")
    acked = {}
    for i, fut in enumerate(futures):
        try:
            md = fut.get(timeout=1)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            fail(f"produce of record {i} failed: {e!r}")
        acked[i] = (md.partition, md.offset)
    tm = getattr(producer, "_transaction_manager", None)
    pid = getattr(tm, "producer_id_and_epoch", None)
    if pid is None:
        fail("kafka-python has no producer._transaction_manager.producer_id_and_epoch "
             "(not 2.2.21?): cannot tell whether the producer was idempotent")
    if not pid.is_valid or pid.epoch != 0:
        fail(f"the idempotent producer holds {pid}: expected a producer id >= 0 at epoch 0")
    producer.close()

    for i, (p, _) in acked.items():
        if p != i % PARTITIONS:
            die(f"record {i} acknowledged on partition {p}, sent to {i % PARTITIONS}")
    for isolation in ("read_uncommitted", "read_committed"):
        records = kp_consume_all(args.bootstrap, args.topic, args.timeout,
                                 expect_partitions=PARTITIONS, isolation_level=isolation)
        check(records, acked, isolation)

    print(f"ok: {N} records from producer id {pid.producer_id}, read back once each, in order "
          "(read_uncommitted and read_committed)")


if __name__ == "__main__":
    main()
