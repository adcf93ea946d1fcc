//! Live counters shared between the writer thread and whoever reports progress (the progress
//! display, `/metrics`, `/healthz`, `/readyz`). The writer and the sync only store atomics
//! here, once per commit or per queued message, never per row.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::output::metrics::Metrics;

/// What a sync is doing, as `/metrics` (`vtmirror_state`) and the health endpoints show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum SyncState {
    /// Opening the file, checking the source, before the stream starts.
    #[default]
    Starting = 0,
    /// Streaming, the copy not finished yet.
    Copying = 1,
    /// Streaming, the copy finished.
    Replicating = 2,
    /// Waiting to reconnect after a transient error.
    Reconnecting = 3,
    /// Ended cleanly (caught up or asked to stop).
    Stopped = 4,
    /// Ended on a definite error.
    Failed = 5,
}

impl SyncState {
    pub const ALL: [SyncState; 6] = [
        SyncState::Starting,
        SyncState::Copying,
        SyncState::Replicating,
        SyncState::Reconnecting,
        SyncState::Stopped,
        SyncState::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncState::Starting => "starting",
            SyncState::Copying => "copying",
            SyncState::Replicating => "replicating",
            SyncState::Reconnecting => "reconnecting",
            SyncState::Stopped => "stopped",
            SyncState::Failed => "failed",
        }
    }

    fn from_u8(value: u8) -> SyncState {
        SyncState::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or_default()
    }
}

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
    /// Tables whose own copy (added or re-copied, `mirror::table_copy`) has not finished, as
    /// `table (reason)`: readers see them absent or frozen where the copy began. Set by the
    /// writer when it loads the file and after copies finish, never per commit.
    table_copies: Mutex<Vec<String>>,
    state: AtomicU8,
    /// The sync has opened the file and checked its tables against the source: readers and
    /// waits may open it (`library::SyncBuilder::start` returns then).
    file_ready: AtomicBool,
    /// Monotonic ms (+1) at which the writer took the message it is applying; 0 while it
    /// waits for the next one.
    writer_busy_since: AtomicI64,
    /// Counters and histograms of the Prometheus endpoint, fed by the writer and the sync.
    pub metrics: Metrics,
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
    pub state: SyncState,
    /// How long the writer has been applying its current message (None: waiting for one).
    pub writer_busy_ms: Option<i64>,
}

impl Snapshot {
    /// Seconds behind the source at `now` (s): now minus the newest committed event or
    /// heartbeat, once the copy finished; `vtmirror status` computes the same from the file.
    pub fn lag_seconds(&self, now: i64) -> Option<i64> {
        let newest = self.event_time.max(self.heartbeat_time);
        (newest > 0 && self.copy_completed).then(|| (now - newest).max(0))
    }
}

/// Milliseconds on a monotonic clock (since its first reading in this process).
pub fn monotonic_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
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

    /// What the file held when the writer started: whether the copy finished, and the binlog
    /// time of its last transaction.
    pub fn stored(&self, copy_completed: bool, event_time: i64) {
        self.copy_completed.store(copy_completed, Ordering::Relaxed);
        self.event_time.fetch_max(event_time, Ordering::Relaxed);
    }

    /// The unfinished table copies, as the writer read them from the file.
    pub fn set_table_copies(&self, copies: Vec<String>) {
        *self.table_copies.lock().unwrap_or_else(|e| e.into_inner()) = copies;
    }

    /// The unfinished table copies (`table (reason)`), empty when none.
    pub fn table_copies(&self) -> Vec<String> {
        (self.table_copies.lock().unwrap_or_else(|e| e.into_inner())).clone()
    }

    pub fn mark_file_ready(&self) {
        self.file_ready.store(true, Ordering::Release);
    }

    pub fn file_ready(&self) -> bool {
        self.file_ready.load(Ordering::Acquire)
    }

    pub fn set_state(&self, state: SyncState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The writer took a message (`true`) or finished it and waits for the next (`false`).
    pub fn writer_busy(&self, busy: bool) {
        let since = if busy { monotonic_ms() + 1 } else { 0 };
        self.writer_busy_since.store(since, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let busy_since = self.writer_busy_since.load(Ordering::Relaxed);
        Snapshot {
            transactions: self.transactions.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            copied_rows: self.copied_rows.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            event_time: self.event_time.load(Ordering::Relaxed),
            committed_at_ms: self.committed_at_ms.load(Ordering::Relaxed),
            heartbeat_time: self.heartbeat_time.load(Ordering::Relaxed),
            copy_completed: self.copy_completed.load(Ordering::Relaxed),
            state: SyncState::from_u8(self.state.load(Ordering::Relaxed)),
            writer_busy_ms: (busy_since > 0).then(|| (monotonic_ms() + 1 - busy_since).max(0)),
        }
    }
}
