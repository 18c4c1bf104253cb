"""Commit latency of transactions on a broker, with confluent-kafka (librdkafka).

What: one transactional producer runs N transactions against BOOTSTRAP, each
producing RECORDS records of SIZE bytes to TOPIC (1 partition) and committing;
the time of commit_transaction() (EndTxn: flush + markers + coordinator state)
is recorded per transaction. Prints one JSON line: p50/p99/max in ms, and the
whole loop's transactions per second.
Why: issue 7's closing note asks for commit latency p50/p99; bench/txn.sh runs
this pinned to the client core beside the broker on its own core.
Usage: python3 txn_commit_latency.py BOOTSTRAP TOPIC [N=500] [RECORDS=10] [SIZE=1024]
"""
import json
import sys
import time
import uuid

from confluent_kafka import Producer


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def main():
    boot, topic = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    records = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    p = Producer({"bootstrap.servers": boot, "transactional.id": f"bench-{uuid.uuid4()}", "linger.ms": 0})
    p.init_transactions(30)
    value = b"x" * size
    commits = []
    started = time.perf_counter()
    for _ in range(n):
        p.begin_transaction()
        for _ in range(records):
            p.produce(topic, value, partition=0)
        p.flush(30)
        t0 = time.perf_counter()
        p.commit_transaction(30)
        commits.append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - started
    commits.sort()
    print(json.dumps({
        "transactions": n, "records_per_txn": records, "record_bytes": size,
        "txn_per_sec": round(n / elapsed, 1),
        "commit_ms": {"p50": round(pct(commits, 0.50), 3), "p99": round(pct(commits, 0.99), 3), "max": round(commits[-1], 3)},
    }))


if __name__ == "__main__":
    main()
