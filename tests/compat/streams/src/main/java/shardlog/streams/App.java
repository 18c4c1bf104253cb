package shardlog.streams;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Streams application: three sub-topologies over 4-partition topics, run with
 * processing.guarantee=exactly_once_v2 and 2 stream threads.
 *
 * <ul>
 *   <li>orders (KStream, keyed by customer id) joined with customers (KTable on the compacted,
 *       co-partitioned topic) into enriched;
 *   <li>the join results re-keyed by customer tier (through a repartition topic) and
 *       aggregated into a running order count and amount sum per tier, into tier-totals;
 *   <li>clicks counted per user in 10-second tumbling event-time windows (no grace): every
 *       update into click-counts, and the suppressed final count of each closed window into
 *       click-final.
 * </ul>
 *
 * <p>It prints "STATE x" on each state change and "progress orders=N clicks=M" every second
 * (records this process has processed), which the script uses to kill it mid-stream. It runs
 * until SIGTERM (a clean close, committing) or SIGKILL (the hard case for exactly-once: open
 * transactions left behind), or until Streams fails (exit status 1).
 */
final class App {
    private App() {}

    static final AtomicLong ORDERS = new AtomicLong();
    static final AtomicLong CLICKS = new AtomicLong();

    static Topology topology(Topics t) {
        StreamsBuilder b = new StreamsBuilder();
        KTable<String, String> customers = b.table(t.customers,
                Materialized.as("customers-store"));
        KStream<String, String> orders = b.stream(t.orders);
        KStream<String, String> enriched = orders.peek((k, v) -> ORDERS.incrementAndGet())
                .join(customers, Input::joined);
        enriched.to(t.enriched);
        // Re-keyed by tier: Streams writes the records through a repartition topic (created at
        // start-up, written in the transaction, purged with DeleteRecords once committed).
        enriched.groupBy((k, v) -> Input.tierOf(v), Grouped.as("by-tier"))
                .aggregate(() -> Input.tierTotal(0, 0), App::addToTotal,
                        Materialized.as("tier-totals-store"))
                .toStream()
                .to(t.tierTotals);

        KTable<Windowed<String>, Long> counts = b.<String, String>stream(t.clicks)
                .peek((k, v) -> CLICKS.incrementAndGet())
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Input.WINDOW_MS),
                        Duration.ZERO))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as(
                                "click-counts-store")
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long()));
        counts.toStream()
                .map((w, n) -> KeyValue.pair(Input.windowKey(w.key(), w.window().start()),
                        String.valueOf(n)))
                .to(t.clickCounts, Produced.with(Serdes.String(), Serdes.String()));
        counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded())
                        .withName("click-final-suppress"))
                .toStream()
                .map((w, n) -> KeyValue.pair(Input.windowKey(w.key(), w.window().start()),
                        String.valueOf(n)))
                .to(t.clickFinal, Produced.with(Serdes.String(), Serdes.String()));
        return b.build();
    }

    static String addToTotal(String tier, String joined, String total) {
        long orders = Long.parseLong(total.substring("orders=".length(), total.indexOf(',')));
        long sum = Long.parseLong(total.substring(total.indexOf(",sum=") + ",sum=".length()));
        return Input.tierTotal(orders + 1, sum + Input.amountOf(joined));
    }

    static Properties config(String bootstrap, String appId, String stateDir) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        // Transactions of a second (the EOS default is 100 ms): a SIGKILL then reliably leaves
        // an open transaction with records already on the broker, which read_committed must
        // never show and the next instance must redo.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // A SIGKILLed instance's members leave the group when their session times out; the
        // broker's minimum (6 s) keeps the restart's rebalance short.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);
        // Purge consumed repartition records every 5 s (default 30 s), so DeleteRecords runs
        // within the test's minute.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 5000);
        return p;
    }

    static int run(String bootstrap, Topics t, String appId, String stateDir)
            throws InterruptedException {
        KafkaStreams streams = new KafkaStreams(topology(t), config(bootstrap, appId, stateDir));
        CountDownLatch stopped = new CountDownLatch(1);
        boolean[] failed = {false};
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now + " (was " + before + ")");
            if (now == KafkaStreams.State.ERROR) failed[0] = true;
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                stopped.countDown();
            }
        });
        // "restored" lines: the script checks that an instance started on a wiped state dir
        // rebuilt its stores from the changelog topics.
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long end, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                System.out.println("restored " + total + " records of " + store + " from " + tp);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            e.printStackTrace(System.out);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("closing on signal");
            streams.close(Duration.ofSeconds(30));
            System.out.println("closed");
        }));
        Thread progress = new Thread(() -> {
            try {
                while (true) {
                    Thread.sleep(1000);
                    System.out.println("progress orders=" + ORDERS.get() + " clicks=" + CLICKS.get());
                }
            } catch (InterruptedException e) {
                // exit quietly
            }
        }, "progress");
        progress.setDaemon(true);
        progress.start();
        streams.start();
        stopped.await();
        return failed[0] ? 1 : 0;
    }
}
