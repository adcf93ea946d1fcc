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

/// Root ignores file modes: as root, the sync under test runs as `nobody` on files it owns.
fn unprivileged(cmd: &mut Command) -> &mut Command {
    if running_as_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

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
    set_mode(&vtmirror::store::lock_path(&db), 0o600);
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
    let lock = vtmirror::store::lock_path(&db);
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

/// A sync that keeps running (no --exit-when-caught-up), logging to `log`.
fn spawn_running_sync(endpoint: &str, db: &Path, log: &Path) -> Child {
    let mut cmd = sync_command(endpoint, db, &[]);
    cmd.stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().expect("binary runs")
}

async fn wait_for_log(log: &Path, needle: &str, limit: Duration) -> bool {
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
async fn wait_caught_up(db: &Path, model: &SharedModel, limit: Duration) {
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
fn terminate(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap()
}

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
        vtmirror::status::read(&db, 0).map(|s| (
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
