//! The mirror file when it cannot be used, through the real binary: damaged, truncated or
//! foreign files, another keyspace or filter, a newer metadata version, a read-only file or
//! directory. Each is refused: one `vtmirror: …` line with a hint, exit code 1, the file's
//! bytes unchanged (damage met only while writing stops the sync at once instead).
//! The running-sync faults (lock, second sync, full disk, long reader) are in
//! `mirror_file_contention.rs`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use vtmirror::sim::{SharedModel, SimVtgate};

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
async fn a_mirror_of_another_keyspace_or_with_tables_left_out_is_refused_and_left_unchanged() {
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
        &["accounts, corder", "no longer selects", "--drop-unselected"],
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

/// Root ignores file modes: as root, the sync under test runs as `nobody` on files it owns.
fn unprivileged(cmd: &mut Command) -> &mut Command {
    if running_as_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

const NOBODY: u32 = 65534;

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

/// A caught-up mirror in its own directory that an unprivileged sync can reach.
async fn mirror_in_own_directory(dir: &Path) -> (Arc<SharedModel>, SimVtgate, PathBuf, PathBuf) {
    set_mode(dir, 0o755);
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let (model, server, db) = synced_mirror(&home, 300).await;
    (model, server, home, db)
}

fn run_unprivileged(endpoint: &str, db: &Path) -> Output {
    let mut cmd = sync_command(endpoint, db, &["--exit-when-caught-up"]);
    finish_within(
        unprivileged(&mut cmd).spawn().unwrap(),
        Duration::from_secs(30),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mirror_file_is_refused_with_a_hint_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, home, db) = mirror_in_own_directory(dir.path()).await;
    model.apply_random_transactions(20);
    set_mode(&home, 0o700);
    set_mode(&vtmirror::mirror::store::lock_path(&db), 0o600);
    set_mode(&db, 0o400);
    let before = file_bytes(&db);
    let endpoint = server.endpoint();
    let (out, after) =
        tokio::task::spawn_blocking(move || (run_unprivileged(&endpoint, &db), file_bytes(&db)))
            .await
            .unwrap();
    assert_refused(&out, &["read-only", "not writable"]);
    assert!(
        after == before,
        "the refused file is byte for byte unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_in_a_read_only_directory_is_refused_with_a_hint_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (model, server, home, db) = mirror_in_own_directory(dir.path()).await;
    model.apply_random_transactions(20);
    let lock = vtmirror::mirror::store::lock_path(&db);
    set_mode(&db, 0o600);
    set_mode(&lock, 0o600);
    set_mode(&home, 0o500);
    let before = file_bytes(&db);
    let endpoint = server.endpoint();
    // With the lock file left by an earlier sync (SQLite cannot create FILE-wal), then without
    // one (vtmirror cannot create FILE.sync-lock).
    let (with_lock, without_lock, after) = tokio::task::spawn_blocking(move || {
        let with_lock = run_unprivileged(&endpoint, &db);
        std::fs::remove_file(&lock).unwrap();
        let without_lock = run_unprivileged(&endpoint, &db);
        (with_lock, without_lock, file_bytes(&db))
    })
    .await
    .unwrap();
    assert_refused(&with_lock, &["not writable", "-wal"]);
    assert_refused(&without_lock, &["sync-lock", "not writable"]);
    assert!(
        after == before,
        "the refused file is byte for byte unchanged"
    );
}
