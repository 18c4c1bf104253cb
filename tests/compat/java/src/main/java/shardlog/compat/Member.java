package shardlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * One group member: a KafkaConsumer driven by the checks' single thread (members are polled
 * in turn, which the classic protocol allows: a pending join just continues at the next
 * poll). It records rebalance callbacks and every record it consumed, and commits
 * synchronously after each non-empty poll.
 */
final class Member implements ConsumerRebalanceListener {
    final String name;
    final KafkaConsumer<String, String> consumer;
    /** "revoked [..]", "assigned [..]", "lost [..]" in order. */
    final List<String> events = new ArrayList<>();
    final List<Set<TopicPartition>> revocations = new ArrayList<>();
    /** Record key -> how many times this member consumed it. */
    final Map<String, Integer> consumed = new HashMap<>();
    /** Every record consumed, by partition. */
    final Map<TopicPartition, List<Long>> offsets = new HashMap<>();

    Member(String name, Properties props, String topic) {
        this.name = name;
        this.consumer = new KafkaConsumer<>(props);
        consumer.subscribe(List.of(topic), this);
    }

    private boolean closed;

    /** Closes the consumer once (later calls do nothing). */
    void close() {
        if (!closed) {
            closed = true;
            consumer.close();
        }
    }

    int poll(long millis) {
        int n = 0;
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(millis))) {
            consumed.merge(r.key(), 1, Integer::sum);
            offsets.computeIfAbsent(new TopicPartition(r.topic(), r.partition()),
                    k -> new ArrayList<>()).add(r.offset());
            n++;
        }
        if (n > 0) consumer.commitSync();
        return n;
    }

    Set<TopicPartition> assignment() {
        return new HashSet<>(consumer.assignment());
    }

    int generation() {
        return consumer.groupMetadata().generationId();
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        events.add("revoked " + partitions);
        revocations.add(new HashSet<>(partitions));
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
        events.add("assigned " + partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
        events.add("lost " + partitions);
    }

    /** Polls all MEMBERS in turn until COND holds on 5 rounds in a row, or throws. */
    static void pollUntil(String what, List<Member> members, java.util.function.BooleanSupplier cond,
            Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        int streak = 0;
        while (streak < 5) {
            if (System.nanoTime() > deadline) {
                StringBuilder b = new StringBuilder();
                for (Member m : members) {
                    b.append(" ").append(m.name).append("=").append(m.assignment())
                            .append(" events ").append(m.events).append(";");
                }
                throw new IllegalStateException("timed out after " + timeout + " waiting for "
                        + what + ":" + b);
            }
            for (Member m : members) m.poll(100);
            streak = cond.getAsBoolean() ? streak + 1 : 0;
        }
    }
}
