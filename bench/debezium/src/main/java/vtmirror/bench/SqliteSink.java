package vtmirror.bench;

import io.debezium.engine.RecordChangeEvent;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Applies the table's change records to a SQLite file the way a careful hand-written consumer
 * would: WAL, synchronous=NORMAL (what vtmirror uses by default), one transaction per engine
 * batch, prepared {@code INSERT OR REPLACE} / {@code DELETE} statements run as JDBC batches.
 * The table is created from the first record's schemas (columns from the row image, the primary
 * key from the record key).
 */
final class SqliteSink extends Sink {
    private final String table;
    private final Connection conn;
    private List<Field> columns;
    private List<String> keyColumns;
    private PreparedStatement upsert;
    private PreparedStatement delete;

    SqliteSink(Path db, String table, long expected) throws SQLException {
        super(table, expected);
        this.table = table;
        this.conn = DriverManager.getConnection("jdbc:sqlite:" + db);
        try (Statement s = conn.createStatement()) {
            s.execute("PRAGMA journal_mode=WAL");
            s.execute("PRAGMA synchronous=NORMAL");
        }
        conn.setAutoCommit(false);
    }

    @Override
    protected long handleRows(List<RecordChangeEvent<SourceRecord>> records) {
        try {
            long rows = apply(records);
            conn.commit();
            return rows;
        } catch (SQLException e) {
            // The engine stops on a consumer exception; the result line then shows done=false.
            throw new IllegalStateException("SQLite sink: " + e.getMessage(), e);
        }
    }

    /** Binds the batch in order; a run of upserts goes as one JDBC batch, deletes cut runs. */
    private long apply(List<RecordChangeEvent<SourceRecord>> records) throws SQLException {
        long rows = 0;
        boolean pendingUpserts = false;
        for (RecordChangeEvent<SourceRecord> r : records) {
            SourceRecord record = r.record();
            Struct value = rowValue(record);
            if (value == null) {
                continue;
            }
            Struct after = value.getStruct("after");
            if (columns == null) {
                prepare(record, after != null ? after.schema() : value.getStruct("before").schema());
            }
            if (after != null) {
                bindRow(upsert, after);
                upsert.addBatch();
                pendingUpserts = true;
            } else if (record.key() instanceof Struct key) {
                if (pendingUpserts) {
                    upsert.executeBatch();
                    pendingUpserts = false;
                }
                for (int i = 0; i < keyColumns.size(); i++) {
                    bind(delete, i + 1, key.get(keyColumns.get(i)));
                }
                delete.executeUpdate();
            }
            rows++;
        }
        if (pendingUpserts) {
            upsert.executeBatch();
        }
        return rows;
    }

    private void prepare(SourceRecord record, Schema row) throws SQLException {
        columns = row.fields();
        keyColumns = record.keySchema().fields().stream().map(Field::name).collect(Collectors.toList());
        List<String> defs = new ArrayList<>();
        for (Field f : columns) {
            defs.add(quote(f.name()) + " " + sqliteType(f.schema()));
        }
        String keys = keyColumns.stream().map(SqliteSink::quote).collect(Collectors.joining(", "));
        try (Statement s = conn.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + quote(table) + " (" + String.join(", ", defs)
                    + ", PRIMARY KEY (" + keys + "))");
        }
        String names = columns.stream().map(f -> quote(f.name())).collect(Collectors.joining(", "));
        String marks = columns.stream().map(f -> "?").collect(Collectors.joining(", "));
        upsert = conn.prepareStatement(
                "INSERT OR REPLACE INTO " + quote(table) + " (" + names + ") VALUES (" + marks + ")");
        String where = keyColumns.stream().map(k -> quote(k) + " = ?").collect(Collectors.joining(" AND "));
        delete = conn.prepareStatement("DELETE FROM " + quote(table) + " WHERE " + where);
    }

    private void bindRow(PreparedStatement statement, Struct row) throws SQLException {
        for (int i = 0; i < columns.size(); i++) {
            bind(statement, i + 1, row.get(columns.get(i)));
        }
    }

    /** Binds by the Java type Connect gives (DECIMAL arrives as BigDecimal, kept exact as text). */
    private static void bind(PreparedStatement s, int i, Object v) throws SQLException {
        if (v == null) {
            s.setNull(i, Types.NULL);
        } else if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
            s.setLong(i, ((Number) v).longValue());
        } else if (v instanceof Double || v instanceof Float) {
            s.setDouble(i, ((Number) v).doubleValue());
        } else if (v instanceof String str) {
            s.setString(i, str);
        } else if (v instanceof BigDecimal d) {
            s.setString(i, d.toPlainString());
        } else if (v instanceof Boolean b) {
            s.setLong(i, b ? 1 : 0);
        } else if (v instanceof byte[] bytes) {
            s.setBytes(i, bytes);
        } else if (v instanceof ByteBuffer buf) {
            byte[] bytes = new byte[buf.remaining()];
            buf.duplicate().get(bytes);
            s.setBytes(i, bytes);
        } else {
            s.setString(i, v.toString());
        }
    }

    private static String sqliteType(Schema schema) {
        if (schema.name() != null && schema.name().endsWith(".Decimal")) {
            return "TEXT";
        }
        return switch (schema.type()) {
            case INT8, INT16, INT32, INT64, BOOLEAN -> "INTEGER";
            case FLOAT32, FLOAT64 -> "REAL";
            case BYTES -> "BLOB";
            default -> "TEXT";
        };
    }

    private static String quote(String name) {
        return "\"" + name.replace("\"", "\"\"") + "\"";
    }

    @Override
    Check finish() throws SQLException {
        long stored = 0;
        long distinct = 0;
        if (keyColumns != null) {
            String keys = keyColumns.stream().map(SqliteSink::quote).collect(Collectors.joining(", "));
            String sql = "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT " + keys + " FROM "
                    + quote(table) + ")) FROM " + quote(table);
            try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery(sql)) {
                rs.next();
                stored = rs.getLong(1);
                distinct = rs.getLong(2);
            }
        }
        conn.rollback();
        conn.close();
        return new Check(received, stored, distinct);
    }
}
