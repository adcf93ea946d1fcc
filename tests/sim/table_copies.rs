//! Mirrors that evolve, through the real gRPC path: a table added to an existing mirror is
//! copied alone while the others replicate; `--recopy` replaces a table in one commit while
//! readers watch; SIGKILLs during either resume; dropping tables needs `--drop-unselected`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use vtmirror::source::vstream::rules;

use crate::support::sync_runner::{wait_until, wait_until_every, BinarySync};
use crate::support::*;

fn rows_copied(db: &Path, table: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(rows_copied), 0) FROM _vtmirror_copy_state WHERE table_name = ?1",
        [table],
        |r| r.get(0),
    )
    .unwrap()
}

/// Rows copied so far into the hidden copies of added or re-copied tables, all shards.
fn shadow_rows_copied(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(rows_copied), 0) FROM _vtmirror_copy_state \
         WHERE table_name IN (SELECT shadow FROM _vtmirror_table_copy)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn pending_copies(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM _vtmirror_table_copy", [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn assert_table_equals_source(db: &Path, model: &vtmirror::sim::SharedModel, table: &str) {
    let conn = Connection::open(db).unwrap();
    assert_eq!(
        mirrored(&conn, model, table),
        expected(model, table),
        "table {table} equals the source"
    );
}

/// Polls `SELECT count(*)` of `table` until stopped; returns every count seen (an absent
/// table reads as -1).
fn poll_counts(db: &Path, table: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<i64>> {
    let (db, sql) = (
        db.to_path_buf(),
        format!("SELECT count(*) FROM \"{table}\""),
    );
    std::thread::spawn(move || {
        let conn = Connection::open(&db).unwrap();
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            seen.push(conn.query_row(&sql, [], |r| r.get(0)).unwrap_or(-1));
            std::thread::sleep(Duration::from_millis(2));
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_to_a_mirror_is_copied_alone_while_the_others_replicate() {
    let (model, server) = source_with_batch(1500, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.spec.rules = rules(&["customer".into()], &[]);
    sync_until_caught_up(opts.clone()).await.unwrap();
    let customer_copied = rows_copied(&db, "customer");
    assert_eq!(customer_copied, 1500);
    model.apply_random_transactions(200);

    opts.spec.rules = rules(&["customer".into(), "corder".into()], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = poll_counts(&db, "corder", stop.clone());
    let sync = sync_runner::LibrarySync::spawn(opts.clone());
    for _ in 0..10 {
        model.apply_random_transactions(30);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sync.stop().await.unwrap();
    sync_until_caught_up(opts).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();

    assert_table_equals_source(&db, &model, "customer");
    assert_table_equals_source(&db, &model, "corder");
    assert_eq!(
        rows_copied(&db, "customer"),
        customer_copied,
        "customer was not copied again"
    );
    assert!(rows_copied(&db, "corder") >= 1500, "corder was copied");
    let copy_requests: Vec<_> = (server.requests().into_iter())
        .filter_map(|r| r.flags)
        .filter(|f| !f.tables_to_copy.is_empty())
        .collect();
    assert!(
        !copy_requests.is_empty(),
        "the add asked vtgate for tables_to_copy"
    );
    assert!(copy_requests.iter().all(|f| f.tables_to_copy == ["corder"]));
    let partial = seen.iter().filter(|&&n| (0..1000).contains(&n)).count();
    assert_eq!(partial, 0, "readers never saw corder half-copied: {seen:?}");
    assert_eq!(pending_copies(&db), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recopy_replaces_the_table_in_one_commit_and_readers_never_see_it_half_copied() {
    let (model, server) = source_with_batch(3000, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    sync_until_caught_up(opts.clone()).await.unwrap();
    let before = rows_copied(&db, "customer");

    let stop = Arc::new(AtomicBool::new(false));
    let reader = poll_counts(&db, "customer", stop.clone());
    opts.changes.recopy = vec!["customer".into()];
    let sync = sync_runner::LibrarySync::spawn(opts.clone());
    for _ in 0..10 {
        model.apply_random_transactions(30);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        wait_until(Duration::from_secs(60), || pending_copies(&db) == 0).await,
        "the re-copy finished"
    );
    sync.stop().await.unwrap();
    opts.changes.recopy.clear();
    sync_until_caught_up(opts).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();

    assert_mirror_equals_source(&db, &model);
    assert!(
        rows_copied(&db, "customer") >= 2900,
        "customer was copied again (copy state counts the new copy: {} before {before})",
        rows_copied(&db, "customer")
    );
    assert_eq!(
        rows_copied(&db, "corder"),
        3000,
        "corder was not copied again"
    );
    assert!(seen.len() > 20, "the reader polled while the copy ran");
    let low = seen.iter().filter(|&&n| n < 2000).count();
    assert_eq!(
        low, 0,
        "readers saw customer whole at every instant: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_an_added_table_copy_and_a_recopy_resume_them_exactly_once() {
    let (model, server) = source_with_batch(40_000, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let endpoint = server.endpoint();
    let path = db.clone();
    let first = ["--tables", "customer,accounts", "--exit-when-caught-up"];
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec!["sync", "--vtgate", &endpoint, "--keyspace", "commerce"];
        args.extend(["--db", path.to_str().unwrap(), "--quiet"]);
        args.extend(first);
        super::cli::vtmirror(&args)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", super::cli::stderr(&out));
    let accounts_copied = rows_copied(&db, "accounts");
    // Add corder and copy customer again; kill the sync a few times while both copy.
    let extra = [
        "--tables",
        "customer,accounts,corder",
        "--recopy",
        "customer",
    ];
    let mut kills = 0;
    for round in 0..12 {
        let before = shadow_rows_copied(&db);
        let sync = BinarySync::spawn(&server.endpoint(), &db, &extra);
        if round == 0 {
            let requested = wait_until(Duration::from_secs(30), || pending_copies(&db) > 0);
            assert!(requested.await, "the sync recorded the copies");
        }
        model.apply_random_transactions(40);
        // Kill as soon as the copies moved on, whatever the machine's speed: a fixed delay
        // let a faster writer finish both copies before the third kill.
        let moved_on = || shadow_rows_copied(&db) > before || pending_copies(&db) == 0;
        wait_until_every(Duration::from_secs(30), Duration::from_millis(2), moved_on).await;
        drop(sync); // SIGKILL
        if pending_copies(&db) == 0 {
            break;
        }
        kills += 1;
    }
    eprintln!("{kills} SIGKILLs while table copies were pending");
    assert!(kills >= 3, "the copies were killed mid-way ({kills} kills)");
    let mut last = BinarySync::spawn(&server.endpoint(), &db, &extra[..2]);
    assert!(
        wait_until(Duration::from_secs(60), || pending_copies(&db) == 0).await,
        "the copies finished after {kills} kills; log:\n{}",
        last.log_text()
    );
    last.assert_running("after the copies");
    drop(last); // one more SIGKILL, after the copies
    let mut opts = options(&server.endpoint(), &db);
    opts.spec.rules = rules(
        &["customer".into(), "accounts".into(), "corder".into()],
        &[],
    );
    sync_until_caught_up(opts).await.unwrap();
    assert_mirror_equals_source(&db, &model);
    assert_eq!(
        rows_copied(&db, "accounts"),
        accounts_copied,
        "accounts was not copied again"
    );
    let dupes: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) - count(DISTINCT customer_id) FROM customer",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dupes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_table_list_is_refused_untouched_unless_drop_unselected_says_so() {
    let (model, server) = source(200).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let opts = options(&server.endpoint(), &db);
    sync_until_caught_up(opts.clone()).await.unwrap();
    let before = std::fs::read(&db).unwrap();
    let mut shorter = opts.clone();
    shorter.spec.rules = rules(&["customer".into()], &[]);
    let err = sync_until_caught_up(shorter.clone()).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("accounts, corder") && text.contains("--drop-unselected"),
        "{text}"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the refused file is unchanged"
    );

    shorter.changes.drop_unselected = true;
    sync_until_caught_up(shorter).await.unwrap();
    let conn = Connection::open(&db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_vtmirror%' ESCAPE '\\'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["customer"]);
    assert_table_equals_source(&db, &model, "customer");
    let mut wrong = opts;
    wrong.spec.rules = rules(&["customer".into()], &[]);
    wrong.changes.recopy = vec!["corder".into()];
    let err = sync_until_caught_up(wrong).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("holds no table \"corder\""),
        "{err:#}"
    );
}

/// Whether some VStream request asked to copy exactly `table` on its own.
fn copied_alone(server: &vtmirror::sim::SimVtgate, table: &str) -> bool {
    (server.requests().into_iter())
        .filter_map(|r| r.flags)
        .any(|f| f.tables_to_copy == [table])
}

/// Like `poll_counts`, only the counts read once the first copy completed (each with the
/// copy state of the same read transaction): during the first copy every table fills.
fn poll_counts_after_copy(
    db: &Path,
    table: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<i64>> {
    let (db, sql) = (
        db.to_path_buf(),
        format!("SELECT count(*) FROM \"{table}\""),
    );
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
            let Ok(mut conn) = Connection::open(&db) else {
                continue;
            };
            let Ok(tx) = conn.transaction() else { continue };
            let done: i64 = tx
                .query_row("SELECT copy_completed FROM _vtmirror_checkpoint", [], |r| {
                    r.get(0)
                })
                .unwrap_or(0);
            if done == 1 {
                seen.push(tx.query_row(&sql, [], |r| r.get(0)).unwrap_or(-1));
            }
        }
        seen
    })
}

/// A replica that has not loaded a new table yet copies every table but that one, and then
/// refuses a copy of it once (vttablet: "not present in the database"); writes go on all
/// along, corder's included. The mirror ends equal to the source, and readers never saw
/// corder created from its later row changes alone: absent, then whole.
async fn a_copy_that_left_corder_out(shard: Option<&str>) {
    let (model, server) = source_with_batch(1500, 200).await;
    let faults = server.faults();
    faults.omit_from_copies("corder", shard, 2);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let opts = options(&server.endpoint(), &db);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = poll_counts_after_copy(&db, "corder", stop.clone());
    let sync = sync_runner::LibrarySync::spawn(opts.clone());
    for _ in 0..20 {
        model.apply_random_transactions(30);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        wait_until(Duration::from_secs(60), || faults.omissions_left() == 0).await,
        "the copy left corder out, then its table copy was refused"
    );
    sync.stop().await.unwrap();
    sync_until_caught_up(opts).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();

    assert_mirror_equals_source(&db, &model);
    assert!(
        copied_alone(&server, "corder"),
        "corder was copied on its own"
    );
    let partial = seen.iter().filter(|&&n| (0..1000).contains(&n)).count();
    assert_eq!(partial, 0, "readers never saw corder half-full: {seen:?}");
    assert_eq!(pending_copies(&db), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_every_shard_left_out_of_the_copy_is_copied_before_readers_see_it() {
    a_copy_that_left_corder_out(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_one_shard_left_out_of_the_copy_is_copied_again_whole() {
    a_copy_that_left_corder_out(Some("80-")).await;
}
