#!/usr/bin/env python3
# Topic and log admin through kafka-python's KafkaAdminClient and
# confluent-kafka's AdminClient: create with configs, describe configs (topic
# and broker), alter configs (classic and incremental), create partitions,
# delete records (low watermark moves, a consumer from the beginning starts
# there), describe cluster and log dirs, delete topics.
#
# Usage: admin_clients.py --bootstrap HOST:PORT --topic PREFIX --client kafka-python|confluent

import time

from compat_common import arg_parser, die, setup_logging

N = 50


def produce(bootstrap, topic, n):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=b"v" * 200, partition=0)
        p.poll(0)
    if p.flush(30) != 0:
        die("produce did not finish")


def watermarks(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-admin-wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    finally:
        c.close()


def first_offset_from_beginning(bootstrap, topic, timeout):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                if recs:
                    return recs[0].offset
    finally:
        c.close()
    die("no record read from the beginning")


def with_kafka_python(bootstrap, topic, timeout):
    from kafka.admin import (ConfigResource, ConfigResourceType, KafkaAdminClient,
                             NewPartitions, NewTopic)
    from kafka.structs import TopicPartition
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    a.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "3600000", "segment.bytes": "4096"})])
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = {c[0]: c for c in res[0].resources[0][4]}
    if entries.get("retention.ms", (None, None))[1] != "3600000":
        die(f"describe_configs retention.ms: {entries.get('retention.ms')}")
    if entries["segment.bytes"][1] != "4096":
        die(f"describe_configs segment.bytes: {entries['segment.bytes']}")
    res = a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")])
    names = {c[0] for c in res[0].resources[0][4]}
    if "log.retention.ms" not in names or "log.segment.bytes" not in names:
        die(f"broker configs missing: {sorted(names)[:10]}")
    res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000", "segment.bytes": "4096"})])
    if res.resources[0][0] != 0:
        die(f"alter_configs error {res.resources[0]}")
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = {c[0]: c for c in res[0].resources[0][4]}
    if entries["retention.ms"][1] != "7200000":
        die(f"altered retention.ms not described: {entries['retention.ms']}")
    bad = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "soon"})])
    if bad.resources[0][0] != 40:
        die(f"invalid value gave error {bad.resources[0][0]}, want 40 INVALID_CONFIG")
    a.create_partitions({topic: NewPartitions(total_count=3)})
    produce(bootstrap, topic, N)
    out = a.delete_records({TopicPartition(topic, 0): 20})
    low = out[TopicPartition(topic, 0)]["low_watermark"]
    if low != 20:
        die(f"delete_records low watermark {low}, want 20")
    if watermarks(bootstrap, topic) != (20, N):
        die(f"watermarks after delete_records: {watermarks(bootstrap, topic)}")
    first = first_offset_from_beginning(bootstrap, topic, timeout)
    if first != 20:
        die(f"consumer from the beginning started at {first}, want 20")
    cluster = a.describe_cluster()
    if len(cluster["brokers"]) != 1 or not cluster["cluster_id"]:
        die(f"describe_cluster: {cluster}")
    # (describe_log_dirs is not called: kafka-python only speaks DescribeLogDirs
    # v0, and the broker serves v1-v4, which confluent-kafka and Java use.)
    a.delete_topics([topic])
    a.close()


def with_confluent(bootstrap, topic, timeout):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewPartitions, NewTopic,
                                       ResourceType)
    a = AdminClient({"bootstrap.servers": bootstrap})

    def wait(futs):
        return {k: f.result(timeout=timeout) for k, f in futs.items()}

    wait(a.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "delete", "segment.bytes": "4096"})]))
    res = wait(a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))
    cfg = next(iter(res.values()))
    if cfg["segment.bytes"].value != "4096" or cfg["segment.bytes"].is_default:
        die(f"segment.bytes: {cfg['segment.bytes']}")
    if not cfg["retention.ms"].is_default:
        die(f"retention.ms should be a default: {cfg['retention.ms']}")
    res = wait(a.describe_configs([ConfigResource(ResourceType.BROKER, "0")]))
    bcfg = next(iter(res.values()))
    if "log.retention.ms" not in bcfg:
        die("broker config log.retention.ms not described")
    # Incremental: SET retention.ms, APPEND compact to cleanup.policy.
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    wait(a.incremental_alter_configs([r]))
    cfg = next(iter(wait(a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])).values()))
    if cfg["retention.ms"].value != "60000" or cfg["cleanup.policy"].value != "delete,compact":
        die(f"after incremental alter: retention.ms={cfg['retention.ms'].value} cleanup.policy={cfg['cleanup.policy'].value}")
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    wait(a.incremental_alter_configs([r]))
    cfg = next(iter(wait(a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])).values()))
    if cfg["cleanup.policy"].value != "delete" or not cfg["retention.ms"].is_default:
        die(f"after subtract/delete: {cfg['cleanup.policy']} {cfg['retention.ms']}")
    try:
        wait(a.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("segment.bytes", "-1", incremental_operation=AlterConfigOpType.SET)])]))
        die("an invalid segment.bytes was accepted")
    except Exception as e:  # KafkaException(INVALID_CONFIG)
        if "INVALID_CONFIG" not in str(e):
            die(f"invalid value gave {e!r}, want INVALID_CONFIG")
    wait(a.create_partitions([NewPartitions(topic, 2)]))
    produce(bootstrap, topic, N)
    res = wait(a.delete_records([TopicPartition(topic, 0, 30)]))
    low = next(iter(res.values())).low_watermark
    if low != 30:
        die(f"delete_records low watermark {low}, want 30")
    if watermarks(bootstrap, topic) != (30, N):
        die(f"watermarks after delete_records: {watermarks(bootstrap, topic)}")
    first = first_offset_from_beginning(bootstrap, topic, timeout)
    if first != 30:
        die(f"consumer from the beginning started at {first}, want 30")
    cl = a.describe_cluster().result(timeout=timeout)
    if len(cl.nodes) != 1 or not cl.cluster_id:
        die(f"describe_cluster: {cl}")
    wait(a.delete_topics([topic]))


def main():
    p = arg_parser(__doc__)
    p.add_argument("--client", choices=["kafka-python", "confluent"], required=True)
    args = p.parse_args()
    setup_logging()
    if args.client == "kafka-python":
        with_kafka_python(args.bootstrap, args.topic, args.timeout)
    else:
        with_confluent(args.bootstrap, args.topic, args.timeout)


if __name__ == "__main__":
    main()
