package shardlog.streams;

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.TopicConfig;

/**
 * The topics of one run, all named after a prefix so that runs on one broker do not meet.
 * Inputs and outputs have {@value #PARTITIONS} partitions; the customers topic is compacted,
 * like a table's source topic in production. Streams creates its own internal topics
 * (changelogs) through Admin when the application starts.
 */
final class Topics {
    static final int PARTITIONS = 4;

    final String customers;
    final String orders;
    final String clicks;
    /** Join results, one per order. */
    final String enriched;
    /** Every update of every windowed count (the last one per window is its final count). */
    final String clickCounts;
    /** The suppressed windowed counts: exactly one record per window, once it has closed. */
    final String clickFinal;
    /** Running order count and amount sum per customer tier (join results re-keyed by tier). */
    final String tierTotals;

    Topics(String prefix) {
        customers = prefix + "-customers";
        orders = prefix + "-orders";
        clicks = prefix + "-clicks";
        enriched = prefix + "-enriched";
        clickCounts = prefix + "-click-counts";
        clickFinal = prefix + "-click-final";
        tierTotals = prefix + "-tier-totals";
    }

    List<String> inputs() {
        return List.of(customers, orders, clicks);
    }

    List<String> outputs() {
        return List.of(enriched, clickCounts, clickFinal, tierTotals);
    }

    static Admin admin(String bootstrap) {
        return Admin.create(Map.of(
                AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000"));
    }

    void create(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            NewTopic table = new NewTopic(customers, PARTITIONS, (short) 1)
                    .configs(Map.of(TopicConfig.CLEANUP_POLICY_CONFIG,
                            TopicConfig.CLEANUP_POLICY_COMPACT));
            admin.createTopics(List.of(table,
                    new NewTopic(orders, PARTITIONS, (short) 1),
                    new NewTopic(clicks, PARTITIONS, (short) 1),
                    new NewTopic(enriched, PARTITIONS, (short) 1),
                    new NewTopic(clickCounts, PARTITIONS, (short) 1),
                    new NewTopic(clickFinal, PARTITIONS, (short) 1),
                    new NewTopic(tierTotals, PARTITIONS, (short) 1)))
                    .all().get(60, TimeUnit.SECONDS);
        }
    }
}
