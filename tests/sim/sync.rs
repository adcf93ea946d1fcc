//! The sync engine against the simulated vtgate, through the real gRPC path.

use std::time::Duration;

use crate::support::*;
use tonic::Code;
use vtmirror::commands::sync::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_copy_then_replication_equals_the_source() {
    let (model, server) = source(2_000).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let writer = {
        let model = model.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                model.apply_random_transactions(10);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let outcome = sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(outcome, Outcome::CaughtUp);
    // Writes that landed after the first catch-up: a second run picks them up from the checkpoint.
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let rows = assert_mirror_equals_source(&db, &model);
    assert!(rows >= 6_000);
    assert_eq!(
        positions(&stored_checkpoint(&db)),
        positions(&model.positions())
    );
    assert!(stored_checkpoint(&db)
        .shard_gtids
        .iter()
        .all(|s| s.table_p_ks.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_mid_transaction_commits_none_of_it_and_resumes() {
    let (model, server) = source(500).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let before = stored_checkpoint(&db);
    let orders_before = expected(&model, "corder").len();
    // One large transaction over several responses; the stream dies inside it (BEGIN,
    // FIELD, first ROW event), with an error that stops the sync so we can look at the file.
    model.large_transaction("corder", 6_000).unwrap();
    server.faults().fail_after_events(
        3,
        Code::InvalidArgument,
        "injected: cut inside a transaction",
    );
    let err = sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("injected"), "{err:#}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let orders: usize = conn
        .query_row("SELECT count(*) FROM corder", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        orders, orders_before,
        "no row of the cut transaction was committed"
    );
    assert_eq!(stored_checkpoint(&db), before);
    // A transient cut inside the same transaction is retried transparently.
    server
        .faults()
        .fail_after_events(4, Code::Unavailable, "injected: tablet went away");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    assert_mirror_equals_source(&db, &model);
    assert!(
        server.requests().len() >= 4,
        "the dropped stream was resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_resumes_from_table_p_ks_and_copies_no_table_twice() {
    // Small copy batches: ~90 batches per shard, so the cuts below land inside tables,
    // between tables and right after a table finished on one shard only.
    let (model, server) = source_with_batch(3_000, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut cuts = 0;
    for events in [700, 1_100, 900, 1_300, 1_000, 1_500, 1_200, 1_800, 2_000] {
        server.faults().fail_after_events(
            events,
            Code::InvalidArgument,
            "injected: cut during copy",
        );
        // Copied rows commit by size or age (never merely because the queue is idle), so
        // small batches make the cuts land after some commits.
        let mut opts = options(&server.endpoint(), &db);
        opts.policy.max_rows = 100;
        match sync_until_caught_up(opts).await {
            Err(e) => {
                assert!(format!("{e:#}").contains("injected"), "{e:#}");
                cuts += 1;
            }
            Ok(_) => break,
        }
    }
    server.faults().clear();
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    assert!(cuts >= 5, "the copy was cut {cuts} times");
    assert_mirror_equals_source(&db, &model);
    let resumed_with_lastpk = server
        .requests()
        .iter()
        .filter(|r| {
            let v = r.vgtid.as_ref().unwrap();
            v.shard_gtids
                .iter()
                .any(|s| !s.gtid.is_empty() && !s.table_p_ks.is_empty())
        })
        .count();
    assert!(
        resumed_with_lastpk >= 3,
        "resume requests carried table_p_ks ({resumed_with_lastpk})"
    );
    assert_eq!(
        copied_rows(&db),
        9_000,
        "every source row was copied exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_at_connect_are_retried_until_the_source_answers() {
    let (model, server) = source(200).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    server
        .faults()
        .reject_next_requests(3, Code::Unavailable, "injected: no healthy tablet");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    assert_mirror_equals_source(&db, &model);
    assert!(server.requests().len() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_error_stops_the_sync_and_leaves_the_mirror_untouched() {
    let (model, server) = source(200).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let before = stored_checkpoint(&db);
    model.apply_random_transactions(20);
    server.faults().reject_next_requests(
        1,
        Code::Unknown,
        "Cannot replicate because the source purged required binary logs (errno 1236)",
    );
    let err = sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("purged"), "{err:#}");
    assert_eq!(stored_checkpoint(&db), before);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let state: String = conn
        .query_row(
            "SELECT value FROM _vtmirror_status WHERE key = 'state'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_transaction_is_applied_idempotently() {
    let (model, server) = source(300).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    model.apply_random_transactions(50);
    server.faults().replay_last_transaction_on_reconnect();
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    assert_mirror_equals_source(&db, &model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_reader_never_sees_half_a_transaction() {
    let (model, server) = source(1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let total: i64 = expected(&model, "accounts")
        .values()
        .map(|row| match row[1] {
            rusqlite::types::Value::Integer(b) => b,
            _ => 0,
        })
        .sum();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sum: i64 = conn
                    .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(sum, total, "a reader saw a half-applied transfer");
                reads += 1;
            }
            reads
        })
    };
    let writes = {
        let model = model.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                model.apply_random_transactions(25);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    writes.await.unwrap();
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(
        reads > 100,
        "the reader actually raced the writer ({reads} reads)"
    );
    assert_mirror_equals_source(&db, &model);
}
