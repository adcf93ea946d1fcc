//! `vtmirror status` on mirrors synced from the simulated vtgate: stopped, running, failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use tonic::Code;
use vtmirror::commands::status::{read, text, Status};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_mirror_shows_its_checkpoint_and_finished_copy() {
    let (model, server) = source(300).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let s = read(&db, now()).unwrap();
    assert_eq!(s.state, "stopped");
    assert_eq!(s.sync_running, Some(false));
    assert_eq!(s.keyspace.as_deref(), Some("commerce"));
    assert!(s.copy_completed);
    assert_eq!(s.lag_seconds, None, "no lag is claimed while nothing syncs");
    let shards: Vec<(String, String)> = s
        .checkpoint
        .iter()
        .map(|p| (p.shard.clone(), p.gtid.clone()))
        .collect();
    assert_eq!(
        shards,
        positions(&model.positions())
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(s.copy.len(), 6, "3 tables × 2 shards");
    assert!(s.copy.iter().all(|t| t.done && t.last_pk.is_none()));
    let copied: i64 = s.copy.iter().map(|t| t.rows_copied).sum();
    assert_eq!(copied, 900);
    assert!(s.file_bytes > 0);
    let shown = text(&s);
    assert!(
        shown.contains("state           stopped (no sync running)"),
        "{shown}"
    );
    assert!(shown.contains("copy            completed"), "{shown}");
    assert!(
        shown.contains(
            "  table     copy        shard  rows copied  last pk  done\n  accounts  first copy  -80    "
        ),
        "{shown}"
    );
}

/// Polls `read` until `pred` holds (or panics after 30 s).
async fn wait_for(db: &std::path::Path, pred: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = read(db, now()) {
            if pred(&s) {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status never reached the expected state"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sync_shows_replicating_with_a_small_lag() {
    let (model, server) = source(300).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let progress = Arc::new(vtmirror::output::progress::Progress::default());
    let sync = tokio::spawn(vtmirror::commands::sync::run(opts, progress, async {
        let _ = stop_rx.await;
    }));
    wait_for(&db, |s| s.state == "replicating").await;
    model.apply_random_transactions(5);
    let s = wait_for(&db, |s| s.last_event_time.is_some()).await;
    assert_eq!(s.sync_running, Some(true));
    let lag = s.lag_seconds.expect("a replicating mirror has a lag");
    assert!((0..=5).contains(&lag), "lag {lag}");
    assert!(s.last_event_time.is_some() && s.last_commit_at.is_some());
    // Heartbeats keep the lag small while the source is idle.
    let idle = wait_for(&db, |s| s.last_heartbeat_time.is_some()).await;
    assert!(idle.lag_seconds.is_some_and(|l| l <= 5));
    stop_tx.send(()).unwrap();
    sync.await.unwrap().unwrap();
    assert_eq!(read(&db, now()).unwrap().state, "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_shows_the_error_and_each_tables_last_key() {
    let (_model, server) = source_with_batch(2_000, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    server
        .faults()
        .fail_after_events(600, Code::InvalidArgument, "injected: cut during copy");
    let mut opts = options(&server.endpoint(), &db);
    opts.policy.max_rows = 1; // commit every copy batch, so the failure leaves some behind
    let err = sync_until_caught_up(opts).await.unwrap_err();
    assert!(format!("{err:#}").contains("injected"));
    let s = read(&db, now()).unwrap();
    assert_eq!(s.state, "failed");
    assert!(!s.copy_completed);
    assert!(s
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("injected: cut during copy"));
    let in_progress: Vec<_> = s.copy.iter().filter(|t| !t.done).collect();
    assert!(!in_progress.is_empty());
    assert!(
        in_progress
            .iter()
            .any(|t| t.last_pk.as_deref().is_some_and(|pk| pk.contains('='))),
        "an unfinished table shows its last copied key: {:?}",
        s.copy
    );
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "state",
        "last_error",
        "lag_seconds",
        "checkpoint",
        "copy",
        "file_bytes",
    ] {
        assert!(json.get(key).is_some(), "status JSON has {key}");
    }
    assert!(text(&s).contains("last error      "), "{}", text(&s));
}

#[test]
fn a_missing_or_foreign_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let err = read(&missing, 0).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE x (a); PRAGMA user_version = 3;")
        .unwrap();
    let err = read(&foreign, 0).unwrap_err();
    assert!(err.to_string().contains("not a vtmirror mirror"), "{err}");
}
