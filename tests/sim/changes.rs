//! `vtmirror changes` on a mirror synced from the simulated vtgate: how soon `--follow`
//! delivers a commit, and the definite error for entries the retention pruned.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sync_runner::{wait_until, LibrarySync};
use crate::support::*;
use vtmirror::mirror::change_log::retention::Retention;

/// Latency from the moment a commit is visible in the file (polled every millisecond) to the
/// moment `vtmirror changes --follow` prints its first entry, over 200 commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_delivers_each_commit_within_50_ms_at_the_99th_percentile() {
    let (model, server) = source(200).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    opts.log_changes = true;
    let sync = LibrarySync::spawn(opts);
    assert!(
        wait_until(Duration::from_secs(60), || newest_seq(&db) > 600).await,
        "the copy is logged"
    );
    let mut follower = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["changes", "--follow", "--db"])
        .arg(&db)
        .arg("--after")
        .arg(newest_seq(&db).to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            let _ = tx.send((json["seq"].as_i64().unwrap(), Instant::now()));
        }
    });
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let before = newest_seq(&db);
        model.apply_random_transactions(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        let committed = loop {
            if newest_seq(&db) > before {
                break Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "the sync committed the transaction"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let printed = loop {
            let (seq, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the follower prints within 10 s")
                .expect("the follower runs");
            if seq > before {
                break at;
            }
        };
        latencies.push(printed.saturating_duration_since(committed));
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = follower.kill();
    let _ = follower.wait();
    sync.stop().await.unwrap();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "changes --follow: commit → printed p50 {p50:?}, p99 {p99:?}, max {:?} (200 commits)",
        latencies.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?} over 50 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_pruned_entries_fails_with_advice_to_resync_and_later_ones_are_served() {
    let (_model, server) = source(100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.log_changes = true;
    opts.changes_retain = Retention::parse("10").unwrap();
    sync_until_caught_up(opts.clone()).await.unwrap();
    // Retention applies when a sync starts, and every 5 s while it runs.
    sync_until_caught_up(opts).await.unwrap();
    let changes = |after: &str| {
        Command::new(env!("CARGO_BIN_EXE_vtmirror"))
            .args(["changes", "--after", after, "--db"])
            .arg(&db)
            .output()
            .unwrap()
    };
    let pruned = changes("0");
    let err = String::from_utf8_lossy(&pruned.stderr);
    assert!(!pruned.status.success() && pruned.stdout.is_empty());
    assert!(err.contains("pruned") && err.contains("Resync"), "{err}");
    let newest = newest_seq(&db);
    let kept = changes(&(newest - 1).to_string());
    assert!(
        kept.status.success(),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&kept.stdout).lines().count(), 1);
}
