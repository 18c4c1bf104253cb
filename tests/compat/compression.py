# Compressed batches across clients: confluent-kafka (librdkafka) produces
# with one codec (gzip, snappy, lz4 or zstd), then kafka-python AND
# confluent-kafka each read the topic back (manual assignment, no group).
#
# The broker stores compressed batches as sent, so this checks that it
# accepts each codec on Produce, assigns offsets inside compressed batches
# correctly, and serves them back to a pure-Python and a librdkafka decoder.
# zstd additionally needs Produce >= v7 and Fetch >= v10 to be advertised.

from compat_common import (arg_parser, ck_consume_all, ck_produce, die,
                           kp_consume_all, setup_logging)

N = 500


def items(codec):
    out = []
    for i in range(N):
        key = f"k-{i:04d}".encode()
        value = (f"compressible value {i:04d} / " * 20).encode()  # compresses well
        headers = [("codec", codec.encode()), ("idx", str(i).encode())]
        out.append((key, value, headers))
    return out


def check(client, records, by_offset):
    total = sum(len(r) for r in records.values())
    if total != N:
        die(f"{client}: consumed {total} records, produced {N}")
    for p, recs in records.items():
        for r in recs:
            if client == "kafka-python":
                off, key, value, headers = r.offset, r.key, r.value, list(r.headers)
            else:
                off, key, value, headers = r.offset(), r.key(), r.value(), r.headers() or []
            exp = by_offset.get((p, off))
            if exp is None:
                die(f"{client}: partition {p} offset {off}: nothing was acknowledged there")
            if (key, value, headers) != exp:
                die(f"{client}: partition {p} offset {off}: got key={key!r} "
                    f"({len(value or b'')}-byte value, headers {headers!r}), expected "
                    f"key={exp[0]!r} ({len(exp[1])}-byte value, headers {exp[2]!r})")
        offsets = [r.offset if client == "kafka-python" else r.offset() for r in recs]
        if offsets != sorted(offsets):
            die(f"{client}: partition {p}: offsets not increasing: {offsets[:20]}")


def main():
    p = arg_parser(__doc__)
    p.add_argument("--codec", required=True, choices=["gzip", "snappy", "lz4", "zstd"])
    args = p.parse_args()
    setup_logging()

    sent = items(args.codec)
    results = ck_produce({
        "bootstrap.servers": args.bootstrap,
        "client.id": f"compat-confluent-{args.codec}",
        "compression.type": args.codec,
        "linger.ms": 50,            # many records per (compressed) batch
        "acks": "all",
        "message.timeout.ms": int(args.timeout * 1000),
    }, args.topic, sent, args.timeout)

    by_offset = {}
    for i, (err, part, off) in enumerate(results):
        if err is not None:
            die(f"confluent-kafka delivery of record {i} with {args.codec} failed: {err}")
        by_offset[(part, off)] = sent[i]
    if len(by_offset) != N:
        die(f"only {len(by_offset)} distinct (partition, offset) pairs acknowledged for {N} records")

    check("kafka-python", kp_consume_all(args.bootstrap, args.topic, args.timeout), by_offset)
    check("confluent-kafka", ck_consume_all(args.bootstrap, args.topic, args.timeout, N), by_offset)
    print(f"ok: {N} {args.codec}-compressed records read back by kafka-python and confluent-kafka")


if __name__ == "__main__":
    main()
