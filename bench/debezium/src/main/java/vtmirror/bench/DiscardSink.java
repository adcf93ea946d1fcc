package vtmirror.bench;

import io.debezium.engine.RecordChangeEvent;
import java.util.List;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.source.SourceRecord;

/** Counts the table's rows and drops them: the connector's ceiling on this machine. */
final class DiscardSink extends Sink {
    DiscardSink(String table, long expected) {
        super(table, expected);
    }

    @Override
    protected long handleRows(List<RecordChangeEvent<SourceRecord>> records) {
        long rows = 0;
        for (RecordChangeEvent<SourceRecord> r : records) {
            Struct value = rowValue(r.record());
            // Reading the row image keeps the JIT from skipping the work a real sink starts with.
            if (value != null && value.get("after") != null) {
                rows++;
            }
        }
        return rows;
    }

    @Override
    Check finish() {
        // Nothing is stored: every received row counts as held once (duplicates show as
        // received > rows in the result line).
        return new Check(received, received, received);
    }
}
