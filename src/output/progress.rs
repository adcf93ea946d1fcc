//! Live counters shared between the writer thread and whoever reports progress.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default, Debug)]
pub struct Progress {
    transactions: AtomicU64,
    rows: AtomicU64,
    copied_rows: AtomicU64,
    commits: AtomicU64,
    /// Binlog time (s) of the newest committed transaction.
    event_time: AtomicI64,
    /// Wall clock (ms) of the newest commit.
    committed_at_ms: AtomicI64,
    /// vtgate clock (s) of the newest heartbeat.
    heartbeat_time: AtomicI64,
    copy_completed: AtomicBool,
}

/// A consistent-enough reading of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub transactions: u64,
    pub rows: u64,
    pub copied_rows: u64,
    pub commits: u64,
    pub event_time: i64,
    pub committed_at_ms: i64,
    pub heartbeat_time: i64,
    pub copy_completed: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Progress {
    pub fn committed(&self, txns: i64, rows: usize, event_time: i64, copied: i64, done: bool) {
        self.transactions
            .fetch_add(txns.max(0) as u64, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.copied_rows
            .fetch_add(copied.max(0) as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.event_time.fetch_max(event_time, Ordering::Relaxed);
        self.committed_at_ms.store(now_ms(), Ordering::Relaxed);
        self.copy_completed.store(done, Ordering::Relaxed);
    }

    pub fn heartbeat(&self, time: i64) {
        self.heartbeat_time.fetch_max(time, Ordering::Relaxed);
    }

    pub fn set_copy_completed(&self, done: bool) {
        self.copy_completed.store(done, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            transactions: self.transactions.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            copied_rows: self.copied_rows.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            event_time: self.event_time.load(Ordering::Relaxed),
            committed_at_ms: self.committed_at_ms.load(Ordering::Relaxed),
            heartbeat_time: self.heartbeat_time.load(Ordering::Relaxed),
            copy_completed: self.copy_completed.load(Ordering::Relaxed),
        }
    }
}
