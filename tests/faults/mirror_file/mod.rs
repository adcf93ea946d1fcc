//! Helpers of the mirror-file fault tests: run the real binary on a mirror, check refusals,
//! wait for a running sync.
#![allow(dead_code)]

mod contention;
mod refusals;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use vtmirror::sim::{SharedModel, SimVtgate};

pub fn sync_command(endpoint: &str, db: &Path, extra: &[&str]) -> Command {
    let keyspace: &[&str] = if extra.contains(&"--keyspace") {
        &[]
    } else {
        &["--keyspace", "commerce"]
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    cmd.args(["sync", "--vtgate", endpoint])
        .args(keyspace)
        .args([
            "--heartbeat",
            "1",
            "--max-backoff",
            "0.5",
            "--caught-up-idle",
            "1.5",
        ])
        .arg("--db")
        .arg(db)
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("VTMIRROR_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for `child` at most `limit`; a sync still running then is a test failure.
pub fn finish_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the sync did not end within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

pub fn run_sync(endpoint: &str, db: &Path, extra: &[&str]) -> Output {
    let child = sync_command(endpoint, db, extra)
        .spawn()
        .expect("binary runs");
    finish_within(child, Duration::from_secs(30))
}

/// A refusal: exit code 1 and exactly one `vtmirror: …` line containing every needle.
pub fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("vtmirror: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

/// The mirror file's bytes plus its WAL's, if any.
pub fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(with_suffix(db, "-wal")) {
        bytes.extend(wal);
    }
    bytes
}

pub fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A caught-up mirror of a populated source, its WAL folded into the file.
pub async fn synced_mirror(dir: &Path, rows: usize) -> (Arc<SharedModel>, SimVtgate, PathBuf) {
    let (model, server) = source(rows).await;
    let db = dir.join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .expect("first sync");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    (model, server, db)
}

/// A sync that keeps running (no --exit-when-caught-up), logging to `log`.
pub fn spawn_running_sync(endpoint: &str, db: &Path, log: &Path) -> Child {
    let mut cmd = sync_command(endpoint, db, &[]);
    cmd.stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().expect("binary runs")
}

pub async fn wait_for_log(log: &Path, needle: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits until the stored checkpoint is the source's position.
pub async fn wait_caught_up(db: &Path, model: &SharedModel, limit: Duration) {
    let deadline = Instant::now() + limit;
    let want = positions(&model.positions());
    loop {
        let stored = std::panic::catch_unwind(|| positions(&stored_checkpoint(db)));
        if stored.is_ok_and(|s| s == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not catch up in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM (a clean stop) and the exit status.
pub fn terminate(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap()
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
