//! The one place that decides whether an error is transient (retry from the stored
//! checkpoint with capped, jittered backoff) or definite (stop, mirror untouched).

pub mod redact;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Definite,
}

/// Message fragments of errors that retrying can never fix.
const DEFINITE_TEXT: &[&str] = &[
    "purged", // binlogs gone: errno 1236 / 1789
    "errno 1236",
    "errno 1789",
    "not found in the", // shard provided in VGTID, X, not found in the K keyspace
    // vtgate resolving the keyspace of a new stream: `failed to get shards in keyspace K:
    // keyspace K fetch error: node doesn't exist: keyspaces/K/SrvKeyspace` (a typo in
    // --keyspace; retrying would wait for a keyspace nobody is creating).
    "node doesn't exist: keyspaces/",
    "gtidset mismatch",
    "unknown gtidset flavor",
    "is not present in the database",
    "unknown table",
    "code: invalid_argument", // a tablet error at a fixed position: it fails the same way again
    "failed to build table replication plan",
    // vttablet refusing a `--rule` filter while planning its table (vstreamer `planbuilder`,
    // v24), relayed by vtgate as Unknown: the same filter is refused on every retry.
    "comparison operator",
    "unsupported constraint",
    "unsupported qualifier for column",
    "unsupported function:",
    "unexpected in_keyrange parameter",
    "vindex must be unique",
    "does not match the table entry name", // `t=select * from u`
    "message length too large",            // the same message comes again on every retry
    // A plaintext client reading a TLS server's bytes as HTTP/2: a protocol mismatch, not a
    // broken connection (checked before the "h2 protocol error" transport texts).
    "frame with invalid size",
];

pub fn classify(err: &anyhow::Error) -> Class {
    // A refused certificate or a protocol mismatch sits under transport errors that would
    // otherwise read as transient.
    if crate::source::transport::is_tls_failure(err) {
        return Class::Definite;
    }
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

/// `err` made transient when vttablet refused a table copy because it does not know one of
/// the tables being copied (`copying`, bare names) yet: "table T is not present in the
/// database". vtgate lists these tables (they are copied because they joined the selection
/// or the first copy left them out), so the tablet learns them at its next schema reload.
/// The same refusal of a first copy (a misspelt `--tables` name) stays definite.
pub fn not_known_yet(err: anyhow::Error, copying: &[String]) -> anyhow::Error {
    let status = err.chain().find_map(|c| c.downcast_ref::<tonic::Status>());
    let message = status.map(|s| s.message()).unwrap_or_default();
    let unknown = copying
        .iter()
        .find(|t| message.contains(&format!("table {t} is not present in the database")));
    match unknown {
        Some(table) => Transient(format!(
            "the tablet does not know table {table} yet (vttablet: {message}); retrying until \
             it loads it"
        ))
        .into(),
        None => err,
    }
}

/// Statuses tonic makes up itself when the connection breaks (an HTTP/2 reset or GOAWAY from a
/// proxy in front of vtgate, a body ending inside a message): INTERNAL by the gRPC mapping,
/// but nothing vtgate said. vtgate's own INTERNAL errors never start like this.
const TRANSPORT_TEXT: &[&str] = &["h2 protocol error:", "unexpected eof decoding stream"];

fn classify_status(status: &tonic::Status) -> Class {
    let text = status.message().to_lowercase();
    if DEFINITE_TEXT.iter().any(|t| text.contains(t)) {
        return Class::Definite;
    }
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Unknown
        | Code::FailedPrecondition => Class::Transient,
        Code::Internal if TRANSPORT_TEXT.iter().any(|t| text.starts_with(t)) => Class::Transient,
        // vtrpc CLUSTER_EVENT (17) and READ_ONLY (18) have no gRPC name: tonic reads them as
        // Unknown, retried above.
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

/// One line for a person: the error chain (gRPC statuses as `CODE: message`, row values
/// redacted) and, for the definite errors people meet, what to do about it.
pub fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = err
        .chain()
        .map(|cause| match cause.downcast_ref::<tonic::Status>() {
            Some(status) => format!("{:?}: {}", status.code(), status.message()),
            None => cause.to_string(),
        })
        .collect();
    // An io::Error shows its inner error's text, which then comes again as its source.
    parts.dedup();
    let mut line = crate::error::redact::redact(&parts.join(": "));
    if let Some(hint) = hint(&line.to_lowercase()) {
        line.push_str(" — ");
        line.push_str(hint);
    }
    line
}

const RULE_HINT: &str = "vttablet refused the --rule filter: Vitess filters a stream by terms \
     joined by AND (column OP literal, IN, IS [NOT] NULL, BETWEEN, in_keyrange) and a select \
     list of columns of the rule's own table";

fn hint(text: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        ("node doesn't exist: keyspaces/", "no keyspace of that name on this vtgate: check --keyspace (`SHOW KEYSPACES` through vtgate lists them)"),
        ("not found in the", "the stored position names a shard that no longer exists (removed after a reshard); this mirror cannot resume: start a new mirror file to copy the keyspace again"),
        ("purged", "the source no longer has the binlogs after the stored position; this mirror cannot resume: start a new mirror file to copy the keyspace again"),
        ("gtidset mismatch", "the stored position is not on this source (another cluster, or restored from a backup); start a new mirror file"),
        ("unauthenticated", "vtgate wants Vitess static auth credentials: --auth-user with --auth-password-file or VTMIRROR_AUTH_PASSWORD, or --auth-static-client-creds"),
        ("permissiondenied", "vtgate refused the credentials: check --auth-user and the password"),
        ("unknownissuer", "vtgate's certificate is not signed by a trusted CA: give its CA with --tls-ca FILE"),
        ("certificate not valid for name", "vtgate's certificate is for another name: connect by that name, or name it with --tls-server-name"),
        ("certificate expired", "vtgate's certificate has expired (or this machine's clock is wrong)"),
        ("not valid yet", "vtgate's certificate is not valid yet (or this machine's clock is wrong)"),
        ("alert: certificaterequired", "vtgate requires a client certificate: --tls-cert FILE --tls-key FILE"),
        ("alert: unknownca", "vtgate refused the client certificate (--tls-cert): not signed by a CA it trusts"),
        ("alert: badcertificate", "vtgate refused the client certificate (--tls-cert)"),
        ("received corrupt message", "vtgate does not seem to speak TLS: drop --tls and the TLS flags, or check the port"),
        ("frame with invalid size", "vtgate did not answer in plaintext HTTP/2: if it serves TLS, connect with --tls (and --tls-ca FILE)"),
        ("comparison operator", RULE_HINT),
        ("unsupported constraint", RULE_HINT),
        ("unsupported qualifier for column", RULE_HINT),
        ("unsupported function:", RULE_HINT),
        ("does not match the table entry name", RULE_HINT),
        ("message length too large", "one VStream message is larger than vtmirror accepts (VTMIRROR_MAX_MESSAGE_BYTES, default 256 MiB) and would come again on every retry; raise the limit"),
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

    /// What real vtgate (v19–v24) sends around reparents, reshards and tablet restarts, as
    /// `tests/faults/network.rs` injects it mid-stream and at connect.
    #[test]
    fn real_vtgate_cluster_event_texts_are_retried() {
        let texts = [
            (Code::Unavailable, "target: commerce.-80.replica: no healthy tablet available for 'keyspace:\"commerce\" shard:\"-80\" tablet_type:REPLICA'"),
            (Code::from_i32(17), "target: commerce.-80.primary: current keyspace is being resharded"),
            (Code::from_i32(17), "target: commerce.80-.primary: primary is not serving, there may be a reparent operation in progress"),
            (Code::Unavailable, "inconsistent state detected, primary is serving but initially found no available tablet"),
            (Code::Unavailable, "error streaming from tablet zone1-0000000101 in commerce/-80: error streaming tablet health from zone1-0000000101: tablet zone1-0000000101 type has changed from REPLICA to PRIMARY, restarting vstream"),
            (Code::FailedPrecondition, "error starting stream from shard GTID keyspace:\"commerce\" shard:\"-80\" gtid:\"MySQL56/x:1-42\": persistent error in vstream for commerce/-80 on tablet zone1-0000000101; giving up: vttablet: rpc error: code = FailedPrecondition desc = operation not allowed in state NOT_SERVING"),
            (Code::Unknown, "vstream ended unexpectedly on tablet zone1-0000000101 in commerce/-80"),
            (Code::Unknown, "vttablet: rpc error: code = Unknown desc = VStreamer is not open"),
            (Code::Cancelled, "failed to find a REPLICA tablet for VStream in commerce/80- within the zone1 cell(s): context has expired"),
        ];
        for (code, text) in texts {
            assert_eq!(classify(&status(code, text)), Class::Transient, "{text}");
        }
    }

    #[test]
    fn a_broken_connection_is_retried_but_vtgate_internal_errors_stop() {
        for text in [
            "h2 protocol error: stream error received: unexpected internal error encountered",
            "h2 protocol error: error reading a body from connection",
            "Unexpected EOF decoding stream.",
        ] {
            assert_eq!(
                classify(&status(Code::Internal, text)),
                Class::Transient,
                "{text}"
            );
        }
        let journal = "not all journaling participants are in the stream: journal: [], stream: []";
        assert_eq!(classify(&status(Code::Internal, journal)), Class::Definite);
        let mismatch = "persistent error in vstream for commerce/-80 on tablet zone1-101; giving up: GTIDSet Mismatch: requested source position:x, current target vrep position: y";
        assert_eq!(
            classify(&status(Code::InvalidArgument, mismatch)),
            Class::Definite
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

    /// What vtgate (v24) relays when vttablet cannot plan a `--rule` filter: retried, it
    /// came back every second for minutes (issue 29).
    #[test]
    fn a_rule_filter_vttablet_refuses_stops_the_sync_with_a_hint() {
        for desc in [
            "comparison operator like not supported",
            "unsupported constraint: v regexp 'x'",
            "unsupported function: upper(v)",
            "unsupported: select expression table u does not match the table entry name t",
        ] {
            let text = format!(
                "error starting stream from shard GTID keyspace:\"things\" shard:\"80-\": \
                 persistent error in vstream for things/80- on tablet test-0000000007; giving \
                 up: target: things.80-.primary: vttablet: rpc error: code = Unknown desc = {desc}"
            );
            let err = status(Code::Unknown, &text);
            assert_eq!(classify(&err), Class::Definite, "{desc}");
            assert!(render(&err).contains("refused the --rule filter"), "{desc}");
        }
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
    fn tls_failures_under_transport_errors_are_definite() {
        let rustls_error = tokio_rustls::rustls::Error::InvalidCertificate(
            tokio_rustls::rustls::CertificateError::UnknownIssuer,
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let err = anyhow::Error::new(io).context("connecting to vtgate at x:1");
        assert_eq!(classify(&err), Class::Definite);
        assert!(render(&err).contains("--tls-ca"), "{}", render(&err));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&anyhow::Error::new(plain)), Class::Transient);
    }

    #[test]
    fn refused_credentials_stop_with_a_hint() {
        let denied = status(
            Code::PermissionDenied,
            "auth failure: caller \"mirror\" provided invalid credentials",
        );
        assert_eq!(classify(&denied), Class::Definite);
        assert!(render(&denied).contains("check --auth-user and the password"));
    }

    #[test]
    fn rendered_remote_errors_hold_no_row_values() {
        let relayed = status(
            Code::AlreadyExists,
            "Duplicate entry 'bob@example.com' for key 'email_idx' (errno 1062) (sqlstate 23000) (CallerID: u): Sql: \"insert into c values (:vtg1)\", BindVars: {vtg1: \"type:VARCHAR value:\\\"bob@example.com\\\"\"}",
        );
        let shown = render(&relayed);
        assert!(!shown.contains("bob@"), "{shown}");
        assert!(
            shown.starts_with("streaming from vtgate: AlreadyExists: Duplicate entry '<redacted>'"),
            "{shown}"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100) && delays[0] >= Duration::from_millis(50));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[9] >= Duration::from_secs(1));
    }

    #[test]
    fn a_table_copy_refused_for_a_table_the_tablet_does_not_know_yet_is_retried() {
        let refused = || status(Code::Unknown, "table mt_new is not present in the database");
        assert_eq!(classify(&refused()), Class::Definite, "a first copy's typo");
        let copying = ["mt_new".to_string()];
        assert_eq!(
            classify(&not_known_yet(refused(), &copying)),
            Class::Transient
        );
        let other = ["corder".to_string()];
        assert_eq!(classify(&not_known_yet(refused(), &other)), Class::Definite);
    }
}
