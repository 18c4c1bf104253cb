#!/usr/bin/env python3
"""Consumer-group timing against a running broker (not a test; prints figures).

1. rebalance time for N members joining: N confluent-kafka consumers subscribe
   at once to a topic with 2N partitions; time from the first subscribe until
   every member holds a non-empty assignment and they cover all partitions.
2. time from a member's death to full reassignment: two members, one in a
   child process that is SIGKILLed (no LeaveGroup); time until the survivor
   owns every partition. Bounded by session.timeout.ms.

Usage: group_timing.py BOOTSTRAP [--members 10] [--session-ms 6000]
"""
import argparse, multiprocessing as mp, os, signal, sys, threading, time, uuid
import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic


def make(bs, group, session_ms, name):
    return ck.Consumer({'bootstrap.servers': bs, 'group.id': group, 'client.id': name,
                        'session.timeout.ms': session_ms, 'heartbeat.interval.ms': 300,
                        'enable.auto.commit': False, 'partition.assignment.strategy': 'range'})


def child(bs, group, topic, session_ms, ready):
    c = make(bs, group, session_ms, 'victim')
    c.subscribe([topic])
    while True:
        c.poll(0.1)
        if c.assignment():
            ready.set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('bootstrap')
    ap.add_argument('--members', type=int, default=10)
    ap.add_argument('--session-ms', type=int, default=6000)
    a = ap.parse_args()
    bs, n = a.bootstrap, a.members
    admin = AdminClient({'bootstrap.servers': bs})
    topic = 'timing-' + uuid.uuid4().hex[:8]
    admin.create_topics([NewTopic(topic, 2 * n, 1)])[topic].result(30)

    # 1. N members join at once.
    group = 'join-' + uuid.uuid4().hex[:8]
    members = [make(bs, group, a.session_ms, f'm{i}') for i in range(n)]
    stop = threading.Event()
    t0 = time.monotonic()
    for m in members:
        m.subscribe([topic])

    def pump(m):
        while not stop.is_set():
            m.poll(0.05)
    threads = [threading.Thread(target=pump, args=(m,), daemon=True) for m in members]
    for t in threads:
        t.start()
    deadline = t0 + 120
    while time.monotonic() < deadline:
        parts = [set(p.partition for p in m.assignment()) for m in members]
        if all(parts) and set().union(*parts) == set(range(2 * n)) and sum(map(len, parts)) == 2 * n:
            break
        time.sleep(0.02)
    join_s = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    for m in members:
        m.close()
    print(f'join: {n} members settled on {2*n} partitions in {join_s:.2f} s')

    # 2. a member dies without leaving.
    group = 'death-' + uuid.uuid4().hex[:8]
    ready = mp.Event()
    p = mp.Process(target=child, args=(bs, group, topic, a.session_ms, ready), daemon=True)
    p.start()
    survivor = make(bs, group, a.session_ms, 'survivor')
    survivor.subscribe([topic])
    while True:
        survivor.poll(0.05)
        mine = set(x.partition for x in survivor.assignment())
        if ready.is_set() and mine and len(mine) < 2 * n:
            break
    os.kill(p.pid, signal.SIGKILL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        survivor.poll(0.02)
        if set(x.partition for x in survivor.assignment()) == set(range(2 * n)):
            break
    print(f'death: survivor owned all {2*n} partitions {time.monotonic() - t0:.2f} s after SIGKILL '
          f'(session.timeout.ms={a.session_ms})')
    survivor.close()


if __name__ == '__main__':
    sys.exit(main())
