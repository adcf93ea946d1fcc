//! The change feed on real Vitess: a sharded table (`things`, -80 and 80-) through a
//! TRUNCATE that each shard runs on its own, an ADD COLUMN, a SIGKILL and a `--recopy`;
//! an unsharded one (`commerce`) through a whole-table TRUNCATE. The feed must carry the
//! markers (a truncate per shard followed by that shard's deletes; one truncate alone for
//! the whole table; a schema change; a resync followed by every row), and replaying it from
//! its first entry must give exactly the mirror's tables.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use serde_json::Value as Json;

use crate::support::feed_consumer;
use crate::support::vitess::{run_sql, sync_process, Cleanup, Cluster, KillOnDrop};

/// Every entry of the mirror's feed, read through the real binary.
fn feed(db: &Path) -> Vec<Json> {
    let out = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["changes", "--db"])
        .arg(db)
        .output()
        .expect("vtmirror changes runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).lines())
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// The feed applied from its first entry equals the mirror, table for table.
fn assert_replay_equals_mirror(db: &Path, entries: &[Json]) {
    let dir = tempfile::tempdir().unwrap();
    let consumer = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    for entry in entries {
        feed_consumer::apply(&consumer, entry);
    }
    drop(consumer);
    let mirrored = feed_consumer::tables(db);
    assert!(!mirrored.is_empty());
    assert_eq!(feed_consumer::tables(&dir.path().join("c.db")), mirrored);
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// Polls until the mirror's `table` holds `rows` rows and no table copy is pending.
fn wait_for_rows(db: &Path, table: &str, rows: i64, context: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let held = format!("SELECT count(*) FROM \"{table}\"");
    let copies = "SELECT count(*) FROM _vtmirror_table_copy";
    while count(db, &held) != rows || count(db, copies) != 0 {
        assert!(
            Instant::now() < deadline,
            "{context}: the mirror holds {} rows of {table}, expected {rows}",
            count(db, &held)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn insert(
    c: &Cluster,
    target: &str,
    table: &str,
    first: i64,
    rows: i64,
    columns: &str,
    value: &str,
) {
    let mut conn = c.sql(target);
    let values: Vec<String> = (first..first + rows)
        .map(|i| format!("({i}, {})", value.replace("{i}", &i.to_string())))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        values.join(", ")
    ))
    .unwrap();
}

fn ops<'a>(entries: &'a [Json], op: &str) -> Vec<&'a Json> {
    entries.iter().filter(|e| e["op"] == op).collect()
}

#[test]
fn a_sharded_tables_truncate_schema_change_and_recopy_are_marked_and_the_feed_replays_exactly() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS cf_t");
    run_sql(
        &mut c.sql("things"),
        &[
            "DROP TABLE IF EXISTS cf_t",
            "CREATE TABLE cf_t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64), b VARBINARY(8))",
        ],
    );
    insert(
        &c,
        "things:-80",
        "cf_t",
        1,
        40,
        "id, v, b",
        "'low{i}', x'00ff'",
    );
    insert(
        &c,
        "things:80-",
        "cf_t",
        101,
        40,
        "id, v, b",
        "'high{i}', NULL",
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("feed.db");
    let args = ["--tablet-type", "primary", "--tables", "cf_t", "--changes"];
    let mut sync = KillOnDrop(sync_process(&c.grpc, "things", &db, &args));
    wait_for_rows(&db, "cf_t", 80, "after the copy");
    run_sql(&mut c.sql("things"), &["TRUNCATE TABLE cf_t"]);
    wait_for_rows(&db, "cf_t", 0, "after the TRUNCATE");
    insert(&c, "things:-80", "cf_t", 1, 10, "id, v", "'again{i}'");
    run_sql(&mut c.sql("things"), &["ALTER TABLE cf_t ADD COLUMN w INT"]);
    insert(
        &c,
        "things:80-",
        "cf_t",
        101,
        10,
        "id, v, w",
        "'with-w{i}', {i}",
    );
    wait_for_rows(&db, "cf_t", 20, "after the ADD COLUMN");
    sync.sigkill("before the recopy");
    let mut recopy = args.to_vec();
    recopy.extend(["--recopy", "cf_t"]);
    sync = KillOnDrop(sync_process(&c.grpc, "things", &db, &recopy));
    insert(&c, "things:-80", "cf_t", 51, 5, "id, v", "'during{i}'");
    wait_for_rows(&db, "cf_t", 25, "after the recopy");
    sync.assert_running("at the end");
    drop(sync);

    let entries = feed(&db);
    let truncates = ops(&entries, "truncate");
    assert_eq!(
        truncates.len(),
        2,
        "one truncate marker per shard: {truncates:?}"
    );
    assert!(truncates.iter().all(|t| t["shard"].is_string()));
    let schema_with_w = ops(&entries, "schema")
        .into_iter()
        .any(|e| e["columns"].to_string().contains("\"w\""));
    assert!(schema_with_w, "the ADD COLUMN is a schema marker listing w");
    let resync = entries
        .iter()
        .position(|e| e["op"] == "resync")
        .expect("a resync marker");
    let copied_rows = entries[resync + 1..]
        .iter()
        .take_while(|e| e["op"] == "insert")
        .count();
    assert!(
        copied_rows >= 20,
        "the resync is followed by the copied rows ({copied_rows})"
    );
    let binary = entries.iter().find(|e| e["after"]["b"] == "AP8=");
    assert!(binary.is_some_and(|e| e["binary"] == serde_json::json!(["b"])));
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq is gap-free");
    assert_replay_equals_mirror(&db, &entries);
}

#[test]
fn a_whole_tables_truncate_is_one_marker_and_the_feed_replays_exactly() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("commerce", "DROP TABLE IF EXISTS cf_whole");
    run_sql(
        &mut c.sql("commerce"),
        &[
            "DROP TABLE IF EXISTS cf_whole",
            "CREATE TABLE cf_whole (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64))",
        ],
    );
    insert(&c, "commerce", "cf_whole", 1, 50, "id, v", "'before{i}'");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("whole.db");
    let args = [
        "--tablet-type",
        "primary",
        "--tables",
        "cf_whole",
        "--changes",
    ];
    let sync = KillOnDrop(sync_process(&c.grpc, "commerce", &db, &args));
    wait_for_rows(&db, "cf_whole", 50, "after the copy");
    run_sql(&mut c.sql("commerce"), &["TRUNCATE TABLE cf_whole"]);
    insert(&c, "commerce", "cf_whole", 7, 3, "id, v", "'after{i}'");
    wait_for_rows(&db, "cf_whole", 3, "after the TRUNCATE");
    drop(sync);
    let entries = feed(&db);
    let truncate = entries
        .iter()
        .position(|e| e["op"] == "truncate")
        .expect("a truncate marker");
    assert!(
        entries[truncate].get("shard").is_none(),
        "the whole table went"
    );
    let after: Vec<&str> = entries[truncate + 1..]
        .iter()
        .filter_map(|e| e["op"].as_str())
        .collect();
    assert!(
        !after.contains(&"delete"),
        "no per-row deletes after a whole-table truncate: {after:?}"
    );
    assert_replay_equals_mirror(&db, &entries);
}
