package shardlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Client construction and the read-everything helper shared by the checks. */
final class Clients {
    private Clients() {}

    static final Duration TIMEOUT = Duration.ofSeconds(60);

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        return Admin.create(p);
    }

    /** Producer properties with the client's defaults left alone (idempotent, acks=all). */
    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        return p;
    }

    static KafkaProducer<String, String> producer(String bootstrap) {
        return new KafkaProducer<>(producerProps(bootstrap));
    }

    static Properties consumerProps(String bootstrap, String groupId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (groupId != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        return p;
    }

    static void createTopic(Admin admin, String topic, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                .all().get(60, TimeUnit.SECONDS);
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(new TopicPartition(topic, i));
        return out;
    }

    /** Sends COUNT keyed records to each partition of TOPIC ("TAG-p-i" keys and values). */
    static void produceEach(String bootstrap, String topic, int partitions, int count, String tag)
            throws Exception {
        try (KafkaProducer<String, String> p = producer(bootstrap)) {
            List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < count; i++) {
                    String k = tag + "-" + part + "-" + i;
                    fs.add(p.send(new ProducerRecord<>(topic, part, k, "v-" + k)));
                }
            }
            for (var f : fs) f.get(60, TimeUnit.SECONDS);
        }
    }

    /**
     * Reads every partition in TPS from its start up to the end offset the consumer sees
     * (the last stable offset for read_committed), with assign(), no group.
     */
    static Map<TopicPartition, List<ConsumerRecord<String, String>>> readAll(
            String bootstrap, Collection<TopicPartition> tps, String isolation) {
        Properties p = consumerProps(bootstrap, null);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        Map<TopicPartition, List<ConsumerRecord<String, String>>> out = new HashMap<>();
        for (TopicPartition tp : tps) out.put(tp, new ArrayList<>());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, TIMEOUT);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp, TIMEOUT) < end.get(tp)) done = false;
                }
                if (done) break;
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("readAll: end offsets " + end
                            + " not reached within " + TIMEOUT);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.get(new TopicPartition(r.topic(), r.partition())).add(r);
                }
            }
        }
        return out;
    }

    /**
     * The group's state as Kafka names it ("Stable", "Empty", "Dead"). state() is the
     * accessor kafka-clients 3.x and 4.x both have (4.x deprecates it for groupState(),
     * which 3.x lacks), so the checks compile against either.
     */
    @SuppressWarnings("deprecation")
    static String state(ConsumerGroupDescription d) {
        return String.valueOf(d.state());
    }

    @SuppressWarnings("deprecation")
    static String state(ConsumerGroupListing l) {
        return l.state().map(String::valueOf).orElse("(none)");
    }

    static String headers(Iterable<Header> hs) {
        StringBuilder b = new StringBuilder();
        for (Header h : hs) {
            b.append(h.key()).append('=')
                    .append(h.value() == null ? "null" : new String(h.value())).append(';');
        }
        return b.toString();
    }
}
