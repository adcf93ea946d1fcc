//! `vtmirror query` on a mirror synced from the simulated vtgate.

use std::path::{Path, PathBuf};

use crate::support::*;
use vtmirror::commands::query::{run, QueryFormat, QueryOptions};

async fn synced_mirror(dir: &Path) -> PathBuf {
    let (_model, server) = source(50).await;
    let db = dir.join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    db
}

fn query(db: &Path, sql: &str, format: QueryFormat) -> anyhow::Result<String> {
    let args = QueryOptions {
        db: db.to_path_buf(),
        sql: sql.to_string(),
        format,
    };
    let mut out = Vec::new();
    run(&args, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_output_is_an_aligned_table_with_a_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = synced_mirror(dir.path()).await;
    let sql = "SELECT id, balance, 'x' AS tag, NULL AS missing FROM accounts ORDER BY id LIMIT 2";
    let text = query(&db, sql, QueryFormat::Table).unwrap();
    let want = "\
+----+---------+-----+---------+
| id | balance | tag | missing |
+----+---------+-----+---------+
|  1 |    1000 | x   |    NULL |
|  2 |    1000 | x   |    NULL |
+----+---------+-----+---------+
2 rows
";
    assert_eq!(text, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_carry_every_value_with_blobs_in_hex() {
    let dir = tempfile::tempdir().unwrap();
    let db = synced_mirror(dir.path()).await;
    let sql = "SELECT order_id, sku, note FROM corder ORDER BY order_id LIMIT 3";
    let csv_text = query(&db, sql, QueryFormat::Csv).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.headers().unwrap(), vec!["order_id", "sku", "note"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r[1].starts_with("0x")), "{csv_text}");
    let json_text = query(&db, sql, QueryFormat::Json).unwrap();
    let rows: Vec<serde_json::Value> = json_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["order_id"], 1);
    assert_eq!(rows[0]["sku"].as_str(), Some(&records[0][1]));
    assert!(
        json_text.starts_with("{\"order_id\":1,\"sku\":"),
        "keys keep column order: {json_text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_write_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = synced_mirror(dir.path()).await;
    for sql in [
        "DELETE FROM customer",
        "UPDATE accounts SET balance = 0",
        "CREATE TABLE t (a)",
        "DROP TABLE customer",
    ] {
        let err = query(&db, sql, QueryFormat::Table).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{sql}: {err}");
    }
    let count = query(&db, "SELECT count(*) AS n FROM customer", QueryFormat::Json).unwrap();
    assert_eq!(count.trim(), "{\"n\":50}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = synced_mirror(dir.path()).await;
    let err = query(&db, "SELEC * FROM customer", QueryFormat::Table).unwrap_err();
    assert!(format!("{err:#}").contains("syntax error"), "{err:#}");
    let err = query(&db, "SELECT * FROM no_such_table", QueryFormat::Table).unwrap_err();
    assert!(format!("{err:#}").contains("no such table"), "{err:#}");
    let err = query(&db, "SELECT 1; SELECT 2", QueryFormat::Table).unwrap_err();
    assert!(
        err.to_string().contains("exactly one SQL statement"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_does_not_block_a_running_sync() {
    let (model, server) = source(500).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    // A reader holding a read transaction open the whole time the sync writes.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM customer;")
        .unwrap();
    model.apply_random_transactions(100);
    let sync = tokio::spawn(sync_until_caught_up(options(&server.endpoint(), &db)));
    for _ in 0..20 {
        query(&db, "SELECT sum(balance) FROM accounts", QueryFormat::Csv).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sync.await.unwrap().unwrap();
    reader.execute_batch("COMMIT").unwrap();
    assert_mirror_equals_source(&db, &model);
}
