//! One table, two shards, the stream interleaving them (keyspace `things`, -80 and 80-):
//! rows moving between shards by DELETE + INSERT of the same key, a TRUNCATE and a DROP +
//! CREATE that vtgate runs on every shard while the other shard's writes go on. The mirror
//! must end equal to the source after every round, with the sync running throughout and
//! SIGKILLed between rounds. The tables have no vindex: each row is written on the shard a
//! test chooses (targets `things:-80`, `things:80-`), as an application's primary vindex
//! would place it.

use std::path::Path;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::support::vitess::{
    assert_rows_equal, mirror_rows, part_rows, run_sql, sync_process, sync_until_caught_up,
    Cleanup, Cluster, KillOnDrop, Part,
};

const SHARDS: [&str; 2] = ["-80", "80-"];

fn create(c: &Cluster, table: &str) {
    run_sql(
        &mut c.sql("things"),
        &[
            &format!("DROP TABLE IF EXISTS {table}"),
            &format!("CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64))"),
        ],
    );
}

/// Waits until the mirror's `table` equals the source's (read shard by shard); fails with the
/// differences after a minute.
fn wait_until_equal(c: &Cluster, db: &Path, table: &str, context: &str) -> usize {
    let part = Part::shards("things", &SHARDS);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = part_rows(c, &part, table, 1);
        let equal =
            std::panic::catch_unwind(|| mirror_rows(db, table, 1)).is_ok_and(|got| got == want);
        if equal {
            return want.len();
        }
        if Instant::now() > deadline {
            eprintln!("{context}: the mirror still differs after 60 s");
            return assert_rows_equal(&want, db, table, 1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn sync(c: &Cluster, db: &Path, table: &str) -> KillOnDrop {
    KillOnDrop(sync_process(
        &c.grpc,
        "things",
        db,
        &["--tablet-type", "primary", "--tables", table],
    ))
}

/// `rows` inserted on `shard` in one transaction, ids from `first`.
fn insert_on(c: &Cluster, shard: &str, table: &str, first: i64, rows: i64, label: &str) {
    let mut conn = c.sql(&format!("things:{shard}"));
    let values: Vec<String> = (first..first + rows)
        .map(|i| format!("({i}, '{label}{i}')"))
        .collect();
    let mut tx = conn.start_transaction(Default::default()).unwrap();
    for chunk in values.chunks(500) {
        tx.query_drop(format!(
            "INSERT INTO {table} (id, v) VALUES {}",
            chunk.join(", ")
        ))
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn rows_moving_between_shards_by_delete_and_insert_are_never_lost() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS shm_moving");
    create(&c, "shm_moving");
    let ids = 400;
    insert_on(&c, "-80", "shm_moving", 1, ids / 2, "start-");
    insert_on(&c, "80-", "shm_moving", ids / 2 + 1, ids / 2, "start-");
    let mut holder: Vec<usize> = (1..=ids).map(|i| usize::from(i > ids / 2)).collect();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("moving.db");
    let mut sync_child = sync(&c, &db, "shm_moving");
    let mut conns = SHARDS.map(|s| c.sql(&format!("things:{s}")));
    let mut rng = vtmirror::sim::rng::SplitMix64::new(27);
    for round in 0..4 {
        for step in 0..150 {
            // A third of the moves take 8 rows at once, in one transaction per shard.
            let count = if step % 3 == 0 { 8 } else { 1 };
            let first = rng.range(1, ids - count + 1);
            let moved: Vec<i64> = (first..first + count).collect();
            for from in 0..2 {
                let ids: Vec<i64> = (moved.iter().copied())
                    .filter(|&id| holder[id as usize - 1] == from)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                let values: Vec<String> = (ids.iter())
                    .map(|id| format!("({id}, 'round{round}-step{step}')"))
                    .collect();
                conns[from]
                    .query_drop(format!(
                        "DELETE FROM shm_moving WHERE id IN ({})",
                        list.join(",")
                    ))
                    .unwrap();
                conns[1 - from]
                    .query_drop(format!(
                        "INSERT INTO shm_moving (id, v) VALUES {}",
                        values.join(",")
                    ))
                    .unwrap();
                ids.iter()
                    .for_each(|&id| holder[id as usize - 1] = 1 - from);
            }
        }
        let rows = wait_until_equal(&c, &db, "shm_moving", &format!("after round {round}"));
        assert_eq!(rows, ids as usize, "every moved row is mirrored");
        // A SIGKILL between rounds: the restarted sync resumes exactly.
        sync_child.sigkill(&format!("after round {round}"));
        sync_child = sync(&c, &db, "shm_moving");
    }
}

#[test]
fn a_truncate_and_a_drop_on_a_sharded_keyspace_affect_only_each_shards_rows() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS shm_trunc");
    create(&c, "shm_trunc");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trunc.db");
    let mut sync_child = sync(&c, &db, "shm_trunc");
    let mut things = c.sql("things");
    for round in 0..10 {
        // A large transaction on one shard, then the TRUNCATE vtgate runs on both, then at
        // once small inserts on both shards.
        let big = SHARDS[round % 2];
        insert_on(&c, big, "shm_trunc", 1_000_000, 30_000, "big-");
        match round {
            9 => run_sql(
                &mut things,
                &[
                    "DROP TABLE shm_trunc",
                    "CREATE TABLE shm_trunc (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64))",
                ],
            ),
            _ => run_sql(&mut things, &["TRUNCATE TABLE shm_trunc"]),
        }
        for i in 0..50 {
            insert_on(
                &c,
                SHARDS[i % 2],
                "shm_trunc",
                i as i64 * 10 + 1,
                1,
                "after-",
            );
        }
        let rows = wait_until_equal(&c, &db, "shm_trunc", &format!("after round {round}"));
        assert_eq!(
            rows, 50,
            "round {round}: only the rows written after the TRUNCATE"
        );
        sync_child.assert_running(&format!("after round {round}"));
    }
    sync_child.sigkill("after the last round");
}

/// A column rename runs on each shard at its own binlog position, and until then that shard's
/// rows stream the old name: the sync stops naming the table instead of renaming the column
/// for every shard's rows at the first shard's statement, and `--recopy-on-ddl` then makes
/// the mirror equal under the new name.
#[test]
fn a_column_rename_on_a_sharded_keyspace_stops_naming_the_table_and_a_recopy_makes_it_equal() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS shm_rename");
    create(&c, "shm_rename");
    insert_on(&c, "-80", "shm_rename", 1, 100, "left-");
    insert_on(&c, "80-", "shm_rename", 101, 100, "right-");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rename.db");
    let args = ["--tablet-type", "primary", "--tables", "shm_rename"];
    let sync = |extra: &[&str]| sync_until_caught_up(&c.grpc, "things", &db, extra);
    let (ok, err) = sync(&args);
    assert!(ok, "first sync failed: {err}");
    run_sql(
        &mut c.sql("things"),
        &["ALTER TABLE shm_rename RENAME COLUMN v TO w"],
    );
    insert_on_renamed(&c);
    let (ok, err) = sync(&args);
    assert!(
        !ok && err.contains("shm_rename") && err.contains("cannot be mirrored"),
        "the sync must stop naming shm_rename: {err}"
    );
    let (ok, err) = sync(&[&args[..], &["--recopy-on-ddl"]].concat());
    assert!(ok, "--recopy-on-ddl sync failed: {err}");
    let want = part_rows(&c, &Part::shards("things", &SHARDS), "shm_rename", 1);
    assert_eq!(assert_rows_equal(&want, &db, "shm_rename", 1), 220);
    let columns = vtmirror::mirror::ddl::current_layout(
        &rusqlite::Connection::open(&db).unwrap(),
        "shm_rename",
    )
    .unwrap()
    .unwrap()
    .columns;
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "w"], "the mirror holds the new name only");
    println!(
        "column rename on both shards: stopped naming the table, then re-copied equal (220 rows)"
    );
}

/// Rows written on both shards after the rename, under the new name.
fn insert_on_renamed(c: &Cluster) {
    for (shard, first) in [("-80", 1_001), ("80-", 2_001)] {
        let mut conn = c.sql(&format!("things:{shard}"));
        let values: Vec<String> = (first..first + 10)
            .map(|i| format!("({i}, 'renamed-{i}')"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO shm_rename (id, w) VALUES {}",
            values.join(", ")
        ))
        .unwrap();
    }
}

/// Two shards holding one key at once, beyond a move (a sharded table whose ids are unique
/// per shard only): once both shards' streams passed a minute of their own binlog time
/// without either deleting the key, the running sync stops naming the table and both shards,
/// never merging the two rows into one.
#[test]
fn a_key_two_shards_hold_at_once_stops_the_sync_naming_table_and_shards() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS shm_twice");
    create(&c, "shm_twice");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("twice.db");
    let grpc = c.grpc.clone();
    let db_path = db.clone();
    let sync = std::thread::spawn(move || {
        let args = ["--tablet-type", "primary", "--tables", "shm_twice"];
        sync_until_caught_up(&grpc, "things", &db_path, &args)
    });
    std::thread::sleep(Duration::from_secs(3));
    insert_on(&c, "-80", "shm_twice", 1, 1, "left-");
    insert_on(&c, "80-", "shm_twice", 1, 1, "right-");
    // Both streams must pass 60 s of their own binlog time: a row a second on each shard.
    let began = Instant::now();
    let mut id = 100;
    while began.elapsed() < Duration::from_secs(75) && !sync.is_finished() {
        for shard in SHARDS {
            insert_on(&c, shard, "shm_twice", id, 1, "filler-");
            id += 1;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (ok, err) = sync.join().unwrap();
    assert!(
        !ok && err.contains("shm_twice") && err.contains("at once"),
        "the sync must stop naming the table: {err}"
    );
    assert!(
        err.contains("-80") && err.contains("80-"),
        "both shards: {err}"
    );
    println!(
        "a key held by both shards: the sync stopped after {:.0} s naming table and shards",
        began.elapsed().as_secs_f64()
    );
}
