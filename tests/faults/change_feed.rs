//! The change feed, exactly once through SIGKILLs: `vtmirror sync --changes` (the real
//! binary) and a consumer that stores each entry's `seq` with its effect are both killed at
//! seeded random moments and restarted, while the source keeps writing (copy, catch-up and
//! replication). At the end the consumer's tables equal the mirror's, and the mirror equals
//! the source; the consumer itself fails if an entry is ever skipped or repeated.
//! Tunable: VTMIRROR_FEED_KILLS (default 16), VTMIRROR_CRASH_SEED.

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::Duration;

use crate::support::feed_consumer::{self, CONSUMER_ENV};
use crate::support::sync_runner::{caught_up, mirror_report, wait_until, BinarySync};
use crate::support::*;

/// Not a test of its own: the consumer child (`feed_consumer::spawn`) runs as this test.
#[test]
fn consumer_process() {
    if let Ok(spec) = std::env::var(CONSUMER_ENV) {
        feed_consumer::run(&spec);
    }
}

const CONSUMER_TEST: &str = "change_feed::consumer_process";

fn kill(child: &mut Child, what: &str) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!("the {what} exited on its own ({status})");
    }
    let _ = child.kill();
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the {what} died of SIGKILL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_and_the_sync_killed_at_random_end_with_exactly_the_mirrors_tables() {
    let seed: u64 = std::env::var("VTMIRROR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    let kills: u64 = std::env::var("VTMIRROR_FEED_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    eprintln!("change feed kills: {kills}, seed {seed} (VTMIRROR_CRASH_SEED)");
    let mut random = seed;
    let mut next = move |lo: u64, hi: u64| {
        random = random
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (random >> 33) % (hi - lo)
    };
    let (model, server) = source_with_batch(3000, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let (mirror, consumer) = (dir.path().join("m.db"), dir.path().join("consumer.db"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writes = vtmirror::sim::spawn_live_writes(model.clone(), 150.0, stop_rx);
    let sync_flags = ["--changes", "--heartbeat", "1"];
    let mut sync = BinarySync::spawn(&server.endpoint(), &mirror, &sync_flags);
    let started = wait_until(Duration::from_secs(30), || mirror.exists()).await;
    assert!(started, "the sync created its file");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reader = feed_consumer::spawn(CONSUMER_TEST, &mirror, &consumer);
    for kill_number in 0..kills {
        tokio::time::sleep(Duration::from_millis(next(150, 1200))).await;
        if kill_number % 2 == 0 {
            sync.assert_running("before its SIGKILL");
            drop(sync);
            sync = BinarySync::spawn(&server.endpoint(), &mirror, &sync_flags);
        } else {
            kill(&mut reader, "consumer");
            reader = feed_consumer::spawn(CONSUMER_TEST, &mirror, &consumer);
        }
    }
    let _ = stop_tx.send(true);
    writes.await.unwrap();
    let synced = wait_until(Duration::from_secs(120), || caught_up(&mirror, &model)).await;
    assert!(synced, "the sync caught up: {}", mirror_report(&mirror));
    let newest = || {
        rusqlite::Connection::open(&mirror)
            .and_then(|c| {
                c.query_row("SELECT max(seq) FROM _vtmirror_changes", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(-1)
    };
    let consumed = wait_until(Duration::from_secs(120), || {
        feed_consumer::stored_seq(&consumer) == newest()
    })
    .await;
    assert!(
        consumed,
        "the consumer reached the newest entry {} (at {})",
        newest(),
        feed_consumer::stored_seq(&consumer)
    );
    kill(&mut reader, "consumer");
    sync.assert_running("at the end");
    drop(sync);
    let mirrored = feed_consumer::tables(&mirror);
    assert_eq!(mirrored.len(), 3, "the mirror holds the source's tables");
    assert!(mirrored.iter().all(|(_, rows)| !rows.is_empty()));
    assert_eq!(
        feed_consumer::tables(&consumer),
        mirrored,
        "the feed replayed equals the mirror"
    );
    assert_mirror_equals_source(&mirror, &model);
}
