package shardlog.streams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads the inputs and the outputs with isolation.level=read_committed and checks them against
 * {@link Input}: every order and click is in its input topic once; every order has exactly one
 * join result, with its customer's value; each window's updates in click-counts increase
 * strictly and end at the window's count; click-final has exactly one record per window, the
 * count; each tier's running totals increase strictly and end at the tier's order count and
 * amount sum. With {@code --final} (the application has been closed cleanly) the application's
 * committed offsets must also be the inputs' end offsets, and the number of output records in
 * aborted transactions (seen by read_uncommitted only) is printed: the kills' open
 * transactions, which read_committed must not have shown.
 *
 * <p>It reads until the outputs are complete and every partition has been read to its end
 * offset (the last stable offset, for read_committed) as seen after completion, or until
 * --wait-s seconds have passed, then prints one PASS/FAIL line per assertion.
 */
final class Checker {
    private final Topics t;
    private final long base;
    private final int count;
    private final Map<String, List<ConsumerRecord<String, String>>> byTopic = new HashMap<>();
    private final List<String> failures = new ArrayList<>();
    private int passed;

    Checker(Topics t, long base, int count) {
        this.t = t;
        this.base = base;
        this.count = count;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p);
    }

    static List<TopicPartition> partitions(List<String> topics) {
        List<TopicPartition> out = new ArrayList<>();
        for (String topic : topics) {
            for (int i = 0; i < Topics.PARTITIONS; i++) out.add(new TopicPartition(topic, i));
        }
        return out;
    }

    /** Returns 0 when every assertion passed. */
    int run(String bootstrap, String appId, int waitS, boolean fin) throws Exception {
        List<String> topics = new ArrayList<>(t.inputs());
        topics.addAll(t.outputs());
        List<TopicPartition> tps = partitions(topics);
        for (String topic : topics) byTopic.put(topic, new ArrayList<>());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(waitS);
        long nextReport = 0;
        Map<TopicPartition, Long> end = null;
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            while (true) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    byTopic.get(r.topic()).add(r);
                }
                if (end == null && complete()) {
                    // Complete: now read to the end offsets (LSO) as they are after completion,
                    // so any duplicate committed after the last expected record is seen too.
                    end = c.endOffsets(tps, Duration.ofSeconds(30));
                }
                if (end != null && reached(c, tps, end)) break;
                if (System.nanoTime() > deadline) {
                    System.out.println("checker: gave up waiting after " + waitS + " s");
                    break;
                }
                if (System.nanoTime() > nextReport) {
                    System.out.println("checker: " + summary());
                    nextReport = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                }
            }
        }
        System.out.println("checker: " + summary());
        checkInputs();
        checkJoin();
        checkCounts();
        checkFinal();
        checkTierTotals();
        if (fin) {
            checkCommittedOffsets(bootstrap, appId);
            reportAborted(bootstrap);
        }
        System.out.println("streams check: " + passed + " passed, " + failures.size() + " failed");
        if (!failures.isEmpty()) {
            System.out.println("FAIL: " + failures.get(0));
            return 1;
        }
        return 0;
    }

    private static boolean reached(KafkaConsumer<String, String> c, List<TopicPartition> tps,
            Map<TopicPartition, Long> end) {
        for (TopicPartition tp : tps) {
            if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp)) return false;
        }
        return true;
    }

    private String summary() {
        return String.format(
                "orders=%d clicks=%d enriched=%d click-counts=%d click-final=%d tier-totals=%d",
                byTopic.get(t.orders).size(), byTopic.get(t.clicks).size(),
                byTopic.get(t.enriched).size(), byTopic.get(t.clickCounts).size(),
                byTopic.get(t.clickFinal).size(), byTopic.get(t.tierTotals).size());
    }

    /** Every order joined and every window's final count out: nothing more is expected. */
    private boolean complete() {
        if (distinctValues(t.enriched) < count) return false;
        Map<String, Long> expected = Input.expectedCounts(base, count);
        Map<String, String> fin = lastByKey(t.clickFinal);
        Map<String, String> upd = lastByKey(t.clickCounts);
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            String want = String.valueOf(e.getValue());
            if (!want.equals(fin.get(e.getKey())) || !want.equals(upd.get(e.getKey()))) return false;
        }
        Map<String, String> totals = lastByKey(t.tierTotals);
        return Input.expectedTierTotals(count).entrySet().stream()
                .allMatch(e -> e.getValue().equals(totals.get(e.getKey())));
    }

    private long distinctValues(String topic) {
        return byTopic.get(topic).stream().map(ConsumerRecord::value).distinct().count();
    }

    /** Last value per key, flush-window keys left out. Per-key order is per-partition order. */
    private Map<String, String> lastByKey(String topic) {
        Map<String, String> out = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(topic)) {
            if (!r.key().startsWith(Input.FLUSH_KEY)) out.put(r.key(), r.value());
        }
        return out;
    }

    private void ok(String name, boolean ok, String whyNot) {
        if (ok) {
            passed++;
            System.out.println("PASS " + name);
        } else {
            failures.add(name + ": " + whyNot);
            System.out.println("FAIL " + name + ": " + whyNot);
        }
    }

    /** Problems in a list, the first few of them shown. */
    private static String firstFew(List<String> problems) {
        return problems.size() + " problem(s), e.g. "
                + String.join("; ", problems.subList(0, Math.min(5, problems.size())));
    }

    private void checkInputs() {
        List<String> problems = new ArrayList<>();
        Map<String, Integer> customers = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.customers)) {
            customers.merge(r.key(), 1, Integer::sum);
        }
        for (int c = 0; c < Input.CUSTOMERS; c++) {
            Integer n = customers.get(Input.customerKey(c));
            if (n == null || n != 1) problems.add(Input.customerKey(c) + " x" + n);
        }
        ok("input-customers-once", problems.isEmpty() && customers.size() == Input.CUSTOMERS,
                firstFew(problems) + ", " + customers.size() + " keys");

        problems.clear();
        Map<String, Integer> orders = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.orders)) {
            orders.merge(r.key() + "=" + r.value(), 1, Integer::sum);
        }
        for (int i = 0; i < count; i++) {
            Integer n = orders.remove(Input.orderKey(i) + "=" + Input.orderValue(i));
            if (n == null || n != 1) problems.add(Input.orderId(i) + " x" + n);
        }
        orders.forEach((k, n) -> problems.add("unexpected order " + k));
        ok("input-orders-once", problems.isEmpty(), firstFew(problems));

        problems.clear();
        Map<String, Integer> clicks = new HashMap<>();
        int flushes = 0;
        for (ConsumerRecord<String, String> r : byTopic.get(t.clicks)) {
            if (r.key().equals(Input.FLUSH_KEY)) flushes++;
            else clicks.merge(r.key() + "=" + r.value() + "@" + r.timestamp(), 1, Integer::sum);
        }
        for (int i = 0; i < count; i++) {
            String k = Input.clickKey(i) + "=" + Input.clickValue(i) + "@" + Input.clickTime(base, i);
            Integer n = clicks.remove(k);
            if (n == null || n != 1) problems.add(Input.clickValue(i) + " x" + n);
        }
        clicks.forEach((k, n) -> problems.add("unexpected click " + k));
        ok("input-clicks-once", problems.isEmpty() && flushes == Topics.PARTITIONS,
                firstFew(problems) + ", " + flushes + " flush records");
    }

    /** Every order yields exactly one join result: none missing, none twice, right value. */
    private void checkJoin() {
        Map<String, List<String>> results = new TreeMap<>();
        List<String> problems = new ArrayList<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.enriched)) {
            String id = r.value().substring(0, r.value().indexOf(':'));
            results.computeIfAbsent(id, k -> new ArrayList<>()).add(r.key() + " -> " + r.value());
        }
        int missing = 0;
        int duplicated = 0;
        int wrong = 0;
        for (int i = 0; i < count; i++) {
            List<String> got = results.remove(Input.orderId(i));
            String want = Input.orderKey(i) + " -> " + Input.expectedJoin(i);
            if (got == null) {
                missing++;
                problems.add(Input.orderId(i) + " missing");
            } else if (got.size() > 1) {
                duplicated++;
                problems.add(Input.orderId(i) + " " + got.size() + " times");
            } else if (!got.get(0).equals(want)) {
                wrong++;
                problems.add(Input.orderId(i) + ": " + got.get(0) + ", expected " + want);
            }
        }
        results.forEach((id, got) -> problems.add("result for no order: " + got));
        ok("join-exactly-once", problems.isEmpty(), String.format(
                "%d missing, %d duplicated, %d wrong, %d unexpected; %s", missing, duplicated,
                wrong, results.size(), firstFew(problems)));
    }

    /** Each window's updates increase strictly (a repeat is a duplicate) and end at its count. */
    private void checkCounts() {
        Map<String, Long> expected = Input.expectedCounts(base, count);
        Map<String, List<Long>> updates = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.clickCounts)) {
            if (r.key().startsWith(Input.FLUSH_KEY)) continue;
            updates.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(Long.parseLong(r.value()));
        }
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            List<Long> got = updates.remove(e.getKey());
            if (got == null) {
                problems.add(e.getKey() + " no update");
                continue;
            }
            for (int i = 1; i < got.size(); i++) {
                if (got.get(i) <= got.get(i - 1)) {
                    problems.add(e.getKey() + " updates not increasing: " + got);
                    break;
                }
            }
            if (!got.get(got.size() - 1).equals(e.getValue())) {
                problems.add(e.getKey() + " last update " + got.get(got.size() - 1)
                        + ", expected " + e.getValue());
            }
        }
        updates.forEach((k, got) -> problems.add("update for no window: " + k + " " + got));
        ok("window-count-updates", problems.isEmpty(),
                expected.size() + " windows; " + firstFew(problems));
    }

    /** The suppressed output: exactly one record per window, with its final count. */
    private void checkFinal() {
        Map<String, Long> expected = Input.expectedCounts(base, count);
        Map<String, List<String>> got = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.clickFinal)) {
            if (r.key().startsWith(Input.FLUSH_KEY)) continue;
            got.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
        }
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            List<String> v = got.remove(e.getKey());
            if (!List.of(String.valueOf(e.getValue())).equals(v)) {
                problems.add(e.getKey() + " " + v + ", expected [" + e.getValue() + "]");
            }
        }
        got.forEach((k, v) -> problems.add("final count for no window: " + k + " " + v));
        ok("window-count-final-exactly-once", problems.isEmpty(),
                expected.size() + " windows; " + firstFew(problems));
    }

    /** Each tier's running totals increase strictly (a repeat is a duplicate) to the expected. */
    private void checkTierTotals() {
        Map<String, String> expected = Input.expectedTierTotals(count);
        Map<String, List<String>> updates = new HashMap<>();
        for (ConsumerRecord<String, String> r : byTopic.get(t.tierTotals)) {
            updates.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
        }
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, String> e : expected.entrySet()) {
            List<String> got = updates.remove(e.getKey());
            if (got == null) {
                problems.add(e.getKey() + " no update");
                continue;
            }
            for (int i = 1; i < got.size(); i++) {
                if (orders(got.get(i)) <= orders(got.get(i - 1))) {
                    problems.add(e.getKey() + " totals not increasing: " + got.get(i - 1)
                            + " then " + got.get(i));
                    break;
                }
            }
            if (!got.get(got.size() - 1).equals(e.getValue())) {
                problems.add(e.getKey() + " last " + got.get(got.size() - 1) + ", expected "
                        + e.getValue());
            }
        }
        updates.forEach((k, got) -> problems.add("totals for no tier: " + k));
        ok("tier-totals-through-repartition", problems.isEmpty(), firstFew(problems));
    }

    private static long orders(String total) {
        return Long.parseLong(total.substring("orders=".length(), total.indexOf(',')));
    }

    /** After a clean close the group's committed offsets are the inputs' end offsets. */
    private void checkCommittedOffsets(String bootstrap, String appId) throws Exception {
        List<TopicPartition> tps = partitions(t.inputs());
        Map<TopicPartition, Long> end;
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            end = c.endOffsets(tps, Duration.ofSeconds(30));
        }
        Map<TopicPartition, Long> committed = new HashMap<>();
        try (Admin admin = Topics.admin(bootstrap)) {
            Map<TopicPartition, OffsetAndMetadata> got = admin.listConsumerGroupOffsets(appId)
                    .partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
            for (TopicPartition tp : tps) {
                OffsetAndMetadata o = got.get(tp);
                committed.put(tp, o == null ? null : o.offset());
            }
        }
        ok("committed-offsets-at-input-end", committed.equals(end),
                "committed " + new TreeMap<>(str(committed)) + ", end " + new TreeMap<>(str(end)));
    }

    /** Counts the output records read_uncommitted sees beyond read_committed's. */
    private void reportAborted(String bootstrap) {
        List<TopicPartition> tps = partitions(t.outputs());
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        long all = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!reached(c, tps, end) && System.nanoTime() < deadline) {
                all += c.poll(Duration.ofMillis(200)).count();
            }
        }
        long committed = 0;
        for (String topic : t.outputs()) committed += byTopic.get(topic).size();
        System.out.println("outputs: " + committed + " records committed, " + (all - committed)
                + " more in aborted transactions (read_uncommitted only)");
    }

    private static Map<String, Long> str(Map<TopicPartition, Long> m) {
        Map<String, Long> out = new HashMap<>();
        m.forEach((k, v) -> out.put(k.toString(), v));
        return out;
    }
}
