package shardlog.compat;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/**
 * Admin: describeCluster, createTopics (with configs, validate-only, duplicate),
 * listTopics, describeTopics, describeConfigs (topic and broker),
 * incrementalAlterConfigs (SET, DELETE, an unknown key), createPartitions (grow, shrink
 * refused), deleteRecords with listOffsets, listConsumerGroups, describeConsumerGroups,
 * listConsumerGroupOffsets, deleteConsumerGroupOffsets, deleteConsumerGroups,
 * describeLogDirs and deleteTopics, each answer compared with what was done.
 */
final class AdminCheck {
    private AdminCheck() {}

    static final long T = 60;

    static void run(String bootstrap, String topic, Checks c) throws Exception {
        try (Admin admin = Clients.admin(bootstrap)) {
            DescribeClusterResult cluster = admin.describeCluster();
            String clusterId = cluster.clusterId().get(T, TimeUnit.SECONDS);
            Collection<Node> nodes = cluster.nodes().get(T, TimeUnit.SECONDS);
            Node controller = cluster.controller().get(T, TimeUnit.SECONDS);
            c.ok("describeCluster: cluster id", clusterId != null && !clusterId.isEmpty(),
                    "cluster id " + clusterId);
            c.equal("describeCluster: one node", 1, nodes.size());
            Node node = nodes.iterator().next();
            c.equal("describeCluster: the node is the bootstrap address", bootstrap,
                    node.host() + ":" + node.port());
            c.equal("describeCluster: controller is that node", node.id(),
                    controller == null ? null : controller.id());

            NewTopic nt = new NewTopic(topic, 2, (short) 1)
                    .configs(Map.of("retention.ms", "3600000"));
            admin.createTopics(List.of(nt)).all().get(T, TimeUnit.SECONDS);
            c.ok("createTopics " + topic + " (2 partitions, retention.ms)", true, "");
            String validateOnly = topic + "-validate-only";
            admin.createTopics(List.of(new NewTopic(validateOnly, 1, (short) 1)),
                    new CreateTopicsOptions().validateOnly(true)).all().get(T, TimeUnit.SECONDS);
            expectError(c, "createTopics an existing topic -> TopicExistsException",
                    TopicExistsException.class,
                    () -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all()
                            .get(T, TimeUnit.SECONDS));
            Set<String> names = admin.listTopics().names().get(T, TimeUnit.SECONDS);
            c.ok("listTopics lists the topic", names.contains(topic), "names " + names);
            c.ok("listTopics does not list a validate-only topic", !names.contains(validateOnly),
                    "names " + names);

            TopicDescription td = describe(admin, topic);
            c.equal("describeTopics: 2 partitions", 2, td.partitions().size());
            c.ok("describeTopics: leader is the node, topic id set",
                    td.partitions().stream().allMatch(p -> p.leader() != null
                            && p.leader().id() == node.id() && p.replicas().size() == 1
                            && p.isr().size() == 1) && !td.topicId().equals(
                                    org.apache.kafka.common.Uuid.ZERO_UUID),
                    td.toString());

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = configs(admin, res);
            ConfigEntry retention = cfg.get("retention.ms");
            c.ok("describeConfigs: retention.ms=3600000 as a topic override",
                    retention != null && "3600000".equals(retention.value())
                            && retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms entry " + retention);
            ConfigEntry cleanup = cfg.get("cleanup.policy");
            c.ok("describeConfigs: cleanup.policy=delete, not an override",
                    cleanup != null && "delete".equals(cleanup.value())
                            && cleanup.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "cleanup.policy entry " + cleanup);
            Config brokerCfg = configs(admin,
                    new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.id())));
            c.ok("describeConfigs: broker configs include num.partitions",
                    brokerCfg.get("num.partitions") != null, "broker configs " + brokerCfg);

            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"),
                            AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""),
                            AlterConfigOp.OpType.DELETE)))).all().get(T, TimeUnit.SECONDS);
            cfg = configs(admin, res);
            ConfigEntry mmb = cfg.get("max.message.bytes");
            c.ok("incrementalAlterConfigs SET max.message.bytes=2000000",
                    mmb != null && "2000000".equals(mmb.value())
                            && mmb.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "max.message.bytes entry " + mmb);
            retention = cfg.get("retention.ms");
            c.ok("incrementalAlterConfigs DELETE retention.ms (back to the default)",
                    retention != null && !"3600000".equals(retention.value())
                            && retention.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms entry " + retention);
            expectError(c, "incrementalAlterConfigs an unknown key -> InvalidConfigurationException",
                    InvalidConfigurationException.class,
                    () -> admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                            new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                            .all().get(T, TimeUnit.SECONDS));

            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4)))
                    .all().get(T, TimeUnit.SECONDS);
            c.equal("createPartitions 2 -> 4", 4, describe(admin, topic).partitions().size());
            expectError(c, "createPartitions 4 -> 3 -> InvalidPartitionsException",
                    InvalidPartitionsException.class,
                    () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3)))
                            .all().get(T, TimeUnit.SECONDS));

            Clients.produceEach(bootstrap, topic, 4, 100, "rec");
            TopicPartition p0 = new TopicPartition(topic, 0);
            var deleted = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(40)))
                    .lowWatermarks().get(p0).get(T, TimeUnit.SECONDS);
            c.equal("deleteRecords before 40: low watermark", 40L, deleted.lowWatermark());
            long earliest = admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).partitionResult(p0)
                    .get(T, TimeUnit.SECONDS).offset();
            long latest = admin.listOffsets(Map.of(p0, OffsetSpec.latest())).partitionResult(p0)
                    .get(T, TimeUnit.SECONDS).offset();
            c.equal("listOffsets earliest after deleteRecords", 40L, earliest);
            c.equal("listOffsets latest", 100L, latest);
            var readBack = Clients.readAll(bootstrap, List.of(p0), "read_uncommitted").get(p0);
            c.ok("consumer reads from the new log start",
                    readBack.size() == 60 && readBack.get(0).offset() == 40
                            && readBack.get(0).key().equals("rec-0-40"),
                    readBack.size() + " records, first "
                            + (readBack.isEmpty() ? "none" : readBack.get(0)));
            if (readBack.size() > 10) {
                // the first offset at or after a timestamp, as the records read back say
                long ts = readBack.get(10).timestamp();
                long want = readBack.stream().filter(r -> r.timestamp() >= ts)
                        .mapToLong(r -> r.offset()).min().orElse(-1);
                long have = admin.listOffsets(Map.of(p0, OffsetSpec.forTimestamp(ts)))
                        .partitionResult(p0).get(T, TimeUnit.SECONDS).offset();
                c.equal("listOffsets forTimestamp", want, have);
            }

            groups(admin, bootstrap, topic, c);

            Map<Integer, Map<String, LogDirDescription>> dirs = admin
                    .describeLogDirs(List.of(node.id())).allDescriptions().get(T, TimeUnit.SECONDS);
            Map<String, LogDirDescription> mine = dirs.get(node.id());
            ReplicaInfo info = null;
            for (LogDirDescription d : mine.values()) {
                if (d.replicaInfos().containsKey(p0)) info = d.replicaInfos().get(p0);
            }
            c.ok("describeLogDirs: a log dir holds " + p0 + " with a size",
                    info != null && info.size() > 0, "log dirs " + mine);
            c.ok("describeLogDirs: total/usable bytes reported", mine.values().stream().allMatch(
                    d -> d.totalBytes().isPresent() && d.usableBytes().isPresent()),
                    "log dirs " + mine);

            admin.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS);
            names = admin.listTopics().names().get(T, TimeUnit.SECONDS);
            c.ok("deleteTopics: no longer listed", !names.contains(topic), "names " + names);
            expectError(c, "describeTopics a deleted topic -> UnknownTopicOrPartitionException",
                    UnknownTopicOrPartitionException.class, () -> describe(admin, topic));
        }
    }

    /** One consumer in a group on TOPIC: list, describe, offsets, delete offsets, delete. */
    static void groups(Admin admin, String bootstrap, String topic, Checks c) throws Exception {
        String group = "admin-" + topic;
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(Clients.consumerProps(bootstrap, group))) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (consumer.assignment().size() < 4 && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(100));
            }
            consumer.commitSync(Map.of(p0, new OffsetAndMetadata(100, "meta-0"),
                    p1, new OffsetAndMetadata(50)));

            Collection<ConsumerGroupListing> listed = admin.listConsumerGroups().all()
                    .get(T, TimeUnit.SECONDS);
            ConsumerGroupListing mine = listed.stream().filter(l -> l.groupId().equals(group))
                    .findFirst().orElse(null);
            c.ok("listConsumerGroups lists the group, stable",
                    mine != null && Clients.state(mine).equals("Stable"),
                    "listed " + listed);
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                    .describedGroups().get(group).get(T, TimeUnit.SECONDS);
            c.ok("describeConsumerGroups: stable, one member owning the 4 partitions, range",
                    Clients.state(d).equals("Stable") && d.members().size() == 1
                            && d.members().iterator().next().assignment().topicPartitions().size() == 4
                            && "range".equals(d.partitionAssignor()) && d.coordinator() != null,
                    d.toString());
            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            Map<TopicPartition, String> have = new HashMap<>();
            offsets.forEach((tp, om) -> have.put(tp, om.offset() + "/" + om.metadata()));
            c.equal("listConsumerGroupOffsets (offsets and metadata)",
                    Map.of(p0, "100/meta-0", p1, "50/"), have);
        }
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                .describedGroups().get(group).get(T, TimeUnit.SECONDS);
        c.ok("describeConsumerGroups after the consumer left: empty",
                Clients.state(d).equals("Empty") && d.members().isEmpty(), d.toString());
        admin.alterConsumerGroupOffsets(group, Map.of(p1, new OffsetAndMetadata(10, "altered")))
                .all().get(T, TimeUnit.SECONDS);
        Map<TopicPartition, String> altered = new HashMap<>();
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                .get(T, TimeUnit.SECONDS)
                .forEach((tp, om) -> altered.put(tp, om.offset() + "/" + om.metadata()));
        c.equal("alterConsumerGroupOffsets " + p1 + " -> 10",
                Map.of(p0, "100/meta-0", p1, "10/altered"), altered);
        admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get(T, TimeUnit.SECONDS);
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
        c.equal("deleteConsumerGroupOffsets " + p1 + ": only " + p0 + " left", Set.of(p0),
                offsets.keySet());
        admin.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS);
        String after;
        try {
            after = "state " + Clients.state(admin.describeConsumerGroups(List.of(group))
                    .describedGroups().get(group).get(T, TimeUnit.SECONDS));
        } catch (ExecutionException e) {
            after = e.getCause() instanceof GroupIdNotFoundException ? "not found" : e.toString();
        }
        c.ok("describeConsumerGroups after deleteConsumerGroups: dead or not found",
                after.equals("not found") || after.equals("state Dead"), after);
    }

    static TopicDescription describe(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS)
                .get(topic);
    }

    static Config configs(Admin admin, ConfigResource res) throws Exception {
        return admin.describeConfigs(List.of(res)).all().get(T, TimeUnit.SECONDS).get(res);
    }

    interface Call {
        void call() throws Exception;
    }

    /** CALL must fail with an ExecutionException caused by EXPECTED. */
    static void expectError(Checks c, String name, Class<? extends Throwable> expected,
            Call call) {
        try {
            call.call();
            c.fail(name, "succeeded");
        } catch (ExecutionException e) {
            c.ok(name, expected.isInstance(e.getCause()), "failed with " + e.getCause());
        } catch (Exception e) {
            c.fail(name, "failed with " + e);
        }
    }
}
