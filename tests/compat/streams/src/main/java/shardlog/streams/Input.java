package shardlog.streams;

import java.util.HashMap;
import java.util.Map;

/**
 * The known input and, computed from it, the expected output: pure functions of the record
 * index and of the base time, so the driver that writes the input and the checker that reads
 * the output agree without sharing anything but the command line.
 *
 * <p>Customers ({@value #CUSTOMERS} of them, keys {@code c000}..) form the compacted table;
 * order {@code i} is keyed by its customer's id (so orders and customers are co-partitioned by
 * the default partitioner) and joined with that customer's value. Click {@code i} belongs to user
 * {@code u00}..{@code u19} and has the event time {@code base + i * STEP_MS}, set explicitly, so
 * which 10-second window it counts in does not depend on when it was produced or processed.
 */
final class Input {
    private Input() {}

    static final int CUSTOMERS = 50;
    static final int USERS = 20;
    /** Event-time distance between consecutive orders and between consecutive clicks. */
    static final long STEP_MS = 25;
    static final long WINDOW_MS = 10_000;
    /** Key of the one record per clicks partition that moves stream time past every window. */
    static final String FLUSH_KEY = "~flush";

    static String customerKey(int c) {
        return String.format("c%03d", c);
    }

    static String customerValue(int c) {
        return String.format("customer-%03d/tier-%d", c, c % 3);
    }

    /** Customers carry an event time before every order, so the join sees them first. */
    static long customerTime(long base) {
        return base - 60_000;
    }

    static String orderId(int i) {
        return String.format("o%05d", i);
    }

    static String orderKey(int i) {
        return customerKey((i * 7 + 3) % CUSTOMERS);
    }

    /** Never 0, so that each order moves its tier's running sum. */
    static int orderAmount(int i) {
        return 1 + i * 31 % 1000;
    }

    static String orderValue(int i) {
        return orderId(i) + ":amount=" + orderAmount(i);
    }

    static long orderTime(long base, int i) {
        return base + i * STEP_MS;
    }

    /** What the KStream-KTable join writes for an order and its customer's current value. */
    static String joined(String order, String customer) {
        return order + "|" + customer;
    }

    static String expectedJoin(int i) {
        return joined(orderValue(i), customerValue((i * 7 + 3) % CUSTOMERS));
    }

    /** The tier of a join result ("tier-N", the customer value's tail): the re-key's new key. */
    static String tierOf(String joined) {
        return joined.substring(joined.lastIndexOf('/') + 1);
    }

    static long amountOf(String joined) {
        int at = joined.indexOf(":amount=") + ":amount=".length();
        return Long.parseLong(joined.substring(at, joined.indexOf('|', at)));
    }

    /** The value of a tier total: orders counted and their amounts summed. */
    static String tierTotal(long orders, long sum) {
        return "orders=" + orders + ",sum=" + sum;
    }

    /** Expected final total per tier for orders 0..COUNT-1. */
    static Map<String, String> expectedTierTotals(int count) {
        Map<String, long[]> acc = new HashMap<>();
        for (int i = 0; i < count; i++) {
            long[] a = acc.computeIfAbsent(tierOf(expectedJoin(i)), k -> new long[2]);
            a[0]++;
            a[1] += orderAmount(i);
        }
        Map<String, String> out = new HashMap<>();
        acc.forEach((tier, a) -> out.put(tier, tierTotal(a[0], a[1])));
        return out;
    }

    static String clickKey(int i) {
        return String.format("u%02d", i % USERS);
    }

    static String clickValue(int i) {
        return String.format("click-%05d", i);
    }

    static long clickTime(long base, int i) {
        return base + i * STEP_MS;
    }

    /** The flush records' time: a minute after the last click, closing every window of clicks. */
    static long flushTime(long base, int clicks) {
        return clickTime(base, clicks) + 60_000;
    }

    /** Output key of a windowed count: user and window start, e.g. {@code u07@1767225600000}. */
    static String windowKey(String user, long windowStart) {
        return user + "@" + windowStart;
    }

    /** Expected count per window key for clicks 0..CLICKS-1 (flush records excluded). */
    static Map<String, Long> expectedCounts(long base, int clicks) {
        Map<String, Long> out = new HashMap<>();
        for (int i = 0; i < clicks; i++) {
            long t = clickTime(base, i);
            out.merge(windowKey(clickKey(i), t - Math.floorMod(t, WINDOW_MS)), 1L, Long::sum);
        }
        return out;
    }
}
