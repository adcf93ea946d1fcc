//! The one place that decides whether an error is transient (retry from the stored
//! checkpoint with capped, jittered backoff) or definite (stop, mirror untouched).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Definite,
}

/// vtrpc code 17 (a reparent or reshard in progress); not a standard gRPC code.
const CLUSTER_EVENT: i32 = 17;

/// Message fragments of errors that retrying can never fix.
const DEFINITE_TEXT: &[&str] = &[
    "purged", // binlogs gone: errno 1236 / 1789
    "errno 1236",
    "errno 1789",
    "not found in the", // shard provided in VGTID, X, not found in the K keyspace
    "gtidset mismatch",
    "unknown gtidset flavor",
    "is not present in the database",
    "unknown table",
    "code: invalid_argument", // a tablet error at a fixed position: it fails the same way again
    "failed to build table replication plan",
];

pub fn classify(err: &anyhow::Error) -> Class {
    for cause in err.chain() {
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return classify_status(status);
        }
        if let Some(sqlite) = cause.downcast_ref::<rusqlite::Error>() {
            return classify_sqlite(sqlite);
        }
        if cause.downcast_ref::<tonic::transport::Error>().is_some()
            || cause.downcast_ref::<std::io::Error>().is_some()
        {
            return Class::Transient;
        }
        if cause.downcast_ref::<Transient>().is_some() {
            return Class::Transient;
        }
    }
    Class::Definite
}

/// Marks an error of our own as worth a retry (stream stalled, ended early ...).
#[derive(Debug)]
pub struct Transient(pub String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

fn classify_status(status: &tonic::Status) -> Class {
    let text = status.message().to_lowercase();
    if DEFINITE_TEXT.iter().any(|t| text.contains(t)) {
        return Class::Definite;
    }
    if i32::from(status.code()) == CLUSTER_EVENT {
        return Class::Transient;
    }
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Unknown
        | Code::FailedPrecondition => Class::Transient,
        // Cluster codes 17/18 arrive as Unknown in tonic's mapping: handled above by number.
        _ => Class::Definite,
    }
}

fn classify_sqlite(err: &rusqlite::Error) -> Class {
    use rusqlite::ErrorCode::*;
    match err.sqlite_error_code() {
        // Another connection holds the lock past the busy timeout: it will let go.
        Some(DatabaseBusy) | Some(DatabaseLocked) => Class::Transient,
        // Disk full: the failed transaction rolled back with its checkpoint, so retrying from
        // the stored checkpoint is safe, and space is usually freed by someone else (as a
        // MySQL replica waits on a full disk); the retries log the error and its hint.
        Some(DiskFull) => Class::Transient,
        // A damaged or foreign file, or one we may not write: retrying cannot fix these.
        Some(DatabaseCorrupt) | Some(NotADatabase) | Some(ReadOnly) | Some(CannotOpen) => {
            Class::Definite
        }
        _ => Class::Definite,
    }
}

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9)
            ^ u64::from(std::process::id());
        Backoff {
            base,
            cap,
            attempt: 0,
            seed,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        // splitmix64 step: jitter only, no need for a cryptographic source.
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }
}

/// One line for a person: the error chain (gRPC statuses as `CODE: message`) and, for the
/// definite errors people meet, what to do about it.
pub fn render(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err
        .chain()
        .map(|cause| match cause.downcast_ref::<tonic::Status>() {
            Some(status) => format!("{:?}: {}", status.code(), status.message()),
            None => cause.to_string(),
        })
        .collect();
    let mut line = parts.join(": ");
    if let Some(hint) = hint(&line.to_lowercase()) {
        line.push_str(" — ");
        line.push_str(hint);
    }
    line
}

fn hint(text: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        ("not found in the", "the stored position names a shard that no longer exists (removed after a reshard); this mirror cannot resume: start a new mirror file to copy the keyspace again"),
        ("purged", "the source no longer has the binlogs after the stored position; this mirror cannot resume: start a new mirror file to copy the keyspace again"),
        ("gtidset mismatch", "the stored position is not on this source (another cluster, or restored from a backup); start a new mirror file"),
        ("unauthenticated", "vtgate refused the credentials"),
        ("already writing", "stop the other sync first, or use another --db file"),
        ("malformed", "the mirror file is damaged; see `sqlite3 FILE 'PRAGMA integrity_check'`, then start a new mirror file (or restore a `vtmirror snapshot`)"),
        ("not a database", "the file is not a SQLite database (or is encrypted); vtmirror does not touch it: use another --db path"),
        ("readonly", "the mirror file or its directory is not writable (SQLite creates FILE-wal and FILE-shm next to the file)"),
        ("unable to open", "the mirror file or its directory is not writable (SQLite creates FILE-wal and FILE-shm next to the file)"),
        ("permission denied", "the mirror file or its directory is not writable (vtmirror creates FILE.sync-lock next to the file)"),
        ("is full", "free space on the mirror's filesystem; the sync retries from its last commit"),
        ("database is locked", "another process holds a write transaction on the mirror; the sync retries until it ends"),
    ];
    HINTS
        .iter()
        .find(|(pattern, _)| text.contains(pattern))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, msg: &str) -> anyhow::Error {
        anyhow::Error::new(tonic::Status::new(code, msg)).context("streaming from vtgate")
    }

    #[test]
    fn network_and_cluster_hiccups_are_retried() {
        assert_eq!(
            classify(&status(Code::Unavailable, "no valid tablet")),
            Class::Transient
        );
        assert_eq!(
            classify(&status(Code::from_i32(17), "reparent")),
            Class::Transient
        );
        assert_eq!(
            classify(&status(
                Code::Unknown,
                "stream (at source tablet) error @ x: EOF"
            )),
            Class::Transient
        );
    }

    #[test]
    fn lost_positions_and_bad_requests_stop_the_sync() {
        let purged = "Cannot replicate because the source purged required binary logs (errno 1236)";
        assert_eq!(classify(&status(Code::Unknown, purged)), Class::Definite);
        let gone = "shard provided in VGTID, 0, not found in the customer keyspace";
        assert_eq!(
            classify(&status(Code::FailedPrecondition, gone)),
            Class::Definite
        );
        assert_eq!(
            classify(&status(Code::InvalidArgument, "bad vgtid")),
            Class::Definite
        );
        assert_eq!(
            classify(&status(Code::Unauthenticated, "no")),
            Class::Definite
        );
        assert_eq!(
            classify(&anyhow::anyhow!("row has 3 values")),
            Class::Definite
        );
    }

    fn sqlite(code: std::ffi::c_int) -> anyhow::Error {
        let err = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        anyhow::Error::new(err).context("committing a mirror transaction")
    }

    #[test]
    fn a_held_lock_and_a_full_disk_are_retried() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_FULL,
        ] {
            assert_eq!(classify(&sqlite(code)), Class::Transient, "code {code}");
        }
    }

    #[test]
    fn a_damaged_foreign_or_read_only_file_stops_the_sync_with_a_hint() {
        for (code, hint) in [
            (rusqlite::ffi::SQLITE_CORRUPT, "damaged"),
            (rusqlite::ffi::SQLITE_NOTADB, "not a SQLite database"),
            (rusqlite::ffi::SQLITE_READONLY, "not writable"),
            (rusqlite::ffi::SQLITE_CANTOPEN, "not writable"),
        ] {
            let err = sqlite(code);
            assert_eq!(classify(&err), Class::Definite, "code {code}");
            assert!(render(&err).contains(hint), "{}", render(&err));
        }
        assert!(render(&sqlite(rusqlite::ffi::SQLITE_FULL)).contains("free space"));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100) && delays[0] >= Duration::from_millis(50));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[9] >= Duration::from_secs(1));
    }
}
