#!/usr/bin/env bash
# Client traffic for the APIs tests/compat/run.sh does not reach (groups
# admin, DescribeLogDirs, DeleteRecords, OffsetDelete, DescribeCluster,
# aborted transactions, every codec from librdkafka), run against a broker at
# $1 (HOST:PORT) -- in practice the capture proxy of broker_behind_proxy.sh.
# Every step is bounded; a failing step is reported and the rest still run
# (the point is the frames the clients send, not the answers).
#
# Environment: SHARDLOG_REAL_BIN (the `shardlog` CLI, a librdkafka client),
# COMPAT_VENV (kafka-python + confluent-kafka).
set -uo pipefail
B=${1:?usage: more_clients.sh HOST:PORT}
CLI=${SHARDLOG_REAL_BIN:?}
PY=${COMPAT_VENV:?}/bin/python3
T=seed-$$
step() { echo "-- $*"; timeout 60 "$@" >/dev/null 2>&1 || echo "   (exit $?)"; }
cli() { step "$CLI" "$@" --bootstrap-server "$B"; }

cli topic create "$T" -p 3 -c cleanup.policy=compact -c compression.type=zstd
cli topic create "$T-plain" -p 2
cli topic list
cli topic describe "$T"
cli topic alter "$T-plain" -p 4
cli config describe --entity-type topics --entity-name "$T"
cli config alter --entity-type topics --entity-name "$T" --add-config retention.ms=600000 --delete-config compression.type
cli config describe --entity-type brokers --entity-name 1
for z in none gzip snappy lz4 zstd; do
    seq 1 200 | sed "s/^/k\\0:$z-value-/" | step "$CLI" produce "$T" --parse-key --key-separator : --header h=$z --compression "$z" --bootstrap-server "$B"
    seq 1 50 | step "$CLI" produce "$T-plain" --compression "$z" --acks all --linger-ms 5 --bootstrap-server "$B"
done
cli consume "$T" --from-beginning --group "g-$T" --max-messages 300 --timeout-ms 15000
cli consume "$T-plain" --from-beginning --isolation-level read_committed --max-messages 50 --timeout-ms 10000
cli group list
cli group describe "g-$T"
cli group reset-offsets "g-$T" --topic "$T" --to-earliest --execute
cli group delete-offsets "g-$T" --topic "$T"
cli group delete "g-$T"
cli records delete --partition "$T-plain:0" --before-offset 10
cli cluster info
cli api-versions
step "$CLI" verifiable-producer --topic "$T-plain" --max-messages 100 --bootstrap-server "$B"
step "$CLI" verifiable-consumer --topic "$T-plain" --group-id "vg-$T" --max-messages 50 --bootstrap-server "$B"

step "$PY" - "$B" "$T" <<'PYEOF'
import sys, time
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewPartitions, ConfigResource, ConfigResourceType
b, t = sys.argv[1], sys.argv[2]
p = KafkaProducer(bootstrap_servers=b, compression_type="lz4", enable_idempotence=True)
for i in range(100):
    p.send(t + "-plain", key=b"k%d" % i, value=b"v" * (i % 50), headers=[("h", b"x")])
p.flush(); p.close()
c = KafkaConsumer(t + "-plain", bootstrap_servers=b, group_id="kpg-" + t, auto_offset_reset="earliest", consumer_timeout_ms=8000)
for _ in c: pass
c.commit(); c.close()
a = KafkaAdminClient(bootstrap_servers=b)
for call in (lambda: a.list_consumer_groups(), lambda: a.describe_consumer_groups(["kpg-" + t]),
             lambda: a.list_consumer_group_offsets("kpg-" + t), lambda: a.describe_log_dirs(),
             lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)]),
             lambda: a.describe_cluster(), lambda: a.delete_consumer_groups(["kpg-" + t])):
    try: call()
    except Exception as e: print("kafka-python:", e)
try:
    from kafka.structs import TopicPartition
    a.delete_records({TopicPartition(t + "-plain", 1): 5})
except Exception as e: print("kafka-python delete_records:", e)
a.close()
PYEOF

step "$PY" - "$B" "$T" <<'PYEOF'
import sys
from confluent_kafka import Producer, Consumer, TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewPartitions, ConfigResource, ConfigEntry, AlterConfigOpType, OffsetSpec
b, t = sys.argv[1], sys.argv[2]
out = t + "-txn"
a = AdminClient({"bootstrap.servers": b})
from confluent_kafka.admin import NewTopic
for f in a.create_topics([NewTopic(out, 2, 1)]).values():
    try: f.result(20)
    except Exception as e: print(e)
p = Producer({"bootstrap.servers": b, "transactional.id": "tx-" + t, "compression.type": "gzip"})
p.init_transactions(20)
for commit in (False, True, False):
    p.begin_transaction()
    for i in range(20):
        p.produce(out, key=b"k%d" % i, value=b"txn-value-%d" % i, partition=i % 2)
    c = Consumer({"bootstrap.servers": b, "group.id": "ckg-" + t, "enable.auto.commit": False})
    p.send_offsets_to_transaction([TopicPartition(t + "-plain", 0, 5)], c.consumer_group_metadata(), 20)
    c.close()
    (p.commit_transaction if commit else p.abort_transaction)(20)
p.flush(10)
c = Consumer({"bootstrap.servers": b, "group.id": "rc-" + t, "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
c.subscribe([out])
for _ in range(20):
    c.poll(0.5)
c.commit(asynchronous=False) if c.assignment() else None
c.close()
calls = [
    lambda: a.list_consumer_groups().result(20),
    lambda: a.describe_consumer_groups(["rc-" + t]),
    lambda: a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("rc-" + t)]),
    lambda: a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("rc-" + t, [TopicPartition(out, 0, 1)])]),
    lambda: a.describe_cluster().result(20),
    lambda: a.describe_topics(__import__("confluent_kafka").TopicCollection([out])),
    lambda: a.list_offsets({TopicPartition(out, 0): OffsetSpec.latest(), TopicPartition(out, 1): OffsetSpec.max_timestamp()}),
    lambda: a.delete_records([TopicPartition(out, 0, 3)]),
    lambda: a.incremental_alter_configs([ConfigResource("topic", out, incremental_configs=[ConfigEntry("retention.ms", "700000", incremental_operation=AlterConfigOpType.SET)])]),
    lambda: a.create_partitions([NewPartitions(out, 3)]),
    lambda: a.describe_configs([ConfigResource("broker", "1")]),
    lambda: a.delete_consumer_groups(["rc-" + t]),
    lambda: a.delete_topics([t + "-plain"]),
]
for call in calls:
    try:
        r = call()
        if isinstance(r, dict):
            for f in r.values():
                try: f.result(20)
                except Exception as e: print("confluent:", e)
    except Exception as e:
        print("confluent:", e)
PYEOF

for z in gzip snappy lz4 zstd; do
    seq 1 30 | step kcat -P -b "$B" -t "$T-kcat" -z "$z" -X message.timeout.ms=20000
done
step kcat -C -b "$B" -t "$T-kcat" -o beginning -e -q
step kcat -L -b "$B"
echo "more_clients: done"
