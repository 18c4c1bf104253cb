package shardlog.streams;

import java.util.HashMap;
import java.util.Map;

/**
 * Entry point of the Kafka Streams checks; tests/compat/run.sh runs each step as one JVM:
 *
 * <pre>
 * StreamsCompat setup     --bootstrap B --prefix P
 * StreamsCompat customers --bootstrap B --prefix P --base-ms T
 * StreamsCompat produce   --bootstrap B --prefix P --base-ms T --count N --rate R
 * StreamsCompat app       --bootstrap B --prefix P --app-id A --state-dir D
 * StreamsCompat check     --bootstrap B --prefix P --base-ms T --count N --app-id A
 *                         --wait-s S [--final]
 * </pre>
 *
 * The base time T (a multiple of 10 s) is the event time of the first order and click; the
 * script chooses it near the wall clock so that the broker's retention and timestamp limits
 * treat the records as fresh. Exit status 0 on success; the last line of a failure says why.
 */
public final class StreamsCompat {
    private StreamsCompat() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) usage("no step named");
        Map<String, String> opt = new HashMap<>();
        boolean fin = false;
        for (int i = 1; i < args.length; i++) {
            if (args[i].equals("--final")) {
                fin = true;
                continue;
            }
            if (!args[i].startsWith("--") || i + 1 >= args.length) usage("bad argument " + args[i]);
            opt.put(args[i].substring(2), args[++i]);
        }
        String bootstrap = need(opt, "bootstrap");
        Topics t = new Topics(need(opt, "prefix"));
        int rc = 0;
        switch (args[0]) {
            case "setup" -> t.create(bootstrap);
            case "customers" -> Driver.customers(bootstrap, t, baseMs(opt));
            case "produce" -> Driver.ordersAndClicks(bootstrap, t, baseMs(opt),
                    Integer.parseInt(need(opt, "count")), Integer.parseInt(need(opt, "rate")));
            case "app" -> rc = App.run(bootstrap, t, need(opt, "app-id"), need(opt, "state-dir"));
            case "check" -> rc = new Checker(t, baseMs(opt), Integer.parseInt(need(opt, "count")))
                    .run(bootstrap, need(opt, "app-id"), Integer.parseInt(need(opt, "wait-s")), fin);
            default -> usage("unknown step " + args[0]);
        }
        System.out.flush();
        System.exit(rc);
    }

    private static long baseMs(Map<String, String> opt) {
        long base = Long.parseLong(need(opt, "base-ms"));
        if (base % Input.WINDOW_MS != 0) usage("--base-ms must be a multiple of " + Input.WINDOW_MS);
        return base;
    }

    private static String need(Map<String, String> opt, String name) {
        String v = opt.get(name);
        if (v == null) usage("--" + name + " is required");
        return v;
    }

    private static void usage(String why) {
        System.err.println("usage: StreamsCompat setup|customers|produce|app|check --bootstrap B "
                + "--prefix P [--base-ms T --count N --rate R --app-id A --state-dir D --wait-s S "
                + "--final]");
        System.out.println("FAIL: " + why);
        System.exit(2);
    }
}
