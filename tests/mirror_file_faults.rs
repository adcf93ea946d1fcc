//! The mirror file under faults, through the real binary: damaged, truncated or foreign files,
//! a newer metadata version, read-only file or directory, a full disk, a lock held past the
//! busy timeout, a long reader, two syncs on one file. Each outcome is either a refusal (one
//! `vtmirror: …` line with a hint, exit code 1, file bytes unchanged) or a retry that
//! converges (mirror equals source, integrity ok).

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use vtmirror::sim::{SharedModel, SimVtgate};

fn sync_command(endpoint: &str, db: &Path, extra: &[&str]) -> Command {
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
fn finish_within(mut child: Child, limit: Duration) -> Output {
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

fn run_sync(endpoint: &str, db: &Path, extra: &[&str]) -> Output {
    let child = sync_command(endpoint, db, extra)
        .spawn()
        .expect("binary runs");
    finish_within(child, Duration::from_secs(30))
}

/// A refusal: exit code 1 and exactly one `vtmirror: …` line containing every needle.
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("vtmirror: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

/// The mirror file's bytes plus its WAL's, if any.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(with_suffix(db, "-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A caught-up mirror of a populated source, its WAL folded into the file.
async fn synced_mirror(dir: &Path, rows: usize) -> (Arc<SharedModel>, SimVtgate, PathBuf) {
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

/// Runs the sync on a file damaged by `damage`; it must refuse and leave the bytes as they were.
async fn assert_damage_refused(damage: impl FnOnce(&Path), needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, db) = synced_mirror(dir.path(), 2000).await;
    damage(&db);
    model.apply_random_transactions(50);
    let before = file_bytes(&db);
    let endpoint = server.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let out = run_sync(&endpoint, &db, &["--exit-when-caught-up"]);
        (out, file_bytes(&db))
    })
    .await
    .unwrap();
    assert_refused(&out.0, needles);
    assert!(
        out.1 == before,
        "the refused file is byte for byte unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_mirror_is_refused_as_damaged_and_left_unchanged() {
    let truncate = |db: &Path| {
        let len = std::fs::metadata(db).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
        file.set_len(len / 4096 * 3 / 5 * 4096).unwrap();
    };
    assert_damage_refused(truncate, &["malformed", "integrity_check"]).await;
}

/// Garbage over the middle third of the file's pages (xorshift bytes).
fn garbage_middle_pages(db: &Path) {
    let mut bytes = std::fs::read(db).unwrap();
    let pages = bytes.len() / 4096;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for b in &mut bytes[pages / 3 * 4096..pages * 2 / 3 * 4096] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(db, bytes).unwrap();
}

/// Damage inside mirrored tables is not looked for at open (that would read the whole file);
/// the writer meets it and the sync stops at once, definite, with the hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_pages_in_the_middle_of_a_mirror_stop_the_sync_with_a_hint_when_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, db) = synced_mirror(dir.path(), 2000).await;
    garbage_middle_pages(&db);
    model.apply_random_transactions(200);
    let endpoint = server.endpoint();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run_sync(&endpoint, &db, &[]))
        .await
        .unwrap();
    assert_refused(&out, &["malformed", "integrity_check"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a definite error: no retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_sqlite_is_refused_and_left_unchanged() {
    let overwrite = |db: &Path| {
        let text: Vec<u8> = (0..64 * 1024).map(|i| b"not a database "[i % 15]).collect();
        std::fs::write(db, text).unwrap();
    };
    assert_damage_refused(overwrite, &["not a database", "another --db"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_of_another_keyspace_or_filter_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, server, db) = synced_mirror(dir.path(), 200).await;
    let before = file_bytes(&db);
    let endpoint = server.endpoint();
    let outs = tokio::task::spawn_blocking(move || {
        let filter = run_sync(&endpoint, &db, &["--tables", "customer"]);
        let keyspace = run_sync(&endpoint, &db, &["--keyspace", "other"]);
        (filter, keyspace, file_bytes(&db))
    })
    .await
    .unwrap();
    assert_refused(
        &outs.0,
        &["mirrors keyspace commerce", "customer", "another --db"],
    );
    assert_refused(
        &outs.1,
        &["mirrors keyspace commerce", "asks for keyspace other"],
    );
    assert!(
        outs.2 == before,
        "the refused file is byte for byte unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_from_a_newer_vtmirror_is_refused_and_left_unchanged() {
    let newer = |db: &Path| {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    };
    assert_damage_refused(newer, &["newer vtmirror", "metadata version 99"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_page_is_refused_at_open_and_left_unchanged() {
    let damage = |db: &Path| {
        let page: i64 = rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = '_vtmirror_checkpoint'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut bytes = std::fs::read(db).unwrap();
        let start = (page as usize - 1) * 4096;
        bytes[start + 8..start + 4096].fill(0xA5);
        std::fs::write(db, bytes).unwrap();
    };
    assert_damage_refused(
        damage,
        &["is damaged", "_vtmirror_checkpoint", "integrity_check"],
    )
    .await;
}
