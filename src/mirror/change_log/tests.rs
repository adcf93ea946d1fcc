use serde_json::{json, Value as Json};

use super::feed::Feed;
use super::retention::{prune, Retention};
use super::*;
use crate::mirror::ddl::{ensure_layout, rename_table};
use crate::mirror::metadata;
use crate::mirror::schema::Layout;
use crate::mirror::store::{Durability, Identity, Mirror};
use crate::source::proto::binlogdata::ShardGtid;
use crate::source::value::Storage;

fn mirror_with_log(dir: &std::path::Path) -> Mirror {
    let identity = Identity {
        keyspace: "ks".into(),
        filter: "[]".into(),
    };
    let mut mirror = Mirror::open(&dir.join("m.db"), &identity, Durability::Normal).unwrap();
    metadata::save_checkpoint(&mirror.conn, &position(1), 1, 0).unwrap();
    metadata::mark_copy_completed(&mirror.conn).unwrap();
    mirror.changes = enable(&mirror.conn, true, Retention::default()).unwrap();
    mirror.changes.as_ref().unwrap().wake(&mirror.conn).unwrap();
    mirror
}

fn layout(extra: &[&str]) -> Layout {
    let mut columns = vec![
        ("id".to_string(), Storage::Integer),
        ("v".into(), Storage::Text),
    ];
    columns.extend(extra.iter().map(|c| (c.to_string(), Storage::Blob)));
    Layout {
        columns,
        pk: vec!["id".into()],
    }
}

fn position(n: u32) -> VGtid {
    VGtid {
        shard_gtids: vec![ShardGtid {
            keyspace: "ks".into(),
            shard: "0".into(),
            gtid: format!("MySQL56/u:1-{n}"),
            table_p_ks: vec![],
        }],
    }
}

/// Runs `sql` as one source transaction ending at position `n`.
fn transaction(m: &Mirror, sql: &str, n: u32) {
    m.conn.execute_batch("BEGIN").unwrap();
    m.conn.execute_batch(sql).unwrap();
    let log = m.changes.as_ref().unwrap();
    log.step_done();
    log.end_transaction(&m.conn, Some(&position(n)), i64::from(n))
        .unwrap();
    log.before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
}

fn entries(m: &Mirror, after: i64) -> Vec<Json> {
    let mut feed = Feed::open(&m.conn).unwrap();
    let read = feed.read(after, 1000, &[]).unwrap();
    read.into_iter().map(|e| e.json).collect()
}

fn ops(entries: &[Json]) -> Vec<String> {
    let op = |e: &Json| {
        format!(
            "{} {}",
            e["op"].as_str().unwrap(),
            e["table"].as_str().unwrap()
        )
    };
    entries.iter().map(op).collect()
}

fn created(m: &Mirror) {
    m.conn.execute_batch("BEGIN").unwrap();
    ensure_layout(&m.conn, "t", &layout(&[])).unwrap();
    m.changes.as_ref().unwrap().before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
}

#[test]
fn row_changes_are_logged_in_order_with_their_images_key_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    transaction(
        &m,
        "INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b');
         UPDATE t SET v = 'c' WHERE id = 1;
         DELETE FROM t WHERE id = 2;",
        9,
    );
    let all = entries(&m, 0);
    let expected = ["schema t", "insert t", "insert t", "update t", "delete t"];
    assert_eq!(ops(&all), expected);
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "seq is gap-free from 1");
    assert_eq!(
        all[0]["columns"][0],
        json!({"name": "id", "pk": 1, "storage": "integer"})
    );
    assert_eq!(
        all[3]["after"],
        json!({"id": 1, "v": "c"}),
        "own columns left out"
    );
    assert_eq!(all[3]["before"], json!({"id": 1, "v": "a"}));
    assert_eq!(all[4]["key"], json!({"id": 2}));
    assert_eq!(all[4]["after"], Json::Null);
    assert_eq!(
        all[4]["position"]["shard_gtids"][0]["gtid"],
        "MySQL56/u:1-9"
    );
    assert_eq!(all[4]["timestamp"], 9);
    assert_eq!(entries(&m, 3).len(), 2, "after a seq, only later entries");
}

#[test]
fn a_rolled_back_transaction_leaves_no_entry_and_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    m.conn
        .execute_batch("BEGIN; INSERT INTO t (id, v) VALUES (7, 'x');")
        .unwrap();
    m.conn.execute_batch("ROLLBACK").unwrap();
    m.changes.as_ref().unwrap().discard(&m.conn);
    transaction(&m, "INSERT INTO t (id, v) VALUES (8, 'y')", 3);
    let all = entries(&m, 0);
    assert_eq!(ops(&all), ["schema t", "insert t"]);
    assert_eq!(all[1]["seq"], 2);
    assert_eq!(all[1]["key"], json!({"id": 8}));
}

#[test]
fn a_whole_table_truncate_is_one_marker_and_a_shard_truncate_logs_its_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    transaction(&m, "INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')", 2);
    let whole = Marker::Truncate {
        table: "t",
        shard: None,
    };
    mark(&m.conn, whole).unwrap();
    transaction(&m, "DELETE FROM t", 3);
    transaction(&m, "INSERT INTO t (id, v) VALUES (3, 'c')", 4);
    let shard = Marker::Truncate {
        table: "t",
        shard: Some("-80"),
    };
    mark(&m.conn, shard).unwrap();
    transaction(&m, "DELETE FROM t", 5);
    let later = entries(&m, 3);
    assert_eq!(
        ops(&later),
        ["truncate t", "insert t", "truncate t", "delete t"]
    );
    assert_eq!(later[0].get("shard"), None);
    assert_eq!(later[2]["shard"], "-80");
    assert_eq!(later[3]["key"], json!({"id": 3}));
}

#[test]
fn a_table_copy_swapped_in_is_a_resync_with_every_row_and_stays_logged() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    transaction(&m, "INSERT INTO t (id, v) VALUES (1, 'old')", 2);
    m.conn
        .execute_batch(
            "CREATE TABLE _vtmirror_copy_t (id INTEGER PRIMARY KEY, v TEXT, _vtmirror_shard TEXT);
             INSERT INTO _vtmirror_copy_t (id, v) VALUES (1, 'new'), (2, 'two');",
        )
        .unwrap();
    m.conn.execute_batch("BEGIN").unwrap();
    rename_table(&m.conn, "_vtmirror_copy_t", "t").unwrap();
    m.changes.as_ref().unwrap().before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
    transaction(&m, "UPDATE t SET v = 'newer' WHERE id = 2", 3);
    let later = entries(&m, 2);
    let expected = ["drop t", "resync t", "insert t", "insert t", "update t"];
    assert_eq!(
        ops(&later),
        expected,
        "the shadow's own rows are never entries"
    );
    assert_eq!(later[2]["after"], json!({"id": 1, "v": "new"}));
    assert_eq!(later[4]["before"], json!({"id": 2, "v": "two"}));
}

#[test]
fn renames_and_schema_changes_are_marked_and_rows_carry_the_new_columns_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    m.conn.execute_batch("BEGIN").unwrap();
    rename_table(&m.conn, "t", "u").unwrap();
    ensure_layout(&m.conn, "u", &layout(&["bin"])).unwrap();
    m.changes.as_ref().unwrap().before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
    transaction(&m, "INSERT INTO u (id, v, bin) VALUES (1, 'a', x'00ff')", 2);
    let all = entries(&m, 1);
    assert_eq!(
        ops(&all),
        ["rename t", "schema u", "insert u"],
        "one insert, not two"
    );
    assert_eq!(all[0]["to"], "u");
    assert_eq!(all[2]["after"], json!({"id": 1, "v": "a", "bin": "AP8="}));
    assert_eq!(all[2]["binary"], json!(["bin"]));
}

#[test]
fn entries_the_retention_pruned_are_an_error_that_says_to_resync() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    for n in 0..5 {
        transaction(
            &m,
            &format!("INSERT INTO t (id, v) VALUES ({n}, 'x')"),
            n + 2,
        );
    }
    let keep_two = Retention {
        max_entries: Some(2),
        ..Default::default()
    };
    assert_eq!(prune(&m.conn, &keep_two, 0).unwrap(), Some(4));
    let mut feed = Feed::open(&m.conn).unwrap();
    let err = feed.read(1, 10, &[]).unwrap_err().to_string();
    assert!(err.contains("pruned") && err.contains("Resync"), "{err}");
    let kept: Vec<i64> = (feed.read(4, 10, &[]).unwrap().iter())
        .map(|e| e.seq)
        .collect();
    assert_eq!(kept, vec![5, 6]);
    let everything = Retention {
        max_entries: Some(1),
        ..Default::default()
    };
    prune(&m.conn, &everything, 0).unwrap();
    transaction(&m, "INSERT INTO t (id, v) VALUES (99, 'x')", 9);
    assert_eq!(feed.newest().unwrap(), 7, "seq goes on after pruning");
}

#[test]
fn a_mirror_without_a_log_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        keyspace: "ks".into(),
        filter: "[]".into(),
    };
    let m = Mirror::open(&dir.path().join("m.db"), &identity, Durability::Normal).unwrap();
    let err = Feed::open(&m.conn).err().unwrap().to_string();
    assert!(err.contains("--changes"), "{err}");
}

#[test]
fn before_the_first_copy_completes_nothing_is_logged_then_every_table_whole() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        keyspace: "ks".into(),
        filter: "[]".into(),
    };
    let mut m = Mirror::open(&dir.path().join("m.db"), &identity, Durability::Normal).unwrap();
    m.changes = enable(&m.conn, true, Retention::default()).unwrap();
    created(&m);
    transaction(
        &m,
        "INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b'); DELETE FROM t WHERE id = 1",
        2,
    );
    assert!(
        entries(&m, 0).is_empty(),
        "the copy is not logged row by row"
    );
    m.conn.execute_batch("BEGIN").unwrap();
    metadata::mark_copy_completed(&m.conn).unwrap();
    m.changes.as_ref().unwrap().copy_completed(&m.conn).unwrap();
    m.changes.as_ref().unwrap().before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
    transaction(&m, "UPDATE t SET v = 'c' WHERE id = 2", 3);
    let all = entries(&m, 0);
    assert_eq!(ops(&all), ["resync t", "insert t", "update t"]);
    assert_eq!(all[1]["after"], json!({"id": 2, "v": "b"}));
}

#[test]
fn a_reader_can_ask_for_some_tables_only_and_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let m = mirror_with_log(dir.path());
    created(&m);
    m.conn.execute_batch("BEGIN").unwrap();
    ensure_layout(&m.conn, "u", &layout(&[])).unwrap();
    m.changes.as_ref().unwrap().before_commit(&m.conn).unwrap();
    m.conn.execute_batch("COMMIT").unwrap();
    let sql = "INSERT INTO t (id, v) VALUES (1, 'a'); INSERT INTO u (id, v) VALUES (2, 'b');
               INSERT INTO t (id, v) VALUES (3, 'c');";
    transaction(&m, sql, 2);
    let mut feed = Feed::open(&m.conn).unwrap();
    let only_t = feed.read(2, 10, &["t".to_string()]).unwrap();
    let seqs: Vec<i64> = only_t.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 5]);
    assert_eq!(feed.read(0, 2, &[]).unwrap().len(), 2, "the limit holds");
}
