package shardlog.compat;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;

/**
 * Static membership (KIP-345): two members with group.instance.id s1 and s2 split 4
 * partitions; s1's consumer is closed (a static member does not send LeaveGroup) and a new
 * consumer with the same group.instance.id takes its place within the session timeout. The
 * group must not rebalance: the new s1 gets the old assignment in the same generation under
 * a new member id, s2 sees no callback, and consumption resumes from s1's commits.
 */
final class StaticMembershipCheck {
    private StaticMembershipCheck() {}

    static final int PARTITIONS = 4;

    static void run(String bootstrap, String topic, Checks c) throws Exception {
        String group = "static-" + topic;
        Set<TopicPartition> all = new HashSet<>(Clients.partitions(topic, PARTITIONS));
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, topic, PARTITIONS);
        }
        Clients.produceEach(bootstrap, topic, PARTITIONS, 25, "first");
        Duration wait = Duration.ofSeconds(60);
        Member s1 = new Member("s1", props(bootstrap, group, "s1"), topic);
        Member s2 = new Member("s2", props(bootstrap, group, "s2"), topic);
        Member s1b = null;
        try {
            Member.pollUntil("s1 and s2 to split the partitions and consume 100 records",
                    List.of(s1, s2), () -> {
                        Set<TopicPartition> u = s1.assignment();
                        u.addAll(s2.assignment());
                        return s1.assignment().size() == 2 && s2.assignment().size() == 2
                                && u.equals(all)
                                && s1.consumed.size() + s2.consumed.size() == 25 * PARTITIONS;
                    }, wait);
            c.ok("static: s1 and s2 own 2 partitions each and consumed the first records", true,
                    "");
            try (Admin admin = Clients.admin(bootstrap)) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get(60, TimeUnit.SECONDS);
                Set<String> ids = new TreeSet<>();
                for (MemberDescription m : d.members()) ids.add(m.groupInstanceId().orElse("-"));
                c.equal("static: described members' group.instance.id", Set.of("s1", "s2"), ids);
            }
            int generation = s1.generation();
            String memberId = s1.consumer.groupMetadata().memberId();
            Set<TopicPartition> s1Owned = s1.assignment();
            int s2Events = s2.events.size();

            s1.consumer.close();
            Clients.produceEach(bootstrap, topic, PARTITIONS, 5, "second");
            Member nb = new Member("s1-again", props(bootstrap, group, "s1"), topic);
            s1b = nb;
            Member.pollUntil("the new s1 to get partitions and both to consume the second 20",
                    List.of(nb, s2), () -> !nb.assignment().isEmpty()
                            && GroupCheck.count(nb, "second-") + GroupCheck.count(s2, "second-")
                                    == 5 * PARTITIONS, wait);
            c.equal("static: the new s1 got the old s1's partitions", s1Owned, nb.assignment());
            c.equal("static: no rebalance (same generation)", generation, nb.generation());
            c.equal("static: s2 still in that generation", generation, s2.generation());
            c.ok("static: the new s1 has a new member id",
                    !nb.consumer.groupMetadata().memberId().equals(memberId),
                    "same member id " + memberId);
            c.equal("static: s2 saw no rebalance callback", List.of(),
                    s2.events.subList(s2Events, s2.events.size()));
            c.ok("static: the new s1 resumed from s1's commits",
                    nb.consumed.keySet().stream().noneMatch(k -> k.startsWith("first-"))
                            && nb.consumed.values().stream().allMatch(n -> n == 1),
                    "consumed " + nb.consumed);
        } finally {
            if (s1b != null) s1b.consumer.close();
            s2.consumer.close();
        }
    }

    static Properties props(String bootstrap, String group, String instance) {
        Properties p = Clients.consumerProps(bootstrap, group);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        return p;
    }
}
