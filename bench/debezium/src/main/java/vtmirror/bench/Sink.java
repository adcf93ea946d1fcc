package vtmirror.bench;

import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * A batch consumer of the embedded engine that counts the table's row records and tells the main
 * thread when the expected number has been handled (received, or committed for a durable sink).
 */
abstract class Sink implements DebeziumEngine.ChangeConsumer<RecordChangeEvent<SourceRecord>> {
    /** What the sink saw and holds at the end: the exactly-once check. */
    record Check(long received, long stored, long distinctKeys) {
    }

    private final String topicSuffix;
    private final long expected;
    private final CountDownLatch done = new CountDownLatch(1);
    private volatile long doneNanos;
    private volatile String failure;
    /** Row records of the table handed to the sink so far (only the engine's thread writes). */
    protected volatile long received;

    Sink(String table, long expected) {
        // Topics are <topic.prefix>.<keyspace>.<table>; records of other topics (transaction
        // markers, heartbeats) are not rows.
        this.topicSuffix = "." + table;
        this.expected = expected;
    }

    @Override
    public final void handleBatch(List<RecordChangeEvent<SourceRecord>> records,
            DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
            throws InterruptedException {
        long rows = handleRows(records);
        for (RecordChangeEvent<SourceRecord> r : records) {
            committer.markProcessed(r);
        }
        committer.markBatchFinished();
        received += rows;
        if (received >= expected && done.getCount() > 0) {
            doneNanos = System.nanoTime();
            done.countDown();
        }
    }

    /** Handles one engine batch; returns how many of its records were rows of the table. */
    protected abstract long handleRows(List<RecordChangeEvent<SourceRecord>> records)
            throws InterruptedException;

    /** The table's row image of a record (null for other topics and for tombstones). */
    protected final Struct rowValue(SourceRecord record) {
        if (record.topic() == null || !record.topic().endsWith(topicSuffix)
                || !(record.value() instanceof Struct)) {
            return null;
        }
        return (Struct) record.value();
    }

    /** Called by the engine when it stops; a failure ends the wait at once. */
    final void engineStopped(boolean success, String message, Throwable error) {
        if (!success || error != null) {
            failure = message + (error == null ? "" : ": " + error);
        }
        if (done.getCount() > 0) {
            doneNanos = System.nanoTime();
            done.countDown();
        }
    }

    final boolean awaitDone(long timeoutSeconds) throws InterruptedException {
        boolean signalled = done.await(timeoutSeconds, TimeUnit.SECONDS);
        if (!signalled) {
            doneNanos = System.nanoTime();
        }
        return signalled && received >= expected;
    }

    final long doneNanos() {
        return doneNanos;
    }

    final String failure() {
        return failure;
    }

    /** Called after the engine has stopped: closes the sink and reads what it holds. */
    abstract Check finish() throws Exception;
}
