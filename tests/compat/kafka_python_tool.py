# kafka-python as a small command-line tool, so run.sh can pair it with kcat
# (the cross-client tests) the same way it pairs kcat with itself.
#
#   create  --partitions N             CreateTopics via KafkaAdminClient
#   produce                            stdin "key:value" lines -> keyed records, acks=all
#   consume [--expect N]               whole topic -> stdout "key:value" lines,
#                                      partition by partition, in offset order

import sys

from compat_common import arg_parser, die, kp_consume_all, setup_logging


def create(args):
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                             client_id="compat-kafka-python-admin")
    try:
        admin.create_topics([NewTopic(args.topic, args.partitions, 1)], timeout_ms=10000)
    finally:
        admin.close()
    print(f"created {args.topic} with {args.partitions} partitions")


def produce(args):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=args.bootstrap,
                             client_id="compat-kafka-python-producer",
                             acks="all", max_in_flight_requests_per_connection=1,
                             linger_ms=5)
    futures = []
    for n, line in enumerate(sys.stdin.buffer.read().splitlines()):
        key, sep, value = line.partition(b":")
        if not sep:
            die(f"input line {n + 1} has no ':' key delimiter: {line!r}")
        futures.append(producer.send(args.topic, key=key, value=value))
    producer.flush(timeout=args.timeout)
    for n, fut in enumerate(futures):
        try:
            fut.get(timeout=1)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            die(f"produce of line {n + 1} failed: {e!r}")
    producer.close()
    print(f"produced {len(futures)} records to {args.topic}", file=sys.stderr)


def consume(args):
    records = kp_consume_all(args.bootstrap, args.topic, args.timeout)
    total = sum(len(r) for r in records.values())
    if args.expect is not None and total != args.expect:
        die(f"consumed {total} records from {args.topic}, expected {args.expect}")
    out = sys.stdout.buffer
    for p in sorted(records):
        for r in records[p]:
            out.write((r.key or b"") + b":" + (r.value or b"") + b"\n")
    out.flush()


def main():
    p = arg_parser(__doc__)
    p.add_argument("command", choices=["create", "produce", "consume"])
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--expect", type=int, default=None)
    args = p.parse_args()
    setup_logging()
    {"create": create, "produce": produce, "consume": consume}[args.command](args)


if __name__ == "__main__":
    main()
