# Checks for the Kafka Connect tests in run.sh (connect-standalone,
# connect-distributed): run.sh starts and stops the Connect workers itself
# (tests/compat/connect pins connect-runtime); this script talks to a running
# worker's REST API and reads the broker's side of what Connect did.
#
#   lines N [--ascii]                 N input lines for FileStreamSource on stdout
#   wait-rest URL                     until GET /connectors answers 200
#   create URL NAME KEY=VALUE...      POST /connectors; expects 201 and the config echoed
#   running URL NAME...               until each connector and all its tasks are RUNNING
#   config-is URL NAME KEY=VALUE...   GET /connectors/NAME/config equals the given config
#   listed URL NAME...                GET /connectors is exactly these names
#   status URL                        prints every connector's and task's state and trace
#   delete URL NAME                   DELETE -> 204, then GET -> 404 and not listed
#   internal-topics --bootstrap B CONFIG OFFSET STATUS
#                                     the three topics exist with cleanup.policy=compact
#                                     (DescribeConfigs); the config topic has 1 partition
#   source-position --bootstrap B --topic OFFSETS --connector N --file F --expect P
#                                     until the newest record for N's file in the offsets
#                                     topic says {"position": P}
#   topic-configs --bootstrap B --topic T [--partitions N] KEY=VALUE...
#                                     T has N partitions (default 1) and these configs
#   tombstone --bootstrap B --topic CONFIGS --key K
#                                     the newest record with key K is a tombstone
#   committed --bootstrap B --group G --topic T --expect N
#                                     G's committed offsets on T add up to N
#   topic-equals --bootstrap B --topic T --file F [--bytes P]
#                                     until T read with read_committed is F's lines
#                                     (with P: the lines in F's first P bytes)
#   position URL NAME                 prints the source's position (GET .../offsets)
#   settled URL NAME [--quiet S]      prints it once it has not moved for S seconds
#   task-worker URL NAME              prints the worker_id running NAME's task 0
#
# Convention (compat_common.py): exit 0 on success, else a last "FAIL: ..." line.

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from compat_common import die


# ------------------------------------------------------------------ input ----

def lines(args):
    """FileStreamSource input: every line distinct (numbered) and the awkward
    cases it must carry as they are -- empty and whitespace-only lines, tabs,
    quotes and backslashes (JsonConverter escapes them), long lines (the task's
    read buffer grows), and unless --ascii multi-byte UTF-8 (2-, 3- and 4-byte
    sequences). No '\r': the connector splits lines on it as on '\n'."""
    out = []
    for i in range(1, args.count + 1):
        if i % 101 == 0:
            out.append("")
        elif i % 103 == 0:
            out.append(" " * (i % 7 + 1))
        elif i % 13 == 0 and not args.ascii:
            out.append(f"{args.tag} {i} ünïcødé λ 日本語 🚀 ∑")
        elif i % 17 == 0:
            out.append(f'{args.tag} {i}\t"quoted"\tback\\slash {{"json": [1, 2]}}')
        elif i % 499 == 0:
            out.append(f"{args.tag} {i} " + "long-" * 2000)
        else:
            out.append(f"{args.tag} {i} payload {i * i}")
    sys.stdout.write("\n".join(out) + "\n")


# ------------------------------------------------------------------- REST ----

def rest(method, url, body=None, timeout=10.0):
    """(status, parsed JSON or None) of one REST call; connection errors raise."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw.decode(errors="replace")


def parse_config(pairs):
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            die(f"config item {pair!r} is not KEY=VALUE")
        config[key] = value
    return config


def wait_rest(args):
    deadline = time.monotonic() + args.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = rest("GET", f"{args.url}/connectors", timeout=5)
            if status == 200:
                print(f"REST up at {args.url}: connectors {body}")
                return
            last = f"status {status}: {body}"
        except OSError as e:   # not listening yet, or reset while starting
            last = str(e)
        time.sleep(0.5)
    die(f"worker REST API at {args.url} not answering after {args.timeout:.0f}s ({last})")


def rest_settled(method, url, body, timeout):
    """A write call, repeated while the worker answers 409: Connect refuses
    writes while its group rebalances (e.g. just after it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = rest(method, url, body)
        if status != 409 or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.5)


def create(args):
    config = parse_config(args.config)
    status, body = rest_settled("POST", f"{args.url}/connectors",
                                {"name": args.name, "config": config}, args.timeout)
    if status != 201:
        die(f"POST /connectors for {args.name}: status {status}: {body}")
    if body.get("name") != args.name or body.get("config") != {**config, "name": args.name}:
        die(f"POST /connectors for {args.name} answered {body}, not the config sent")
    print(f"created connector {args.name} ({body.get('type')})")


def running(args):
    deadline = time.monotonic() + args.timeout
    for name in args.names:
        last = None
        while True:
            status, body = rest("GET", f"{args.url}/connectors/{name}/status")
            if status == 200:
                states = [body["connector"]["state"]] + [t["state"] for t in body["tasks"]]
                if body["tasks"] and all(s == "RUNNING" for s in states):
                    print(f"{name}: connector and {len(body['tasks'])} task(s) RUNNING")
                    break
                if "FAILED" in states:
                    die(f"{name} FAILED: {json.dumps(body)[:2000]}")
            last = f"status {status}: {body}"
            if time.monotonic() > deadline:
                die(f"{name} not RUNNING after {args.timeout:.0f}s: {last}")
            time.sleep(0.5)


def show_status(args):
    """Every connector's and task's state, with the first line of any trace
    (printed when a copy fails, to say why)."""
    status, body = rest("GET", f"{args.url}/connectors?expand=status")
    if status != 200:
        die(f"GET /connectors?expand=status: status {status}: {body}")
    for name, entry in sorted(body.items()):
        st = entry["status"]
        for what, s in [("connector", st["connector"])] + [(f"task {t['id']}", t) for t in st["tasks"]]:
            trace = (s.get("trace") or "").strip().splitlines()
            print(f"{name} {what}: {s['state']}" + (f": {trace[0]}" if trace else ""))


def config_is(args):
    want = {**parse_config(args.config), "name": args.name}
    status, body = rest("GET", f"{args.url}/connectors/{args.name}/config")
    if status != 200 or body != want:
        die(f"GET /connectors/{args.name}/config: status {status}: {body}, expected {want}")
    print(f"{args.name}: config as created")


def listed(args):
    status, body = rest("GET", f"{args.url}/connectors")
    if status != 200 or sorted(body) != sorted(args.names):
        die(f"GET /connectors: status {status}: {body}, expected {sorted(args.names)}")
    print(f"connectors: {sorted(body)}")


def delete(args):
    status, body = rest_settled("DELETE", f"{args.url}/connectors/{args.name}", None, args.timeout)
    if status != 204:
        die(f"DELETE /connectors/{args.name}: status {status}: {body}")
    for path in (f"/connectors/{args.name}", f"/connectors/{args.name}/status"):
        status, body = rest("GET", args.url + path)
        if status != 404:
            die(f"GET {path} after DELETE: status {status}: {body}, expected 404")
    status, body = rest("GET", f"{args.url}/connectors")
    if status != 200 or args.name in body:
        die(f"GET /connectors after DELETE of {args.name}: status {status}: {body}")
    print(f"deleted {args.name}: 404 and no longer listed ({body})")


# ------------------------------------------------------------ broker side ----

def internal_topics(args):
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    metadata = admin.list_topics(timeout=10)
    for topic in args.topics:
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            die(f"internal topic {topic} missing from metadata: {sorted(metadata.topics)}")
    config_partitions = len(metadata.topics[args.topics[0]].partitions)
    if config_partitions != 1:
        die(f"config topic {args.topics[0]} has {config_partitions} partitions; Connect needs 1")
    resources = [ConfigResource("topic", t) for t in args.topics]
    for resource, future in admin.describe_configs(resources, request_timeout=10).items():
        entries = future.result(timeout=15)
        policy = entries.get("cleanup.policy")
        if policy is None or policy.value != "compact":
            die(f"{resource.name}: cleanup.policy is "
                f"{policy.value if policy else None!r}, expected 'compact'")
        print(f"{resource.name}: {len(metadata.topics[resource.name].partitions)} partition(s),"
              f" cleanup.policy=compact")


def topic_configs(args):
    """TOPIC has --partitions partitions and these config values (DescribeConfigs)."""
    from confluent_kafka.admin import AdminClient, ConfigResource
    want = parse_config(args.config)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    metadata = admin.list_topics(args.topic, timeout=10).topics.get(args.topic)
    if metadata is None or metadata.error is not None or len(metadata.partitions) != args.partitions:
        die(f"{args.topic}: metadata {metadata and metadata.error}, partitions"
            f" {metadata and sorted(metadata.partitions)}, expected {args.partitions}")
    entries = admin.describe_configs([ConfigResource("topic", args.topic)])
    entries = next(iter(entries.values())).result(timeout=15)
    got = {k: entries[k].value if k in entries else None for k in want}
    if got != want:
        die(f"{args.topic}: configs {got}, expected {want}")
    print(f"{args.topic}: {args.partitions} partition(s), {want}")


def read_topic(bootstrap, topic, timeout, isolation_level="read_uncommitted"):
    """Every record of TOPIC, all partitions, up to the end offsets at the call
    (with read_committed: the last stable offsets)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-connect-reader",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": isolation_level})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        parts = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in parts}
        todo = {p for p in parts if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        records = []
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                die(f"reading {topic}: partitions {sorted(todo)} not read to their end")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends[msg.partition()]:
                        todo.discard(msg.partition())
                    continue
                die(f"reading {topic}: {msg.error()}")
            if msg.offset() < ends[msg.partition()]:
                records.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
        return records
    finally:
        consumer.close()


def source_position(args):
    # The worker's internal converter is JsonConverter without schemas: the key
    # is [connector, {"filename": file}], the value {"position": chars read}.
    want_key = [args.connector, {"filename": args.file}]
    deadline = time.monotonic() + args.timeout
    while True:
        newest = None
        for msg in read_topic(args.bootstrap, args.topic, args.timeout):
            if msg.key() is not None and json.loads(msg.key()) == want_key:
                newest = None if msg.value() is None else json.loads(msg.value())
        if newest == {"position": args.expect}:
            print(f"{args.topic}: {args.connector} at position {args.expect} of {args.file}")
            return
        if time.monotonic() > deadline:
            die(f"{args.topic}: newest offset of {args.connector} for {args.file} is {newest},"
                f" expected {{'position': {args.expect}}}")
        time.sleep(0.5)


def tombstone(args):
    newest = "absent"
    for msg in read_topic(args.bootstrap, args.topic, args.timeout):
        if msg.key() is not None and msg.key().decode() == args.key:
            newest = msg.value()
    if newest is not None:
        die(f"{args.topic}: newest record with key {args.key!r} is {newest!r}, expected a tombstone")
    print(f"{args.topic}: {args.key} ends with a tombstone")


def topic_equals(args):
    """The topic's records, read with read_committed, are the file's lines --
    with --bytes P only those in its first P bytes: all of them, in order,
    each once (a 1-partition topic)."""
    data = open(args.file, "rb").read()
    if args.bytes is not None:
        if not 0 < args.bytes <= len(data) or data[args.bytes - 1:args.bytes] != b"\n":
            die(f"{args.bytes} is not the end of a line of {args.file} ({len(data)} bytes)")
        data = data[:args.bytes]
    want = data.split(b"\n")[:-1]
    deadline = time.monotonic() + args.timeout
    while True:
        got = [m.value() for m in read_topic(args.bootstrap, args.topic, args.timeout,
                                             isolation_level="read_committed")]
        if got == want:
            print(f"{args.topic} (read_committed) holds the {len(want)} lines of"
                  f" {args.file}{'' if args.bytes is None else f' up to byte {args.bytes}'}")
            return
        if len(got) >= len(want) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    die(f"{args.topic} (read_committed) has {len(got)} records, {args.file} {len(want)} lines;"
        f" first difference at record {first}:"
        f" {got[first] if first < len(got) else None!r} vs {want[first] if first < len(want) else None!r}")


def source_offset(url, name):
    status, body = rest("GET", f"{url}/connectors/{name}/offsets")
    if status != 200:
        die(f"GET /connectors/{name}/offsets: status {status}: {body}")
    offsets = body.get("offsets") or [{"offset": {"position": 0}}]
    return offsets[0]["offset"]["position"]


def settled(args):
    """Waits until the source's position (GET /connectors/NAME/offsets) has
    not moved for --quiet seconds and prints it, for run.sh."""
    deadline = time.monotonic() + args.timeout
    last, since = None, time.monotonic()
    while True:
        position = source_offset(args.url, args.name)
        if position != last:
            last, since = position, time.monotonic()
        elif time.monotonic() - since >= args.quiet:
            print(position)
            return
        if time.monotonic() > deadline:
            die(f"{args.name}'s position still moving after {args.timeout:.0f}s (at {position})")
        time.sleep(0.5)


def position(args):
    """The source's position as the worker's REST API reports it (GET
    /connectors/NAME/offsets: the offsets topic), or 0; printed for run.sh."""
    print(source_offset(args.url, args.name))


def task_worker(args):
    """The worker_id (host:port) running task 0 of NAME, printed for run.sh."""
    status, body = rest("GET", f"{args.url}/connectors/{args.name}/status")
    if status != 200 or not body.get("tasks"):
        die(f"GET /connectors/{args.name}/status: status {status}: {body}")
    print(body["tasks"][0]["worker_id"])


def committed(args):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False})
    try:
        parts = sorted(consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions)
        offsets = consumer.committed([TopicPartition(args.topic, p) for p in parts], timeout=10)
    finally:
        consumer.close()
    total = sum(max(tp.offset, 0) for tp in offsets)
    if total != args.expect:
        die(f"group {args.group} committed {[(tp.partition, tp.offset) for tp in offsets]}"
            f" on {args.topic}: {total} in all, expected {args.expect}")
    print(f"group {args.group}: committed offsets on {args.topic} add up to {total}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for any wait")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("lines"); s.add_argument("count", type=int)
    s.add_argument("--tag", default="line"); s.add_argument("--ascii", action="store_true")
    s.set_defaults(run=lines)
    s = sub.add_parser("wait-rest"); s.add_argument("url"); s.set_defaults(run=wait_rest)
    for name, run in (("create", create), ("config-is", config_is)):
        s = sub.add_parser(name); s.add_argument("url"); s.add_argument("name")
        s.add_argument("config", nargs="+"); s.set_defaults(run=run)
    for name, run in (("running", running), ("listed", listed)):
        s = sub.add_parser(name); s.add_argument("url"); s.add_argument("names", nargs="*")
        s.set_defaults(run=run)
    s = sub.add_parser("status"); s.add_argument("url"); s.set_defaults(run=show_status)
    s = sub.add_parser("delete"); s.add_argument("url"); s.add_argument("name")
    s.set_defaults(run=delete)
    s = sub.add_parser("internal-topics"); s.add_argument("--bootstrap", required=True)
    s.add_argument("topics", nargs=3, metavar="TOPIC"); s.set_defaults(run=internal_topics)
    s = sub.add_parser("source-position"); s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True); s.add_argument("--connector", required=True)
    s.add_argument("--file", required=True); s.add_argument("--expect", type=int, required=True)
    s.set_defaults(run=source_position)
    s = sub.add_parser("tombstone"); s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True); s.add_argument("--key", required=True)
    s.set_defaults(run=tombstone)
    s = sub.add_parser("topic-equals"); s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True); s.add_argument("--file", required=True)
    s.add_argument("--bytes", type=int); s.set_defaults(run=topic_equals)
    s = sub.add_parser("topic-configs"); s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True); s.add_argument("--partitions", type=int, default=1)
    s.add_argument("config", nargs="+"); s.set_defaults(run=topic_configs)
    s = sub.add_parser("settled"); s.add_argument("url"); s.add_argument("name")
    s.add_argument("--quiet", type=float, default=3.0); s.set_defaults(run=settled)
    for name, run in (("position", position), ("task-worker", task_worker)):
        s = sub.add_parser(name); s.add_argument("url"); s.add_argument("name")
        s.set_defaults(run=run)
    s = sub.add_parser("committed"); s.add_argument("--bootstrap", required=True)
    s.add_argument("--group", required=True); s.add_argument("--topic", required=True)
    s.add_argument("--expect", type=int, required=True); s.set_defaults(run=committed)
    args = p.parse_args()
    try:
        args.run(args)
    except (OSError, KeyError, ValueError) as e:
        die(f"{args.cmd}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
