# kafka-python round trip: what a pure-Python client needs from the broker.
#
# 1. KafkaAdminClient.create_topics: a 3-partition topic (CreateTopics).
# 2. KafkaProducer, acks=all: 1000 keyed records with headers; remember the
#    (partition, offset) each send was acknowledged with.
# 3. KafkaConsumer with assign() (no group) + seek_to_beginning: read it all
#    back and check keys, values, headers, that every record sits at the
#    partition/offset it was acknowledged at, and per-partition order.

import time

from compat_common import arg_parser, die, kp_consume_all, setup_logging

N = 1000
PARTITIONS = 3


def record(i):
    key = f"key-{i:04d}".encode()
    value = f"value-{i:04d}-".encode() + bytes(range(256)) * (i % 4)
    headers = [("idx", str(i).encode()), ("client", b"kafka-python"), ("empty", b"")]
    return key, value, headers


def main():
    args = arg_parser(__doc__).parse_args()
    setup_logging()
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                             client_id="compat-kafka-python-admin")
    try:
        # Raises (e.g. TopicAlreadyExistsError) on a per-topic error code.
        admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)], timeout_ms=10000)
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="compat-kafka-python-producer",
        acks="all",
        max_in_flight_requests_per_connection=1,  # strict order even on retry
        linger_ms=5,
    )
    futures = []
    for i in range(N):
        key, value, headers = record(i)
        futures.append(producer.send(args.topic, key=key, value=value, headers=headers))
    producer.flush(timeout=args.timeout)
    acked = {}  # i -> (partition, offset)
    for i, fut in enumerate(futures):
        try:
            md = fut.get(timeout=1)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            die(f"produce of record {i} failed: {e!r}")
        acked[i] = (md.partition, md.offset)
    producer.close()

    used = {p for p, _ in acked.values()}
    if used != set(range(PARTITIONS)):
        die(f"records were acknowledged on partitions {sorted(used)}, expected all of 0..{PARTITIONS - 1}")
    for p in used:
        offsets = sorted(o for q, o in acked.values() if q == p)
        if offsets != list(range(len(offsets))):
            die(f"partition {p}: acknowledged offsets are not 0..{len(offsets) - 1}: "
                f"first ones {offsets[:10]}")

    records = kp_consume_all(args.bootstrap, args.topic, args.timeout,
                             expect_partitions=PARTITIONS)
    total = sum(len(r) for r in records.values())
    if total != N:
        die(f"consumed {total} records, produced {N}")

    by_pos = {pos: i for i, pos in acked.items()}
    for p, recs in records.items():
        last_i = -1
        for expected_offset, r in enumerate(recs):
            if r.offset != expected_offset:
                die(f"partition {p}: record #{expected_offset} has offset {r.offset}")
            i = by_pos.get((p, r.offset))
            if i is None:
                die(f"partition {p} offset {r.offset}: no record was acknowledged there")
            key, value, headers = record(i)
            if r.key != key:
                die(f"partition {p} offset {r.offset}: key {r.key!r}, expected {key!r}")
            if r.value != value:
                die(f"partition {p} offset {r.offset}: value differs for {key!r} "
                    f"({len(r.value)} bytes, expected {len(value)})")
            if list(r.headers) != headers:
                die(f"partition {p} offset {r.offset}: headers {r.headers!r}, expected {headers!r}")
            if i <= last_i:
                die(f"partition {p}: record {i} comes after record {last_i} (order broken)")
            last_i = i
            if r.timestamp <= 0 or abs(r.timestamp / 1000 - time.time()) > 3600:
                die(f"partition {p} offset {r.offset}: implausible timestamp {r.timestamp}")
    print(f"ok: {N} records over {PARTITIONS} partitions "
          f"({', '.join(f'p{p}={len(r)}' for p, r in sorted(records.items()))})")


if __name__ == "__main__":
    main()
