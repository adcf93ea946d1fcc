//! Mirrors that evolve, against real Vitess (vttestserver, keyspace `commerce`, Vitess v23+
//! `tables_to_copy`), under concurrent writes and SIGKILLs: a table added to the mirror is
//! copied alone, a `--recopy` replaces a table, and a backfilling `ADD COLUMN … DEFAULT`
//! is followed by a re-copy with `--recopy-on-ddl`. Readers polling the copied table never
//! see it half-copied; the tables not copied are shown not to have been copied again by the
//! rows the mirror received in copy phase (timestamp 0) per table.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::vitess::*;

const ROWS: i64 = 20_000;

fn rows_copied(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(rows_copied), 0) FROM _vtmirror_copy_state WHERE table_name = ?1",
        [table],
        |r| r.get(0),
    )
    .unwrap()
}

/// Polls `SELECT count(*)` of `table` on a thread until stopped; every count seen (-1: no
/// such table).
struct Reader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<i64>>,
}

impl Reader {
    fn start(db: &Path, table: &str) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let (db, sql) = (
            db.to_path_buf(),
            format!("SELECT count(*) FROM \"{table}\""),
        );
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                seen.push(conn.query_row(&sql, [], |r| r.get(0)).unwrap_or(-1));
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        Reader { stop, thread }
    }

    /// Stops polling; asserts no count was that of a partly copied table.
    fn assert_never_partial(self, table: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        let partial: Vec<&i64> = seen
            .iter()
            .filter(|&&n| (0..ROWS / 2).contains(&n))
            .collect();
        assert!(
            partial.is_empty(),
            "a reader saw {table} partly copied ({} of {} polls): {:?}",
            partial.len(),
            seen.len(),
            &partial[..partial.len().min(10)]
        );
        println!("reader: {} polls of {table}, none partial", seen.len());
    }
}

fn sync_args<'a>(tables: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tablet-type", "primary", "--tables", tables];
    args.extend_from_slice(more);
    args
}

fn pending_copies(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM _vtmirror_table_copy", [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn has_column(db: &Path, table: &str, column: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sql = "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2";
    conn.query_row(sql, [table, column], |r| r.get::<_, i64>(0))
        .unwrap()
        > 0
}

/// SIGKILLs a sync with `args` after each delay, then runs it (the writes go on, so it is
/// never idle long enough to count as caught up) until `done`, and SIGKILLs it once more.
fn kills_until(c: &Cluster, db: &Path, args: &[&str], delays_ms: &[u64], done: impl Fn() -> bool) {
    for &ms in delays_ms {
        sync_then_sigkill(&c.grpc, "commerce", db, args, Duration::from_millis(ms));
    }
    let began = std::time::Instant::now();
    let mut sync = KillOnDrop(sync_process(&c.grpc, "commerce", db, args));
    while !done() {
        sync.assert_running("while a table copy runs");
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "the table copy did not finish in 240 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sync.sigkill("after the table copy");
    assert_intact(db, "after the table copy");
    println!(
        "table copy finished {:?} after the last of {} kills",
        began.elapsed(),
        delays_ms.len() + 1
    );
}

#[test]
fn tables_are_added_copied_again_and_recopied_after_a_backfilling_ddl_exactly_once() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    run_sql(&mut conn, &["DROP TABLE IF EXISTS tc_a, tc_b, tc_c"]);
    for t in ["tc_a", "tc_b", "tc_c"] {
        run_sql(
            &mut conn,
            &[&format!(
                "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL)"
            )],
        );
        seed_rows(&mut conn, t, ("id", "v"), 1..=ROWS, t);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tc.db");
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &sync_args("tc_a,tc_b", &[]));
    assert!(ok, "first sync failed: {err}");
    let a_copied = rows_copied(&db, "tc_a");
    assert_eq!(a_copied, ROWS);
    let targets: Vec<WriteTarget> = ["tc_a", "tc_b", "tc_c"]
        .iter()
        .zip([5_000_000, 6_000_000, 7_000_000])
        .map(|(t, keys)| WriteTarget::new("commerce", t, ("id", "v"), 1..=ROWS, keys))
        .collect();

    // 1. Add tc_c to the running mirror: copied alone, with kills, while all three change.
    let writer = Writer::start(&c, &targets);
    let reader = Reader::start(&db, "tc_c");
    let all = sync_args("tc_a,tc_b,tc_c", &[]);
    let added = || pending_copies(&db) == 0 && rows_copied(&db, "tc_c") > 0;
    kills_until(&c, &db, &all, &[700, 1200, 1800], added);
    reader.assert_never_partial("tc_c");
    let b_copied = rows_copied(&db, "tc_b");
    assert_eq!(
        rows_copied(&db, "tc_a"),
        a_copied,
        "tc_a was not copied again"
    );
    assert_eq!(b_copied, ROWS, "tc_b was not copied again");
    assert!(rows_copied(&db, "tc_c") >= ROWS, "tc_c was copied");

    // 2. Copy tc_b again on demand, with kills; the same flag after a kill resumes it.
    let reader = Reader::start(&db, "tc_b");
    let recopy = sync_args("tc_a,tc_b,tc_c", &["--recopy", "tc_b"]);
    for ms in [600, 1100] {
        sync_then_sigkill(&c.grpc, "commerce", &db, &recopy, Duration::from_millis(ms));
    }
    kills_until(&c, &db, &all, &[900], || pending_copies(&db) == 0);
    reader.assert_never_partial("tc_b");
    assert_eq!(
        rows_copied(&db, "tc_a"),
        a_copied,
        "tc_a was not copied again"
    );
    assert!(rows_copied(&db, "tc_b") >= ROWS, "tc_b was copied again");

    // 3. A backfilling ADD COLUMN … DEFAULT: without the opt-in the sync stops; with it,
    // tc_a is copied again, new column included.
    run_sql(
        &mut conn,
        &["ALTER TABLE tc_a ADD COLUMN d INT NOT NULL DEFAULT 3"],
    );
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &all);
    assert!(
        !ok && err.contains("tc_a") && err.contains("--recopy-on-ddl"),
        "{err}"
    );
    let reader = Reader::start(&db, "tc_a");
    let on_ddl = sync_args("tc_a,tc_b,tc_c", &["--recopy-on-ddl"]);
    let recopied = || pending_copies(&db) == 0 && has_column(&db, "tc_a", "d");
    kills_until(&c, &db, &on_ddl, &[800], recopied);
    let rounds = writer.stop();
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &on_ddl);
    assert!(ok, "final sync failed: {err}");
    reader.assert_never_partial("tc_a");

    let mut compared = 0;
    for t in ["tc_a", "tc_b", "tc_c"] {
        compared += assert_same(&mut conn, &db, t, 1);
    }
    assert_intact(&db, "at the end");
    assert!(
        has_column(&db, "tc_a", "d"),
        "the re-copied tc_a has the new column"
    );
    println!(
        "table copies on real Vitess: {rounds} write rounds, {compared} rows equal, tc_b copied \
         twice, tc_a copied twice (first copy, then after the DDL), tc_c added; no partial reads"
    );
    run_sql(&mut conn, &["DROP TABLE tc_a, tc_b, tc_c"]);
}
