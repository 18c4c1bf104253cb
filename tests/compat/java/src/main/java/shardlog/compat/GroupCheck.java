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
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.TopicPartition;

/**
 * Consumer groups, classic protocol, with the eager range assignor or the incremental
 * cooperative-sticky one: member A alone gets all 6 partitions; B joins and they split them
 * (eager: A gives up everything first; cooperative: A gives up only what moves to B, in a
 * second rebalance); records produced then are consumed once each by the partition's owner,
 * B starting from what A committed; B leaves and A gets everything back, resuming from B's
 * commits. Committed offsets are read back through the consumer and Admin.
 */
final class GroupCheck {
    private GroupCheck() {}

    static final int PARTITIONS = 6;

    static void run(String bootstrap, String topic, boolean cooperative, Checks c)
            throws Exception {
        String group = "group-" + topic;
        String protocol = cooperative ? "cooperative-sticky" : "range";
        List<TopicPartition> all = Clients.partitions(topic, PARTITIONS);
        Set<TopicPartition> allSet = new HashSet<>(all);
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, topic, PARTITIONS);
        }
        Properties props = Clients.consumerProps(bootstrap, group);
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                (cooperative ? CooperativeStickyAssignor.class : RangeAssignor.class).getName());
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        Duration wait = Duration.ofSeconds(60);

        Member a = new Member("a", props, topic);
        Member b = null;
        try {
            Member.pollUntil("a to own all partitions", List.of(a),
                    () -> a.assignment().equals(allSet), wait);
            c.equal(protocol + ": a alone owns all partitions", allSet, a.assignment());

            Clients.produceEach(bootstrap, topic, PARTITIONS, 30, "first");
            Member.pollUntil("a to consume the first 180 records", List.of(a),
                    () -> a.consumed.size() == 30 * PARTITIONS, wait);
            c.equal(protocol + ": a consumed the first records once each", 30 * PARTITIONS,
                    (int) a.consumed.values().stream().filter(n -> n == 1).count());

            int revocationsBefore = a.revocations.size();
            Member bb = new Member("b", props, topic);
            b = bb;
            Member.pollUntil("a and b to split the partitions", List.of(a, bb),
                    () -> {
                        Set<TopicPartition> x = a.assignment(), y = bb.assignment();
                        Set<TopicPartition> u = new HashSet<>(x);
                        u.addAll(y);
                        return x.size() == 3 && y.size() == 3 && u.equals(allSet);
                    }, wait);
            c.ok(protocol + ": a and b own 3 partitions each, disjoint", true, "");
            c.equal(protocol + ": a and b in the same generation", a.generation(), b.generation());
            List<Set<TopicPartition>> revoked = a.revocations.subList(revocationsBefore,
                    a.revocations.size());
            if (cooperative) {
                Set<TopicPartition> moved = b.assignment();
                c.equal(protocol + ": a revoked only the partitions that moved to b",
                        List.of(moved), revoked);
            } else {
                c.equal(protocol + ": a revoked all its partitions before the rebalance",
                        List.of(allSet), revoked);
                // RangeAssignor: the member first in member-id order gets partitions 0-2.
                Set<TopicPartition> low = new HashSet<>(all.subList(0, 3));
                Set<TopicPartition> high = new HashSet<>(all.subList(3, 6));
                c.ok(protocol + ": range assignment is contiguous",
                        (a.assignment().equals(low) && b.assignment().equals(high))
                                || (a.assignment().equals(high) && b.assignment().equals(low)),
                        "a=" + a.assignment() + " b=" + b.assignment());
            }

            Clients.produceEach(bootstrap, topic, PARTITIONS, 20, "second");
            Member bFinal = b;
            Member.pollUntil("a and b to consume the second 120 records", List.of(a, b),
                    () -> count(a, "second-") + count(bFinal, "second-") == 20 * PARTITIONS, wait);
            checkOwners(c, protocol + ": second records", topic, "second-", a, b);
            c.ok(protocol + ": b consumed from a's commits (none of the first records)",
                    b.consumed.keySet().stream().noneMatch(k -> k.startsWith("first-")),
                    "b consumed " + b.consumed.keySet());

            Set<TopicPartition> aBefore = a.assignment();
            int aRevocations = a.revocations.size();
            b.consumer.close();
            b = null;
            Member.pollUntil("a to own all partitions after b left", List.of(a),
                    () -> a.assignment().equals(allSet), wait);
            c.ok(protocol + ": a owns all partitions after b left (LeaveGroup)", true, "");
            List<Set<TopicPartition>> revokedOnLeave = a.revocations.subList(aRevocations,
                    a.revocations.size());
            if (cooperative) {
                c.equal(protocol + ": a revoked nothing when b left", List.of(), revokedOnLeave);
            } else {
                c.equal(protocol + ": a revoked its partitions when b left (eager)",
                        List.of(aBefore), revokedOnLeave);
            }

            Clients.produceEach(bootstrap, topic, PARTITIONS, 10, "third");
            Member.pollUntil("a to consume the third 60 records", List.of(a),
                    () -> count(a, "third-") == 10 * PARTITIONS, wait);
            Set<String> dup = new HashSet<>();
            a.consumed.forEach((k, n) -> {
                if (n != 1 || k.startsWith("second-") && bFinal.consumed.containsKey(k)) dup.add(k);
            });
            c.ok(protocol + ": a resumed from b's commits (nothing consumed twice)", dup.isEmpty(),
                    "consumed again: " + dup);

            long perPartition = 30 + 20 + 10;
            Map<TopicPartition, OffsetAndMetadata> committed =
                    a.consumer.committed(allSet, Duration.ofSeconds(30));
            Map<TopicPartition, Long> want = new HashMap<>();
            Map<TopicPartition, Long> have = new HashMap<>();
            for (TopicPartition tp : all) {
                want.put(tp, perPartition);
                have.put(tp, committed.get(tp) == null ? null : committed.get(tp).offset());
            }
            c.equal(protocol + ": committed offsets (consumer.committed)", want, have);

            try (Admin admin = Clients.admin(bootstrap)) {
                Map<TopicPartition, OffsetAndMetadata> viaAdmin = admin
                        .listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                        .get(60, TimeUnit.SECONDS);
                Map<TopicPartition, Long> adminHave = new HashMap<>();
                viaAdmin.forEach((tp, om) -> adminHave.put(tp, om.offset()));
                c.equal(protocol + ": committed offsets (Admin.listConsumerGroupOffsets)", want,
                        adminHave);
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get(60, TimeUnit.SECONDS);
                c.equal(protocol + ": described group state", "Stable", Clients.state(d));
                c.equal(protocol + ": described group assignor", protocol, d.partitionAssignor());
                c.equal(protocol + ": described group has one member", 1, d.members().size());
                c.equal(protocol + ": described member's assignment", allSet,
                        d.members().iterator().next().assignment().topicPartitions());
            }
        } finally {
            if (b != null) b.close();
            a.close();
        }
    }

    static int count(Member m, String prefix) {
        return (int) m.consumed.keySet().stream().filter(k -> k.startsWith(prefix)).count();
    }

    /** Every record with PREFIX consumed exactly once, by the member owning its partition. */
    static void checkOwners(Checks c, String name, String topic, String prefix, Member... ms) {
        Map<String, Integer> total = new HashMap<>();
        StringBuilder wrong = new StringBuilder();
        for (Member m : ms) {
            Set<TopicPartition> owned = m.assignment();
            m.consumed.forEach((k, n) -> {
                if (!k.startsWith(prefix)) return;
                total.merge(k, n, Integer::sum);
                int part = Integer.parseInt(k.split("-")[1]);
                if (!owned.contains(new TopicPartition(topic, part))) {
                    wrong.append(m.name).append(" consumed ").append(k).append("; ");
                }
            });
        }
        boolean once = total.values().stream().allMatch(n -> n == 1);
        c.ok(name + " consumed once each, by the partition's owner", once && wrong.isEmpty(),
                (once ? "" : "some consumed twice: " + total + " ") + wrong);
    }
}
