package vtmirror.bench;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Copies one table from a vtgate with the Debezium Vitess connector in its embedded engine and
 * stops by itself once the expected number of snapshot rows has been received (discard sink) or
 * committed (SQLite sink). Prints one line: {@code PEER_RESULT key=value ...}.
 *
 * <p>Usage: {@code PeerBench --host H --port P --keyspace K --table T --rows N
 * --sink discard|sqlite [--db FILE] [--tablet-type MASTER|REPLICA|RDONLY] [--timeout-s S]}
 */
public final class PeerBench {
    private PeerBench() {
    }

    public static void main(String[] argv) throws Exception {
        // Before any Debezium class loads: its loggers are created in static initialisers.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("peer.log", "warn"));
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        long started = System.nanoTime();
        Map<String, String> args = parseArgs(argv);
        long expected = Long.parseLong(require(args, "rows"));
        String table = require(args, "table");
        Sink sink = "sqlite".equals(require(args, "sink"))
                ? new SqliteSink(Path.of(require(args, "db")), table, expected)
                : new DiscardSink(table, expected);
        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                .create(ChangeEventFormat.of(Connect.class))
                .using(connectorProperties(args))
                .notifying(sink)
                .using((success, message, error) -> sink.engineStopped(success, message, error))
                .build();
        ExecutorService runner = Executors.newSingleThreadExecutor();
        runner.execute(engine);
        long timeout = Long.parseLong(args.getOrDefault("timeout-s", "1800"));
        boolean done = sink.awaitDone(timeout);
        double seconds = (sink.doneNanos() - started) / 1e9;
        // Closing is part of the process's wall time, which the caller measures; a close that
        // hangs must not hang the benchmark.
        engine.close();
        runner.shutdown();
        boolean closed = runner.awaitTermination(30, TimeUnit.SECONDS);
        Sink.Check check = sink.finish();
        report(args, sink, check, done, closed, seconds, expected);
        boolean ok = done && check.received() == expected && check.stored() == expected
                && check.distinctKeys() == expected;
        System.out.flush();
        Runtime.getRuntime().halt(ok ? 0 : 2);
    }

    private static void report(Map<String, String> args, Sink sink, Sink.Check check, boolean done,
            boolean closed, double seconds, long expected) {
        if (sink.failure() != null) {
            System.err.println("peer: engine stopped: " + sink.failure());
        }
        System.out.printf(
                "PEER_RESULT sink=%s done=%b closed=%b rows=%d received=%d stored=%d distinct=%d "
                        + "seconds=%.3f rows_per_s=%.0f peak_rss_kb=%d%n",
                args.get("sink"), done, closed, expected, check.received(), check.stored(),
                check.distinctKeys(), seconds, expected / seconds, peakRssKb());
    }

    /** The connector's settings: those that decide what is read and how are spelled out. */
    static Properties connectorProperties(Map<String, String> args) {
        Properties p = new Properties();
        p.setProperty("name", "vtmirror-peer-bench");
        p.setProperty("connector.class", "io.debezium.connector.vitess.VitessConnector");
        p.setProperty("tasks.max", "1");
        // Offsets stay in memory: every run is a fresh initial snapshot, like a fresh mirror file.
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        p.setProperty("offset.flush.interval.ms", "60000");
        p.setProperty("topic.prefix", "peer");
        p.setProperty("database.hostname", require(args, "host"));
        p.setProperty("database.port", require(args, "port"));
        String keyspace = require(args, "keyspace");
        p.setProperty("vitess.keyspace", keyspace);
        p.setProperty("vitess.tablet.type", args.getOrDefault("tablet-type", "MASTER"));
        // An initial snapshot is a VStream Copy from an empty position, as `vtmirror sync` does.
        p.setProperty("snapshot.mode", "initial");
        p.setProperty("table.include.list", keyspace + "\\." + require(args, "table"));
        for (Map.Entry<String, String> e : args.entrySet()) {
            // --set key=value passes any further connector or engine setting through.
            if (e.getKey().startsWith("set.")) {
                p.setProperty(e.getKey().substring(4), e.getValue());
            }
        }
        return p;
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            String key = argv[i].replaceFirst("^--", "");
            if (key.equals("set")) {
                String[] kv = argv[i + 1].split("=", 2);
                args.put("set." + kv[0], kv.length > 1 ? kv[1] : "");
            } else {
                args.put(key, argv[i + 1]);
            }
        }
        return args;
    }

    private static String require(Map<String, String> args, String key) {
        String value = args.get(key);
        if (value == null) {
            throw new IllegalArgumentException("missing --" + key);
        }
        return value;
    }

    /** VmHWM of /proc/self/status in kB (peak resident set), or -1 where it cannot be read. */
    static long peakRssKb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            return -1;
        }
        return -1;
    }
}
