//! One source transaction far larger than any commit batch, on real Vitess (vttestserver,
//! keyspace `commerce`): `UPDATE big_tx SET …` of 100,000 rows of 1 KB, about 200 MB of row
//! images (before and after) in one binlog transaction. The mirror applies it in one SQLite
//! transaction (invariant 4) while holding only a bounded part of it in memory: the stream is
//! decoded and written response by response under one open SQLite transaction. A SIGKILL in
//! the middle leaves none of it; the resumed sync streams it again from the stored checkpoint
//! and applies it whole. A reader polling the mirror throughout sees 0 or every row updated,
//! never a part; the resumed sync's peak RSS stays under `PEAK_RSS_BOUND_MB`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::support::vitess::{
    assert_intact, assert_same, run_sql, sync_process, sync_until_caught_up, Cleanup, KillOnDrop,
};

/// Rows updated by the transaction; `VTMIRROR_BIG_TX_ROWS` measures larger ones (500,000:
/// about 1 GB of row images).
fn rows() -> i64 {
    (std::env::var("VTMIRROR_BIG_TX_ROWS").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
/// Bytes of `pad` per row.
const PAD: usize = 1000;
/// The resumed sync's peak RSS while it applies the whole transaction (measured: see
/// RELIABILITY.md "One transaction larger than memory allows").
const PEAK_RSS_BOUND_MB: u64 = 160;

fn flags() -> [&'static str; 4] {
    ["--tables", "big_tx", "--tablet-type", "primary"]
}

/// The mirror's rows already updated by the big transaction.
fn updated_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    conn.query_row("SELECT count(*) FROM big_tx WHERE v = 1", [], |r| r.get(0))
        .expect("the mirror answers")
}

/// Polls the mirror until `stop`; panics if it ever sees a part of the transaction.
fn watch_whole(db: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut looks = 0;
        while !stop.load(Ordering::Relaxed) {
            let seen = updated_rows(&db);
            assert!(
                seen == 0 || seen == rows(),
                "a reader saw {seen} of {} rows of one source transaction",
                rows()
            );
            looks += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        looks
    })
}

/// A `/proc/PID/status` memory figure (`VmHWM`, `VmRSS`) in MB; None once the process ended.
fn status_mb(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kb = kb
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb / 1024)
}

/// A process's peak resident set (VmHWM), in MB; None once it has ended.
fn peak_rss_mb(pid: u32) -> Option<u64> {
    status_mb(&pid.to_string(), "VmHWM")
}

/// vttestserver's vtcombo (vtgate and vttablets in one process): its current RSS in MB, for
/// the report (None when it is not found).
fn vtcombo_rss_mb() -> Option<u64> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "bin/vtcombo"])
        .output()
        .ok()?;
    let listed = String::from_utf8_lossy(&out.stdout);
    status_mb(listed.lines().next()?.trim(), "VmRSS")
}

fn seed(conn: &mut mysql::Conn) {
    run_sql(
        conn,
        &[
            "DROP TABLE IF EXISTS big_tx",
            "CREATE TABLE big_tx (id BIGINT NOT NULL PRIMARY KEY, v INT NOT NULL, pad VARBINARY(1100) NOT NULL)",
        ],
    );
    let ids: Vec<i64> = (1..=rows()).collect();
    for chunk in ids.chunks(1000) {
        let rows: Vec<String> = (chunk.iter())
            .map(|i| format!("({i}, 0, REPEAT('x', {PAD}))"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO big_tx (id, v, pad) VALUES {}",
            rows.join(", ")
        ))
        .expect("seeding big_tx");
    }
}

/// Every row updated in one source transaction: statements of 5,000 rows (vttablet refuses a
/// statement that changes more than 10,000) between BEGIN and COMMIT.
fn big_transaction(conn: &mut mysql::Conn) {
    let mut statements = vec!["BEGIN".to_string()];
    for first in (1..=rows()).step_by(5000) {
        statements.push(format!(
            "UPDATE big_tx SET v = 1, pad = REPEAT('y', {PAD}) WHERE id BETWEEN {first} AND {}",
            first + 4999
        ));
    }
    statements.push("COMMIT".into());
    for sql in &statements {
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("the big transaction, {sql}: {e}"));
    }
}

#[test]
fn a_transaction_of_200_mb_applies_whole_in_bounded_memory_and_resumes_exactly_after_a_sigkill() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("commerce", "DROP TABLE IF EXISTS big_tx");
    let mut conn = c.sql("commerce");
    seed(&mut conn);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let (ok, log) = sync_until_caught_up(&c.grpc, "commerce", &db, &flags());
    assert!(ok, "the copy: {log}");
    assert_eq!(updated_rows(&db), 0);

    let mut sync = KillOnDrop(sync_process(&c.grpc, "commerce", &db, &flags()));
    sync.wait_for_phase(&db, "replication");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_whole(db.clone(), Arc::clone(&stop));
    let started = Instant::now();
    big_transaction(&mut conn);
    let written = started.elapsed();
    // The binlog holds the transaction from its commit on: the sync is receiving it now.
    std::thread::sleep(Duration::from_millis(200));
    sync.sigkill("while the big transaction streams");
    let at_kill = updated_rows(&db);
    assert_intact(&db, "after the SIGKILL");
    assert_eq!(
        at_kill, 0,
        "the SIGKILL came after the mirror had applied the transaction (the test must kill it mid-way)"
    );

    let mut resumed = KillOnDrop(sync_process(
        &c.grpc,
        "commerce",
        &db,
        &[
            "--tables",
            "big_tx",
            "--tablet-type",
            "primary",
            "--exit-when-caught-up",
        ],
    ));
    let (mut peak, resume_started) = (0, Instant::now());
    let vtcombo_before = vtcombo_rss_mb();
    let mut vtcombo_peak = vtcombo_before.unwrap_or(0);
    let status = loop {
        if let Some(mb) = peak_rss_mb(resumed.0.id()) {
            peak = peak.max(mb);
        }
        vtcombo_peak = vtcombo_peak.max(vtcombo_rss_mb().unwrap_or(0));
        if let Some(status) = resumed.0.try_wait().expect("waitable") {
            break status;
        }
        assert!(
            resume_started.elapsed() < Duration::from_secs(300),
            "no catch-up in 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    let looks = watcher
        .join()
        .expect("the reader never saw a part of the transaction");
    assert!(status.success(), "the resumed sync failed: {status}");
    assert_eq!(updated_rows(&db), rows());
    assert_eq!(assert_same(&mut conn, &db, "big_tx", 1), rows() as usize);
    println!(
        "big transaction: {} rows × {PAD} B updated in {:.1} s at the source; resumed sync \
         applied it whole in {:.1} s, peak RSS {peak} MB (bound {PEAK_RSS_BOUND_MB} MB); the \
         reader looked {looks} times; vtcombo RSS {vtcombo_before:?} → peak {vtcombo_peak} MB",
        rows(),
        written.as_secs_f64(),
        resume_started.elapsed().as_secs_f64()
    );
    assert!(peak > 0, "the resumed sync's memory was never read");
    assert!(
        peak < PEAK_RSS_BOUND_MB,
        "peak RSS {peak} MB while applying one 200 MB transaction (bound {PEAK_RSS_BOUND_MB} MB)"
    );
}
