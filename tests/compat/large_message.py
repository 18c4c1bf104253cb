# Message size limit, with confluent-kafka (librdkafka).
#
# The broker's message.max.bytes defaults to 1048588 (Kafka's default) and
# applies to a whole record batch. The client's own message.max.bytes is
# raised so that librdkafka sends everything and the broker has to decide:
#
#   --mode under  a single incompressible record whose batch is just under
#                 the limit is accepted and reads back byte for byte.
#   --mode over   a record over the limit is rejected with MESSAGE_TOO_LARGE
#                 (error code 10, MSG_SIZE_TOO_LARGE in librdkafka), nothing
#                 is stored, and the broker keeps serving: a small record
#                 produced afterwards lands at offset 0 and reads back.

import hashlib
import os

from compat_common import arg_parser, ck_consume_all, ck_produce, die, setup_logging

BROKER_LIMIT = 1048588          # Kafka's default message.max.bytes
UNDER = BROKER_LIMIT - 1024     # value size; batch + record overhead is < 100 bytes
OVER = BROKER_LIMIT + 1024


def producer_conf(args):
    return {
        "bootstrap.servers": args.bootstrap,
        "client.id": "compat-confluent-large",
        "message.max.bytes": 4 * 1024 * 1024,   # let the broker, not the client, decide
        "compression.type": "none",
        "acks": "all",
        "message.timeout.ms": int(args.timeout * 1000),
    }


def main():
    p = arg_parser(__doc__)
    p.add_argument("--mode", required=True, choices=["under", "over"])
    args = p.parse_args()
    setup_logging()
    from confluent_kafka import KafkaError

    if args.mode == "under":
        value = os.urandom(UNDER)
        (err, part, off), = ck_produce(producer_conf(args), args.topic,
                                       [(b"big", value, None)], args.timeout)
        if err is not None:
            die(f"{UNDER}-byte record (under the {BROKER_LIMIT}-byte limit) was rejected: {err}")
        records = ck_consume_all(args.bootstrap, args.topic, args.timeout, 1)
        msgs = [m for recs in records.values() for m in recs]
        if len(msgs) != 1:
            die(f"expected 1 record back, got {len(msgs)}")
        got = msgs[0].value() or b""
        if got != value:
            die(f"value differs: got {len(got)} bytes sha256 {hashlib.sha256(got).hexdigest()[:16]},"
                f" sent {len(value)} bytes sha256 {hashlib.sha256(value).hexdigest()[:16]}")
        print(f"ok: {UNDER}-byte record round-tripped (partition {part}, offset {off})")
        return

    (big_err, _, _), = ck_produce(producer_conf(args), args.topic,
                                  [(b"too-big", os.urandom(OVER), None)], args.timeout)
    if big_err is None:
        die(f"{OVER}-byte record (over the {BROKER_LIMIT}-byte limit) was accepted")
    if big_err.code() != KafkaError.MSG_SIZE_TOO_LARGE:
        die(f"{OVER}-byte record failed with {big_err.name()} (code {big_err.code()}),"
            f" expected MSG_SIZE_TOO_LARGE (code 10): {big_err}")
    # The broker must still work for this topic after the rejection.
    (err, part, off), = ck_produce(producer_conf(args), args.topic,
                                   [(b"small", b"after the big one", None)], args.timeout)
    if err is not None:
        die(f"small record after the rejected one failed: {err}")
    if off != 0:
        die(f"small record after the rejected one got offset {off}, expected 0"
            " (the rejected record must not take an offset)")
    records = ck_consume_all(args.bootstrap, args.topic, args.timeout, 1)
    vals = [m.value() for recs in records.values() for m in recs]
    if vals != [b"after the big one"]:
        die(f"topic should hold only the small record, got {len(vals)} records")
    print(f"ok: {OVER}-byte record rejected with {big_err.name()}; broker kept serving")


if __name__ == "__main__":
    main()
