package shardlog.compat;

import java.util.Objects;

/** Assertions that print one PASS/FAIL line each and remember the first failure. */
final class Checks {
    private int passed;
    private int failed;
    private String firstFailure;

    void ok(String name, boolean ok, String whyNot) {
        if (ok) {
            passed++;
            System.out.println("PASS " + name);
        } else {
            fail(name, whyNot);
        }
    }

    void equal(String name, Object expected, Object actual) {
        ok(name, Objects.equals(expected, actual),
                "expected " + JavaCompat.str(expected) + ", got " + JavaCompat.str(actual));
    }

    void fail(String name, String why) {
        failed++;
        if (firstFailure == null) firstFailure = name + ": " + why;
        System.out.println("FAIL " + name + ": " + why);
    }

    boolean anyFailed() {
        return failed > 0;
    }

    /** Prints the summary and exits: 1 if anything failed (last line names the first failure). */
    void finish(String check) {
        System.out.println("java " + check + ": " + passed + " passed, " + failed + " failed");
        System.out.flush();
        if (failed > 0) {
            System.out.println("FAIL: " + firstFailure);
            System.out.flush();
            System.exit(1);
        }
        System.exit(0);
    }
}
