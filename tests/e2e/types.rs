//! Type fidelity against real Vitess: every MySQL type with edge values lands in SQLite with the
//! documented storage class and value, identically whether the copy phase or the binlog phase
//! delivered the row.

use crate::support::vitess::{cluster, sync_until_caught_up};
use mysql::prelude::Queryable;
use rusqlite::types::Value;

// The table is created with the cluster (scripts/vitess/vttest/things/schema.sql), sharded
// by id over -80 and 80-.

/// Edge values, one row each (the id is added in front).
const ROWS: &[&str] = &[
    "-128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, \
     -3.40282e38, -1.7976931348623157e308, -99999999999999.999999, 0.000000000000000000000000000001, \
     '1000-01-01', '-838:59:59.000', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.00', 1901, \
     '', '', '', '', '', '', '', b'0', 'a', '', '[]', ST_GeomFromText('POINT(0 0)')",
    "127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 9223372036854775808, \
     3.40282e38, 1.7976931348623157e308, 99999999999999.999999, -1.5, \
     '9999-12-31', '838:59:58.999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.99', 2155, \
     'ten chars!', 'multibyte 日本語 😀', REPEAT('long text ', 500), 'café €uro', \
     X'0102', X'00FF00', X'DEADBEEF', b'1111111111', 'c d', 'x,z', \
     '{\"b\": [1, 2.5, \"s\"], \"a\": {\"nested\": null}}', ST_GeomFromText('LINESTRING(0 0,1 1,2 2)')",
    "0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1.1, 0.1, 0.000001, 123.456, '2024-02-29', '00:00:00.5', \
     '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.5', 2024, 'a', 'trailing  ', 'x', 'plain', \
     X'00', X'', X'', b'101', 'a', '', '{\"k\": \"v\"}', NULL",
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
    "-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -0.0, -0.0, -0.000001, -0.0000000000000000000000000000001, \
     '2000-01-01', '-00:00:01.250', '2000-01-01 00:00:00.000000', NULL, 2000, \
     'z', ' leading', 'ümlaut', 'ÿ', X'FF', X'00', X'00', b'0000000001', 'b', 'x,y,z', '\"just a string\"', \
     ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')",
];

/// Offset between a copied row and its binlog twin.
const TWIN: i64 = 1_000;

fn insert_rows(conn: &mut mysql::Conn, offset: i64) {
    for (i, values) in ROWS.iter().enumerate() {
        let id = i as i64 + 1 + offset;
        conn.query_drop(format!("INSERT INTO alltypes VALUES ({id}, {values})"))
            .unwrap_or_else(|e| panic!("inserting edge row {}: {e}", i + 1));
    }
}

fn mirror_row(conn: &rusqlite::Connection, id: i64) -> Vec<Value> {
    let mut stmt = conn
        .prepare("SELECT * FROM alltypes WHERE id = ?1")
        .unwrap();
    // The source's columns after the key; vtmirror's own (the row's shard) are not compared.
    let source: Vec<usize> = (1..stmt.column_count())
        .filter(|&i| {
            let name = stmt.column_name(i).unwrap_or_default();
            !vtmirror::source::table_schema::is_bookkeeping_column(name)
        })
        .collect();
    stmt.query_row([id], |r| {
        source.iter().map(|&i| r.get::<_, Value>(i)).collect()
    })
    .unwrap_or_else(|e| panic!("row {id} is mirrored: {e}"))
}

#[test]
fn every_type_is_identical_whether_copied_or_streamed_from_the_binlog() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("things");
    conn.query_drop("DELETE FROM alltypes").unwrap();
    insert_rows(&mut conn, 0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("types.db");
    let args = ["--tables", "alltypes", "--tablet-type", "primary"];
    let (ok, err) = sync_until_caught_up(&c.grpc, "things", &db, &args);
    assert!(ok, "copy failed: {err}");
    let count: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM alltypes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, ROWS.len() as i64);
    insert_rows(&mut conn, TWIN);
    let (ok, err) = sync_until_caught_up(&c.grpc, "things", &db, &args);
    assert!(ok, "replication failed: {err}");
    let mirror = rusqlite::Connection::open(&db).unwrap();
    for id in 1..=ROWS.len() as i64 {
        let copied = mirror_row(&mirror, id);
        let streamed = mirror_row(&mirror, id + TWIN);
        assert_eq!(
            copied, streamed,
            "edge row {id}: copy phase vs binlog phase"
        );
    }
    let edge = mirror_row(&mirror, 2);
    assert_eq!(
        edge[9],
        Value::Text("9223372036854775808".into()),
        "BIGINT UNSIGNED above i64 stays exact"
    );
    assert_eq!(edge[8], Value::Integer(i64::MAX));
    assert_eq!(edge[20], Value::Text("multibyte 日本語 😀".into()));
    assert_eq!(
        edge[22],
        Value::Text("café €uro".into()),
        "latin1 is transcoded to UTF-8"
    );
    assert_eq!(
        edge[26],
        Value::Blob(vec![0x03, 0xFF]),
        "BIT(10) keeps its raw bytes"
    );
    assert_eq!(edge[27], Value::Text("c d".into()));
    assert_eq!(edge[28], Value::Text("x,z".into()));
    let first = mirror_row(&mirror, 1);
    assert_eq!(
        first[13],
        Value::Text("0.000000000000000000000000000001".into()),
        "DECIMAL is exact text"
    );
    let nulls = mirror_row(&mirror, 4);
    assert!(nulls.iter().all(|v| *v == Value::Null));
}
