package shardlog.compat;

import java.util.Arrays;

/**
 * Entry point of the Java client (kafka-clients) compatibility checks.
 *
 * <p>Usage: {@code JavaCompat CHECK --bootstrap HOST:PORT --topic PREFIX}, CHECK one of
 * {@code producer}, {@code group-eager}, {@code group-cooperative}, {@code static-membership},
 * {@code admin}, {@code transactions}, {@code consumer-protocol} (KIP-848, 4.x only). Each check
 * prints one "PASS name" or "FAIL name: why"
 * line per assertion and exits 1 if any failed (the last line then says which), 0 otherwise.
 * tests/compat/run.sh runs each check as one test against a fresh broker.
 *
 * <p>Why Java: kafka-clients is the reference client, and Kafka Streams and Connect are built
 * on it; it uses the protocol harder than librdkafka or kafka-python do.
 */
public final class JavaCompat {
    private JavaCompat() {}

    public static void main(String[] args) {
        if (args.length < 1) usage("no check named");
        String check = args[0];
        String bootstrap = null;
        String topic = null;
        for (int i = 1; i < args.length; i++) {
            if (i + 1 >= args.length) usage("missing value after " + args[i]);
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[++i];
                case "--topic" -> topic = args[++i];
                default -> usage("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null || topic == null) usage("--bootstrap and --topic are required");
        Checks c = new Checks();
        try {
            switch (check) {
                case "producer" -> ProducerCheck.run(bootstrap, topic, c);
                case "group-eager" -> GroupCheck.run(bootstrap, topic, false, c);
                case "group-cooperative" -> GroupCheck.run(bootstrap, topic, true, c);
                case "static-membership" -> StaticMembershipCheck.run(bootstrap, topic, c);
                case "admin" -> AdminCheck.run(bootstrap, topic, c);
                case "transactions" -> TransactionCheck.run(bootstrap, topic, c);
                case "consumer-protocol" -> ConsumerProtocolCheck.run(bootstrap, topic, c);
                default -> usage("unknown check " + check);
            }
        } catch (Throwable e) {
            e.printStackTrace();
            c.fail(check, "exception " + e);
        }
        c.finish(check);
    }

    private static void usage(String why) {
        System.err.println("usage: JavaCompat producer|group-eager|group-cooperative|"
                + "static-membership|admin|transactions|consumer-protocol"
                + " --bootstrap HOST:PORT --topic PREFIX");
        System.err.println("FAIL: " + why);
        System.exit(2);
    }

    static String str(Object o) {
        return o instanceof Object[] a ? Arrays.toString(a) : String.valueOf(o);
    }
}
