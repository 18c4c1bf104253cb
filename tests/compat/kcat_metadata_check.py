# Checks the output of `kcat -L -J` (librdkafka's view of a Metadata
# response) against what the test created:
#
#   kcat_metadata_check.py META.json --broker 127.0.0.1:PORT --expect TOPIC=PARTITIONS ...
#
# Every expected topic must be listed without error, with exactly that many
# partitions (ids 0..N-1), each led by a broker that is in the broker list;
# the broker list must contain the address we connected to.

import argparse
import json
import sys


def die(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("json_file")
    p.add_argument("--broker", required=True, help="host:port the broker must be listed as")
    p.add_argument("--expect", action="append", default=[], metavar="TOPIC=PARTITIONS")
    args = p.parse_args()

    try:
        with open(args.json_file, encoding="utf-8") as f:
            md = json.load(f)
    except (OSError, ValueError) as e:
        die(f"cannot read kcat -L -J output: {e}")

    brokers = {b["id"]: b["name"] for b in md.get("brokers", [])}
    if args.broker not in brokers.values():
        die(f"broker list {brokers} does not contain {args.broker}")

    topics = {t["topic"]: t for t in md.get("topics", [])}
    for spec in args.expect:
        name, _, count = spec.rpartition("=")
        count = int(count)
        t = topics.get(name)
        if t is None:
            die(f"topic {name!r} not listed; topics: {sorted(topics)}")
        if "error" in t:
            die(f"topic {name!r} listed with error: {t['error']}")
        ids = sorted(part["partition"] for part in t["partitions"])
        if ids != list(range(count)):
            die(f"topic {name!r} has partitions {ids}, expected 0..{count - 1}")
        for part in t["partitions"]:
            if "error" in part:
                die(f"{name}[{part['partition']}] listed with error: {part['error']}")
            if part["leader"] not in brokers:
                die(f"{name}[{part['partition']}] leader {part['leader']} is not a listed broker")
            replicas = [r["id"] for r in part.get("replicas", [])]
            isrs = [r["id"] for r in part.get("isrs", [])]
            if part["leader"] not in replicas or part["leader"] not in isrs:
                die(f"{name}[{part['partition']}] leader {part['leader']} missing from "
                    f"replicas {replicas} / isrs {isrs}")
    print(f"ok: {len(args.expect)} topics listed as expected among {len(topics)}")


if __name__ == "__main__":
    main()
