//! The mirror file shared with others while a sync runs, through the real binary: a write
//! lock held past the busy timeout, a second sync, a full disk mid-copy, a long reader. Each
//! either refuses clearly or retries and converges (mirror equals source, integrity ok).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::support::*;
use vtmirror::sim::SharedModel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_is_waited_out_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, db) = synced_mirror(dir.path(), 2000).await;
    let log = dir.path().join("sync.log");
    let sync = spawn_running_sync(&server.endpoint(), &db, &log);
    model.apply_random_transactions(50);
    wait_caught_up(&db, &model, Duration::from_secs(20)).await;
    // Another process's write transaction, held 8 s (the busy timeout is 5 s).
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..16 {
        model.apply_random_transactions(20);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let held = positions(&stored_checkpoint(&db));
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(
        wait_for_log(&log, "database is locked", Duration::from_secs(1)).await,
        "the sync met the lock and said so"
    );
    model.apply_random_transactions(50);
    wait_caught_up(&db, &model, Duration::from_secs(30)).await;
    assert_ne!(
        held,
        positions(&stored_checkpoint(&db)),
        "the sync moved on"
    );
    let status = terminate(sync);
    assert!(
        status.success(),
        "the sync retried instead of exiting: {status}"
    );
    assert_mirror_equals_source(&db, &model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_on_the_same_file_is_refused_and_the_first_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, db) = synced_mirror(dir.path(), 2000).await;
    let log = dir.path().join("sync.log");
    let first = spawn_running_sync(&server.endpoint(), &db, &log);
    model.apply_random_transactions(50);
    wait_caught_up(&db, &model, Duration::from_secs(20)).await;
    let (endpoint, second_db) = (server.endpoint(), db.clone());
    let second = tokio::task::spawn_blocking(move || {
        run_sync(&endpoint, &second_db, &["--exit-when-caught-up"])
    })
    .await
    .unwrap();
    assert_refused(&second, &["already writing", "stop the other sync first"]);
    model.apply_random_transactions(100);
    wait_caught_up(&db, &model, Duration::from_secs(20)).await;
    let status = terminate(first);
    assert!(status.success(), "the first sync ran on: {status}");
    assert_mirror_equals_source(&db, &model);
}

/// Unmounts the small filesystem however the test ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mounted> {
    if !running_as_root() {
        assert!(
            std::env::var_os("VTMIRROR_ALLOW_SKIP").is_some(),
            "the disk-full test mounts a tmpfs and needs root; run as root, or set \
             VTMIRROR_ALLOW_SKIP=1 to skip it"
        );
        println!("skipped: mounting a tmpfs needs root (VTMIRROR_ALLOW_SKIP is set)");
        return None;
    }
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(at)
        .status()
        .expect("mount runs");
    assert!(
        status.success(),
        "mounting a {size} tmpfs at {}",
        at.display()
    );
    Some(Mounted(at.to_path_buf()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_copy_is_retried_and_converges_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = mount_tmpfs(dir.path(), "2m") else {
        return;
    };
    // 90,000 rows: about 9 MB of mirror, so the copy fills 2 MiB early.
    let (model, server) = source(30_000).await;
    let db = dir.path().join("m.db");
    let log = std::env::temp_dir().join(format!("vtmirror-full-{}.log", std::process::id()));
    let mut sync = sync_command(&server.endpoint(), &db, &["--exit-when-caught-up"]);
    let child = sync
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let met = wait_for_log(&log, "is full", Duration::from_secs(60)).await;
    let mut child = child;
    assert!(
        met,
        "the copy filled the 2 MiB filesystem (sync: {:?}, {} rows copied, {:?})",
        child.try_wait(),
        copied_rows(&db),
        vtmirror::commands::status::read(&db, 0).map(|s| (
            s.state,
            s.last_error,
            s.copy_completed,
            s.file_bytes,
            s.wal_bytes
        ))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync keeps retrying"
    );
    let copied_while_full = copied_rows(&db);
    let grown = Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&small.0)
        .status()
        .unwrap();
    assert!(grown.success());
    model.apply_random_transactions(50);
    let out = tokio::task::spawn_blocking(move || finish_within(child, Duration::from_secs(90)))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_file(&log).ok();
    assert!(out.status.success(), "{text}");
    let rows = assert_mirror_equals_source(&db, &model);
    println!(
        "disk full: {copied_while_full} rows copied when the 2 MiB filesystem filled; \
         {rows} rows equal the source after it grew"
    );
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(with_suffix(db, "-wal")).map_or(0, |m| m.len())
}

/// Writes `per_tick` source transactions every 50 ms for `for_how_long`; returns the largest
/// WAL size seen.
async fn heavy_writes(
    model: &SharedModel,
    db: &Path,
    per_tick: usize,
    for_how_long: Duration,
) -> u64 {
    let until = Instant::now() + for_how_long;
    let mut peak = 0;
    while Instant::now() < until {
        model.apply_random_transactions(per_tick);
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(wal_bytes(db));
    }
    peak
}

/// A reader holding one read transaction keeps SQLite from recycling the WAL, which grows
/// while it lasts; once it ends, the next checkpoint resets the WAL and `journal_size_limit`
/// truncates the file. Figures are printed for RELIABILITY.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reader_grows_the_wal_which_shrinks_after_it_ends() {
    let reader_secs = std::env::var("VTMIRROR_READER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let (model, server, db) = synced_mirror(dir.path(), 2000).await;
    let log = dir.path().join("sync.log");
    let sync = spawn_running_sync(&server.endpoint(), &db, &log);
    let steady = heavy_writes(&model, &db, 40, Duration::from_secs(5)).await;
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM customer", [], |r| r.get(0))
        .unwrap();
    let with_reader = heavy_writes(&model, &db, 40, Duration::from_secs(reader_secs)).await;
    let again: i64 = reader
        .query_row("SELECT count(*) FROM customer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, again, "the reader kept its snapshot");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let started = Instant::now();
    let mut after = wal_bytes(&db);
    while after >= with_reader && started.elapsed() < Duration::from_secs(30) {
        model.apply_random_transactions(40);
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = wal_bytes(&db);
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "WAL: peak {:.1} MiB in 5 s without a reader; {:.1} MiB after a {reader_secs} s reader \
         during the same writes; {:.1} MiB {:.1} s after the reader ended",
        mib(steady),
        mib(with_reader),
        mib(after),
        started.elapsed().as_secs_f64()
    );
    assert!(with_reader > steady, "the reader made the WAL grow");
    assert!(
        after <= 64 << 20,
        "the WAL shrank to journal_size_limit after the reader ended"
    );
    wait_caught_up(&db, &model, Duration::from_secs(30)).await;
    assert!(terminate(sync).success());
    assert_mirror_equals_source(&db, &model);
}
