//! SQLite's WAL checkpoints (copying committed pages from the `-wal` file back into the
//! mirror file; not to be confused with our checkpoint, the stored VGtid) on a thread of their
//! own, so that the writer never waits for them.
//!
//! Why: a WAL checkpoint writes every page changed since the last one into the main file and
//! fsyncs it. Run by the writer (SQLite's auto-checkpoint), each one stopped the stream for as
//! long as that took: on our CI VM a 32 MiB checkpoint took 0.3–0.6 s, which was the whole
//! lag p99 and a good part of the replication drain time (BENCHMARKS.md, "WAL checkpoints").
//!
//! How: after each commit the writer pokes this thread; at most every [`PASS_INTERVAL`] it runs
//! a PASSIVE checkpoint on its own connection. PASSIVE never blocks the writer: SQLite lets a
//! checkpointer copy frames while a writer appends new ones (they take different locks), and a
//! checkpoint that finds another one running returns at once. The WAL starts over from its
//! beginning only when the writer begins a transaction while every frame is copied back; a
//! writer that never pauses could make it grow without end, so the writer keeps SQLite's
//! auto-checkpoint as a backstop at [`WRITER_BACKSTOP_PAGES`]: by then this thread has copied
//! all but the last pass's frames, so the writer's own checkpoint is short.
//!
//! Correctness does not depend on this thread: a checkpoint only moves committed pages, SQLite
//! makes it safe against crashes and power loss, and a failed pass leaves the WAL as it was
//! (the next pass or the writer's backstop copies it). Mirror content is still written only by
//! the writer (invariant 5).

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::Connection;

/// The shortest time between two passes: each pass ends with an fsync of the mirror file, so
/// passes are not run per commit; short enough that the writer's backstop finds little left.
pub const PASS_INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own auto-checkpoint, in pages of WAL (64 MiB of 4 KiB pages).
pub const WRITER_BACKSTOP_PAGES: u32 = 16_384;

/// The background WAL checkpoint thread of one mirror; stops (and is joined) when dropped.
pub struct WalCheckpoints {
    poke: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalCheckpoints {
    /// Starts the thread on a connection of its own to `db`, which must already be in WAL mode,
    /// through SQLite VFS `vfs` (the default one when None).
    pub fn start(
        db: &Path,
        flags: rusqlite::OpenFlags,
        vfs: Option<&str>,
    ) -> Result<WalCheckpoints> {
        let conn = match vfs {
            None => Connection::open_with_flags(db, flags),
            Some(vfs) => Connection::open_with_flags_and_vfs(db, flags, vfs),
        }
        .with_context(|| format!("opening {} for WAL checkpoints", db.display()))?;
        // A pass that finds the writer's backstop checkpoint running returns SQLITE_BUSY at
        // once (PASSIVE never waits), so no busy timeout is needed; none is set so that
        // closing never waits either.
        let (poke, poked) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoints".into())
            .spawn(move || run(conn, poked))
            .context("starting the WAL checkpoint thread")?;
        Ok(WalCheckpoints {
            poke: Some(poke),
            thread: Some(thread),
        })
    }

    /// A commit happened: a pass is due within [`PASS_INTERVAL`]. Never blocks.
    pub fn committed(&self) {
        if let Some(poke) = &self.poke {
            // Full: a pass is already due; the pokes coalesce.
            if let Err(TrySendError::Disconnected(())) = poke.try_send(()) {
                tracing::debug!("the WAL checkpoint thread has stopped");
            }
        }
    }
}

impl Drop for WalCheckpoints {
    fn drop(&mut self) {
        self.poke = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for pokes; runs a pass at most every `PASS_INTERVAL`; ends when the sender is gone.
fn run(conn: Connection, poked: mpsc::Receiver<()>) {
    let mut last_pass = Instant::now() - PASS_INTERVAL;
    let mut warned = false;
    while poked.recv().is_ok() {
        // Wait until due; pokes meanwhile only say again that a pass is due. Leave at once
        // when the mirror closes.
        let due = last_pass + PASS_INTERVAL;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if let Err(RecvTimeoutError::Disconnected) = poked.recv_timeout(left) {
                return;
            }
        }
        last_pass = Instant::now();
        if let Err(e) = pass(&conn) {
            // Nothing to return to: the writer's own checkpoint (the backstop) and the next
            // pass retry; one warning per mirror, not one per pass.
            if !warned {
                tracing::warn!(error = %format!("{e:#}"), "a background WAL checkpoint failed; the writer's own checkpoints take over");
                warned = true;
            }
        }
    }
}

/// One PASSIVE checkpoint. SQLITE_BUSY (another checkpoint is running) is not an error.
fn pass(conn: &Connection) -> Result<()> {
    // The row (busy, WAL frames, frames copied back) only informs; a busy pass is retried.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .context("running a WAL checkpoint of the mirror")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;

    /// Rows of `t` in the mirror file alone, without its WAL: what WAL checkpoints copied back.
    fn rows_in_main_file(db: &Path, scratch: &Path) -> i64 {
        std::fs::copy(db, scratch).unwrap();
        let _ = std::fs::remove_file(scratch.with_extension("db-wal"));
        let conn = Connection::open(scratch).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap_or(0)
    }

    #[test]
    fn commits_reach_the_mirror_file_while_the_writer_never_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (db, scratch) = (dir.path().join("m.db"), dir.path().join("copy.db"));
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
            )
            .unwrap();
        let tx = writer.unchecked_transaction().unwrap();
        for i in 0..5000 {
            tx.execute("INSERT INTO t VALUES (?1, 'x')", [i]).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(
            rows_in_main_file(&db, &scratch),
            0,
            "committed rows start in the WAL only"
        );

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let wal = WalCheckpoints::start(&db, flags, None).unwrap();
        wal.committed();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rows_in_main_file(&db, &scratch) != 5000 {
            assert!(Instant::now() < deadline, "the WAL was never copied back");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(wal);
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 5000);
    }

    #[test]
    fn dropping_it_stops_the_thread_at_once_even_with_a_pass_due() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let writer = Connection::open(&db).unwrap();
        writer.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let wal = WalCheckpoints::start(&db, flags, None).unwrap();
        wal.committed();
        wal.committed();
        let started = Instant::now();
        drop(wal);
        assert!(started.elapsed() < PASS_INTERVAL * 5);
    }
}
