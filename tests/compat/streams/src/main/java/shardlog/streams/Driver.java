package shardlog.streams;

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Writes the known input with an idempotent producer (acks=all), so that a retry after a
 * lost connection or a broker restart cannot duplicate an input record: any duplicate the
 * checker finds downstream is then the Streams application's or the broker's doing.
 */
final class Driver {
    private Driver() {}

    static KafkaProducer<String, String> producer(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        // Long enough to ride out a broker restart: the producer retries until it is back.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        return new KafkaProducer<>(p);
    }

    /** The table's rows, all of them, before any order. */
    static void customers(String bootstrap, Topics t, long base) throws Exception {
        try (KafkaProducer<String, String> p = producer(bootstrap)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int c = 0; c < Input.CUSTOMERS; c++) {
                fs.add(p.send(new ProducerRecord<>(t.customers, null, Input.customerTime(base),
                        Input.customerKey(c), Input.customerValue(c))));
            }
            for (Future<RecordMetadata> f : fs) f.get(120, TimeUnit.SECONDS);
        }
        System.out.println("produced " + Input.CUSTOMERS + " customers");
    }

    /**
     * Orders and clicks 0..COUNT-1, RATE of each per second (so the Streams application is
     * mid-stream while the script kills it or restarts the broker), then one flush record per
     * clicks partition whose event time closes every window.
     */
    static void ordersAndClicks(String bootstrap, Topics t, long base, int count, int rate)
            throws Exception {
        long start = System.nanoTime();
        try (KafkaProducer<String, String> p = producer(bootstrap)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                long due = start + (long) i * 1_000_000_000L / rate;
                long wait = due - System.nanoTime();
                if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
                fs.add(p.send(new ProducerRecord<>(t.orders, null, Input.orderTime(base, i),
                        Input.orderKey(i), Input.orderValue(i))));
                fs.add(p.send(new ProducerRecord<>(t.clicks, null, Input.clickTime(base, i),
                        Input.clickKey(i), Input.clickValue(i))));
                if ((i + 1) % 500 == 0) System.out.println("sent " + (i + 1) + " orders and clicks");
            }
            for (int part = 0; part < Topics.PARTITIONS; part++) {
                fs.add(p.send(new ProducerRecord<>(t.clicks, part, Input.flushTime(base, count),
                        Input.FLUSH_KEY, "flush")));
            }
            for (Future<RecordMetadata> f : fs) f.get(120, TimeUnit.SECONDS);
        }
        System.out.printf("produced %d orders, %d clicks and %d flush records in %.1f s%n",
                count, count, Topics.PARTITIONS, (System.nanoTime() - start) / 1e9);
    }
}
