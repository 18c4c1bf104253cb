package shardlog.compat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * Producer: one producer per codec (none, gzip, snappy, lz4, zstd), each with the client's
 * default settings (idempotent, acks=all since 3.0), keyed records with headers (one of them
 * null-valued) into a 3-partition topic; then everything is read back with assign() and must
 * be there exactly once, in send order per partition, at the acknowledged offsets. The
 * broker's producer state (DescribeProducers) must show each producer as idempotent, with
 * the last sequence it sent per partition. Then a few edges (see edges()).
 */
final class ProducerCheck {
    private ProducerCheck() {}

    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final int PER_CODEC = 500;
    static final int PARTITIONS = 3;

    record Sent(String key, String value, String headers, long offset) {}

    static void run(String bootstrap, String topic, Checks c) throws Exception {
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, topic, PARTITIONS);
        }
        Map<Integer, List<Sent>> sent = new HashMap<>();
        // per codec: records sent to each partition (the last sequence is count - 1)
        Map<String, int[]> perProducer = new HashMap<>();
        for (String codec : CODECS) {
            Properties p = Clients.producerProps(bootstrap);
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            p.put(ProducerConfig.LINGER_MS_CONFIG, "10");
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            List<Sent> pending = new ArrayList<>();
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
                for (int i = 0; i < PER_CODEC; i++) {
                    String key = "key-" + codec + "-" + i;
                    // repetitive payload so that every codec actually compresses
                    String value = ("value " + codec + " " + i + " ").repeat(1 + i % 7);
                    RecordHeaders hs = new RecordHeaders();
                    hs.add("codec", codec.getBytes());
                    hs.add("index", Integer.toString(i).getBytes());
                    if (i % 10 == 0) hs.add("nullable", null);
                    fs.add(producer.send(new ProducerRecord<>(topic, null, key, value, hs)));
                    pending.add(new Sent(key, value, Clients.headers(hs), -1));
                }
                producer.flush();
                int[] counts = new int[PARTITIONS];
                boolean acked = true;
                for (int i = 0; i < fs.size(); i++) {
                    RecordMetadata md;
                    try {
                        md = fs.get(i).get(60, TimeUnit.SECONDS);
                    } catch (Exception e) {
                        c.fail("produce-" + codec, "record " + i + " not acknowledged: " + e);
                        acked = false;
                        break;
                    }
                    Sent s = pending.get(i);
                    sent.computeIfAbsent(md.partition(), k -> new ArrayList<>())
                            .add(new Sent(s.key, s.value, s.headers, md.offset()));
                    counts[md.partition()]++;
                }
                if (acked) c.ok("produce-" + codec + " (" + PER_CODEC + " records acknowledged)",
                        true, "");
                perProducer.put(codec, counts);
            }
        }
        if (c.anyFailed()) return;

        List<TopicPartition> tps = Clients.partitions(topic, PARTITIONS);
        for (String isolation : new String[] {"read_uncommitted", "read_committed"}) {
            Map<TopicPartition, List<ConsumerRecord<String, String>>> got =
                    Clients.readAll(bootstrap, tps, isolation);
            for (TopicPartition tp : tps) {
                List<Sent> want = sent.getOrDefault(tp.partition(), List.of());
                List<Sent> have = new ArrayList<>();
                for (ConsumerRecord<String, String> r : got.get(tp)) {
                    have.add(new Sent(r.key(), r.value(), Clients.headers(r.headers()), r.offset()));
                }
                String name = "read-back-" + isolation + "-" + tp;
                if (want.equals(have)) {
                    c.ok(name + " (" + want.size() + " records, once each, in order, "
                            + "acknowledged offsets, keys/values/headers equal)", true, "");
                } else {
                    String first = "";
                    for (int i = 0; i < Math.min(want.size(), have.size()); i++) {
                        if (!want.get(i).equals(have.get(i))) {
                            first = "; first difference at #" + i + ": sent " + want.get(i)
                                    + ", read " + have.get(i);
                            break;
                        }
                    }
                    c.fail(name, "sent " + want.size() + " records, read " + have.size() + first);
                }
            }
        }

        // Idempotence was on by default: the broker holds each producer's state per partition.
        try (Admin admin = Clients.admin(bootstrap)) {
            var states = admin.describeProducers(tps).all().get(60, TimeUnit.SECONDS);
            for (TopicPartition tp : tps) {
                List<Integer> wantLast = new ArrayList<>();
                for (String codec : CODECS) {
                    int n = perProducer.get(codec)[tp.partition()];
                    if (n > 0) wantLast.add(n - 1);
                }
                List<Integer> haveLast = new ArrayList<>();
                boolean idsValid = true;
                for (ProducerState s : states.get(tp).activeProducers()) {
                    haveLast.add(s.lastSequence());
                    if (s.producerId() < 0 || s.producerEpoch() < 0) idsValid = false;
                }
                wantLast.sort(null);
                haveLast.sort(null);
                c.equal("describe-producers-" + tp + " (one idempotent producer per codec,"
                        + " last sequences)", wantLast, haveLast);
                c.ok("describe-producers-" + tp + " producer ids and epochs", idsValid,
                        "a producer without id/epoch: " + states.get(tp).activeProducers());
            }
        }
        edges(bootstrap, topic, c);
    }

    /**
     * A topic created by the producer's metadata request (auto-create), a record over the
     * topic's max.message.bytes (the broker's MESSAGE_TOO_LARGE is RecordTooLargeException),
     * and a consumer whose position is past the log end (OFFSET_OUT_OF_RANGE, reset to
     * earliest).
     */
    static void edges(String bootstrap, String topic, Checks c) throws Exception {
        String auto = topic + "-auto";
        String small = topic + "-small";
        try (Admin admin = Clients.admin(bootstrap)) {
            admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(small, 1,
                    (short) 1).configs(Map.of("max.message.bytes", "1000"))))
                    .all().get(60, TimeUnit.SECONDS);
        }
        try (KafkaProducer<String, String> producer = Clients.producer(bootstrap)) {
            RecordMetadata md = producer.send(new ProducerRecord<>(auto, "k", "auto-created"))
                    .get(60, TimeUnit.SECONDS);
            c.equal("produce to an unknown topic auto-creates it (offset of the first record)",
                    0L, md.offset());
            String why;
            try {
                producer.send(new ProducerRecord<>(small, "k", "x".repeat(5000)))
                        .get(60, TimeUnit.SECONDS);
                why = "a 5000-byte record was accepted by a topic with max.message.bytes=1000";
            } catch (java.util.concurrent.ExecutionException e) {
                why = e.getCause() instanceof org.apache.kafka.common.errors.RecordTooLargeException
                        ? null : "failed with " + e.getCause();
            }
            c.ok("a record over the topic's max.message.bytes -> RecordTooLargeException",
                    why == null, String.valueOf(why));
            md = producer.send(new ProducerRecord<>(small, "k", "fits")).get(60, TimeUnit.SECONDS);
            c.equal("the topic still takes a record that fits, at offset 0", 0L, md.offset());
        }
        TopicPartition tp = new TopicPartition(auto, 0);
        Properties p = Clients.consumerProps(bootstrap, null);
        try (org.apache.kafka.clients.consumer.KafkaConsumer<String, String> consumer =
                new org.apache.kafka.clients.consumer.KafkaConsumer<>(p)) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, 1000);
            List<String> got = new ArrayList<>();
            long deadline = System.nanoTime() + Clients.TIMEOUT.toNanos();
            while (got.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(java.time.Duration.ofMillis(200)).forEach(r -> got.add(r.value()));
            }
            c.equal("a position past the log end is reset to earliest (OFFSET_OUT_OF_RANGE)",
                    List.of("auto-created"), got);
        }
    }
}
