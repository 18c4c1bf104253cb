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
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
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
        List<Member> started = new java.util.ArrayList<>(List.of(s1, s2));
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
            // Replace s1, then s2: one of them is the group's leader, whose rejoin the
            // coordinator must answer without a new assignment round either.
            Member s1b = replace(bootstrap, group, topic, s1, s2, "second", c, started);
            replace(bootstrap, group, topic, s2, s1b, "third", c, started);
        } finally {
            for (Member m : started) m.close();
        }
        // Closed static members stay until their session times out; an admin removes them
        // by group.instance.id (LeaveGroup v3+, a batch of members).
        try (Admin admin = Clients.admin(bootstrap)) {
            admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("s1"), new MemberToRemove("s2"))))
                    .all().get(60, TimeUnit.SECONDS);
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                    .describedGroups().get(group).get(60, TimeUnit.SECONDS);
            c.ok("static: removeMembersFromConsumerGroup s1, s2 -> empty group",
                    d.members().isEmpty() && Clients.state(d).equals("Empty"), d.toString());
        }
    }

    /**
     * Closes OLD (no LeaveGroup: static), produces 5 records per partition tagged TAG and
     * starts a consumer with OLD's group.instance.id; checks that it takes OLD's place
     * without a rebalance and that it and OTHER consume the new records once.
     */
    static Member replace(String bootstrap, String group, String topic, Member old,
            Member other, String tag, Checks c, List<Member> started) throws Exception {
        String instance = old.consumer.groupMetadata().groupInstanceId().orElseThrow();
        String name = "static: replacing " + instance + ": ";
        int generation = old.generation();
        String memberId = old.consumer.groupMetadata().memberId();
        Set<TopicPartition> owned = old.assignment();
        int otherEvents = other.events.size();

        old.close();
        Clients.produceEach(bootstrap, topic, PARTITIONS, 5, tag);
        Member nb = new Member(instance + "-" + tag, props(bootstrap, group, instance), topic);
        started.add(nb);
        Member.pollUntil("the new " + instance + " to get partitions and both to consume the "
                + tag + " 20", List.of(nb, other), () -> !nb.assignment().isEmpty()
                        && GroupCheck.count(nb, tag + "-") + GroupCheck.count(other, tag + "-")
                                == 5 * PARTITIONS, Duration.ofSeconds(60));
        c.equal(name + "the new member got the old one's partitions", owned, nb.assignment());
        c.equal(name + "no rebalance (same generation)", generation, nb.generation());
        c.equal(name + "the other member is still in that generation", generation,
                other.generation());
        c.ok(name + "the new member has a new member id",
                !nb.consumer.groupMetadata().memberId().equals(memberId),
                "same member id " + memberId);
        c.equal(name + "the other member saw no rebalance callback", List.of(),
                other.events.subList(otherEvents, other.events.size()));
        c.ok(name + "the new member resumed from the old one's commits",
                nb.consumed.keySet().stream().allMatch(k -> k.startsWith(tag + "-"))
                        && nb.consumed.values().stream().allMatch(n -> n == 1),
                "consumed " + nb.consumed);
        return nb;
    }

    static Properties props(String bootstrap, String group, String instance) {
        Properties p = Clients.consumerProps(bootstrap, group);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        return p;
    }
}
