package shardlog.compat;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;

/**
 * The consumer group protocol of KIP-848 ({@code group.protocol=consumer}, kafka-clients 4.x;
 * 3.x has it only as an early-access preview, so run.sh runs this check for 4.x only): member
 * a alone gets all 4 partitions; b joins and they split them 2/2, a giving up only what moves
 * to b (the protocol is incremental); records are consumed once each, b starting from a's
 * commits (OffsetCommit/OffsetFetch v9 with the member epoch); Admin describes the group as a
 * consumer-protocol group (ConsumerGroupDescribe) with the server-side assignor; b leaves and a
 * gets everything back without revoking anything; a group asking for the range assignor
 * (group.remote.assignor) is described with it.
 */
final class ConsumerProtocolCheck {
    private ConsumerProtocolCheck() {}

    static final int PARTITIONS = 4;

    static Properties props(String bootstrap, String group, String assignor) {
        Properties p = Clients.consumerProps(bootstrap, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        if (assignor != null) p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
        return p;
    }

    static void run(String bootstrap, String topic, Checks c) throws Exception {
        String group = "cgp-" + topic;
        List<TopicPartition> all = Clients.partitions(topic, PARTITIONS);
        Set<TopicPartition> allSet = new HashSet<>(all);
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, topic, PARTITIONS);
        }
        Duration wait = Duration.ofSeconds(90);
        Member a = new Member("a", props(bootstrap, group, null), topic);
        Member b = null;
        try {
            Member.pollUntil("a to own all partitions", List.of(a),
                    () -> a.assignment().equals(allSet), wait);
            c.equal("consumer protocol: a alone owns all partitions", allSet, a.assignment());
            c.ok("consumer protocol: a has a member epoch", a.generation() > 0,
                    "generation/epoch " + a.generation());

            Clients.produceEach(bootstrap, topic, PARTITIONS, 25, "first");
            Member.pollUntil("a to consume the first 100 records", List.of(a),
                    () -> GroupCheck.count(a, "first-") == 25 * PARTITIONS, wait);
            c.equal("consumer protocol: a consumed the first records once each", 25 * PARTITIONS,
                    (int) a.consumed.values().stream().filter(n -> n == 1).count());

            int revocationsBefore = a.revocations.size();
            Member bb = new Member("b", props(bootstrap, group, null), topic);
            b = bb;
            Member.pollUntil("a and b to split the partitions", List.of(a, bb), () -> {
                Set<TopicPartition> x = a.assignment(), y = bb.assignment();
                Set<TopicPartition> u = new HashSet<>(x);
                u.addAll(y);
                return x.size() == 2 && y.size() == 2 && u.equals(allSet);
            }, wait);
            c.ok("consumer protocol: a and b own 2 partitions each, disjoint", true, "");
            List<Set<TopicPartition>> revoked = nonEmpty(
                    a.revocations.subList(revocationsBefore, a.revocations.size()));
            c.equal("consumer protocol: a revoked only the partitions that moved to b",
                    List.of(b.assignment()), revoked);

            Clients.produceEach(bootstrap, topic, PARTITIONS, 15, "second");
            Member bFinal = b;
            Member.pollUntil("a and b to consume the second 60 records", List.of(a, b),
                    () -> GroupCheck.count(a, "second-") + GroupCheck.count(bFinal, "second-")
                            == 15 * PARTITIONS, wait);
            GroupCheck.checkOwners(c, "consumer protocol: second records", topic, "second-", a, b);
            c.ok("consumer protocol: b consumed from a's commits (none of the first records)",
                    b.consumed.keySet().stream().noneMatch(k -> k.startsWith("first-")),
                    "b consumed " + b.consumed.keySet());

            try (Admin admin = Clients.admin(bootstrap)) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get(60, TimeUnit.SECONDS);
                c.equal("consumer protocol: described group type", GroupType.CONSUMER, d.type());
                c.equal("consumer protocol: described group state", "Stable", Clients.state(d));
                c.equal("consumer protocol: described assignor (server-side default)", "uniform",
                        d.partitionAssignor());
                c.equal("consumer protocol: described members", 2, d.members().size());
                Set<TopicPartition> described = new HashSet<>();
                for (MemberDescription m : d.members()) {
                    described.addAll(m.assignment().topicPartitions());
                    c.equal("consumer protocol: member " + m.clientId() + " target = assignment",
                            m.assignment().topicPartitions(),
                            m.targetAssignment().map(t -> t.topicPartitions()).orElse(null));
                }
                c.equal("consumer protocol: described assignments cover the topic", allSet,
                        described);
                ConsumerGroupListing l = admin.listConsumerGroups().all().get(60, TimeUnit.SECONDS)
                        .stream().filter(x -> x.groupId().equals(group)).findFirst().orElse(null);
                c.ok("consumer protocol: listed as a consumer group",
                        l != null && l.type().equals(java.util.Optional.of(GroupType.CONSUMER)),
                        "listing " + l);
            }

            int aRevocations = a.revocations.size();
            b.consumer.close();
            b = null;
            Member.pollUntil("a to own all partitions after b left", List.of(a),
                    () -> a.assignment().equals(allSet), wait);
            c.ok("consumer protocol: a owns all partitions after b left", true, "");
            c.equal("consumer protocol: a revoked nothing when b left", List.of(),
                    nonEmpty(a.revocations.subList(aRevocations, a.revocations.size())));

            Clients.produceEach(bootstrap, topic, PARTITIONS, 10, "third");
            Member.pollUntil("a to consume the third 40 records", List.of(a),
                    () -> GroupCheck.count(a, "third-") == 10 * PARTITIONS, wait);
            Set<String> dup = new HashSet<>();
            a.consumed.forEach((k, n) -> {
                if (n != 1 || k.startsWith("second-") && bFinal.consumed.containsKey(k)) dup.add(k);
            });
            c.ok("consumer protocol: a resumed from b's commits (nothing consumed twice)",
                    dup.isEmpty(), "consumed again: " + dup);
            long perPartition = 25 + 15 + 10;
            Map<TopicPartition, OffsetAndMetadata> committed =
                    a.consumer.committed(allSet, Duration.ofSeconds(30));
            Map<TopicPartition, Long> want = new HashMap<>();
            Map<TopicPartition, Long> have = new HashMap<>();
            for (TopicPartition tp : all) {
                want.put(tp, perPartition);
                have.put(tp, committed.get(tp) == null ? null : committed.get(tp).offset());
            }
            c.equal("consumer protocol: committed offsets (OffsetFetch v9)", want, have);
        } finally {
            if (b != null) b.close();
            a.close();
        }

        // A group whose member asks for the range assignor is described with it.
        String rangeGroup = "cgp-range-" + topic;
        Member r = new Member("r", props(bootstrap, rangeGroup, "range"), topic);
        try {
            Member.pollUntil("r to own all partitions", List.of(r),
                    () -> r.assignment().equals(allSet), wait);
            try (Admin admin = Clients.admin(bootstrap)) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(rangeGroup))
                        .describedGroups().get(rangeGroup).get(60, TimeUnit.SECONDS);
                c.equal("consumer protocol: group.remote.assignor=range is used", "range",
                        d.partitionAssignor());
            }
        } finally {
            r.close();
        }
    }

    /** Kafka's consumer may call onPartitionsRevoked with nothing in it; those do not count. */
    static List<Set<TopicPartition>> nonEmpty(List<Set<TopicPartition>> xs) {
        return xs.stream().filter(s -> !s.isEmpty()).toList();
    }
}
