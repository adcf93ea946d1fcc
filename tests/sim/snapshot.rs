//! `vtmirror snapshot`: consistent copies taken while syncing, which resume syncing later.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use vtmirror::commands::snapshot::take;
use vtmirror::sim::INITIAL_BALANCE;

fn balance_sum(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_during_a_sync_are_consistent_and_resume_to_equal_the_source() {
    let (model, server) = source(1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let mut opts = options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sync = tokio::spawn(vtmirror::commands::sync::run(
        opts,
        Arc::new(vtmirror::output::progress::Progress::default()),
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut snapshots = Vec::new();
    for i in 0..5 {
        model.apply_random_transactions(200);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let out = dir.path().join(format!("snap{i}.db"));
        let snap = take(&db, &out).unwrap();
        assert!(snap.copy_completed && snap.bytes > 0);
        snapshots.push(out);
    }
    stop_tx.send(()).unwrap();
    sync.await.unwrap().unwrap();
    let total = INITIAL_BALANCE * expected(&model, "accounts").len() as i64;
    for snap in &snapshots {
        assert_eq!(
            balance_sum(snap),
            total,
            "{} holds whole transfers only",
            snap.display()
        );
    }
    // A snapshot is a mirror of its own: a sync resumes from its embedded checkpoint.
    let resumed = &snapshots[2];
    sync_until_caught_up(options(&server.endpoint(), resumed))
        .await
        .unwrap();
    assert_mirror_equals_source(resumed, &model);
    assert_eq!(
        positions(&stored_checkpoint(resumed)),
        positions(&model.positions())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_unfinished_copy_continues_the_copy() {
    let (model, server) = source_with_batch(1_500, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    server.faults().fail_after_events(
        500,
        tonic::Code::InvalidArgument,
        "injected: cut during copy",
    );
    let mut opts = options(&server.endpoint(), &db);
    opts.policy.max_rows = 1;
    sync_until_caught_up(opts).await.unwrap_err();
    let out = dir.path().join("snap.db");
    let snap = take(&db, &out).unwrap();
    assert!(!snap.copy_completed);
    sync_until_caught_up(options(&server.endpoint(), &out))
        .await
        .unwrap();
    assert_mirror_equals_source(&out, &model);
    assert_eq!(copied_rows(&out), 4_500, "every row copied exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_output_file_is_never_overwritten() {
    let (_model, server) = source(20).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let out = dir.path().join("taken.db");
    std::fs::write(&out, b"precious").unwrap();
    let err = take(&db, &out).unwrap_err();
    assert!(format!("{err:#}").contains("must not exist"), "{err:#}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let err = take(&dir.path().join("missing.db"), &dir.path().join("x.db")).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("x.db").exists());
}
