//! Command-line interface: flags (each also readable from a `VTMIRROR_*` variable) and their
//! validation into options.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::batch::CommitPolicy;
use crate::checkpoint;
use crate::store::Durability;
use crate::sync::{StartFrom, SyncOptions};
use crate::vstream::{StreamFlags, StreamSpec};

mod connection;

pub use connection::ConnectionArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vtmirror",
    version,
    about = "Keep a local SQLite copy of a Vitess keyspace, exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format (logs go to stderr; filter them with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VTMIRROR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// No progress display (sync, demo); logs still go to stderr.
    #[arg(long, short, global = true, env = "VTMIRROR_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror a keyspace into a SQLite file: VStream Copy on a fresh mirror, then replication,
    /// resuming from the stored checkpoint after any stop.
    #[command(
        after_help = "Examples:\n  vtmirror sync --vtgate 127.0.0.1:15991 --keyspace commerce --db commerce.db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace things --db t.db --tables things,things_name_lookup --exit-when-caught-up\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --rule '/.*'\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --tls-ca ca.pem --auth-user mirror --auth-password-file /etc/vtmirror/password"
    )]
    Sync(SyncArgs),
    /// Print a keyspace's changes as they happen (writes no file), like the Vitess example
    /// VStream client: each transaction's time, its row changes, and the VGTID after it.
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(crate::tail::TailArgs),
    /// Show a mirror's state, checkpoint, copy progress and lag (safe while sync runs).
    #[command(after_help = "Examples:\n  vtmirror status --db commerce.db\n  \
        vtmirror status --db commerce.db --json | jq .lag_seconds")]
    Status(crate::status::StatusArgs),
    /// Run one read-only SQL statement on a mirror (never blocks the sync writer).
    #[command(
        after_help = "Examples:\n  vtmirror query --db commerce.db 'SELECT count(*) FROM customer'\n  \
        vtmirror query --db commerce.db --format csv 'SELECT * FROM corder WHERE customer_id = 7' > orders.csv\n  \
        vtmirror query --db commerce.db --format json 'SELECT * FROM customer LIMIT 10' | jq .email"
    )]
    Query(crate::query::QueryArgs),
    /// Write a consistent copy of a mirror (safe while sync runs); a sync of the copy resumes
    /// from the checkpoint it holds.
    #[command(
        after_help = "Examples:\n  vtmirror snapshot --db commerce.db /backups/commerce-$(date +%F).db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace commerce --db /backups/commerce-2026-01-02.db"
    )]
    Snapshot(crate::snapshot::SnapshotArgs),
    /// Run the simulated 2-shard keyspace with live writes and sync it into a local file.
    #[command(
        after_help = "Examples:\n  vtmirror demo\n  vtmirror demo --seconds 30 --db /tmp/demo.db"
    )]
    Demo(crate::demo::DemoArgs),
}

const TAIL_EXAMPLES: &str = r#"Examples:
  vtmirror tail --vtgate localhost:15991 --keyspace customer --tablet-type replica --pos '[ {"shard":"", "gtid":"current"} ]'
  vtmirror tail --vtgate localhost:15991 --keyspace customer --pos '[ {"shard":"0", "gtid":"MySQL56/d714417e-b8ee-11ea-ad61-001e677affd5:1-36"} ]'
  vtmirror tail --vtgate localhost:15991 --keyspace customer --pos copy --tables customer --format json | jq .after

Output (text):
  Event log timestamp: 1593314922 --> 2020-06-28 03:28:42 +0000 UTC
  +-----------------+--------+----------+------+
  |      table      |   op   | order_id |  sku |
  +-----------------+--------+----------+------+
  | customer.corder | INSERT |       23 | NULL |
  +-----------------+--------+----------+------+
  VGTID after event:  shard_gtids:<keyspace:"customer" shard:"0" gtid:"MySQL56/d714…:1-36" >

Binary columns (VARBINARY, BLOB, BINARY, BIT …) print as text when their bytes are printable
UTF-8, as the seed's client prints them, and as 0x… hex otherwise; --format json always gives
them as 0x… hex (unambiguous). An update prints its before and after images. --format json
prints one object per row change, transaction end (with the VGTID) and copy completion. Connection
notices and "remote error: …, retrying in Ns" lines go to stderr."#;

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// vtgate gRPC address, HOST:PORT.
    #[arg(long, env = "VTMIRROR_VTGATE")]
    pub vtgate: String,
    /// Keyspace to mirror.
    #[arg(long, env = "VTMIRROR_KEYSPACE")]
    pub keyspace: String,
    /// Mirror file (created if missing; the path is taken literally).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// Tables to mirror, comma-separated (default: every table of the keyspace).
    #[arg(long, value_delimiter = ',', env = "VTMIRROR_TABLES")]
    pub tables: Vec<String>,
    /// A Vitess filter rule MATCH[=FILTER], e.g. '/.*' or 't=select id, name from t'; repeatable.
    #[arg(long = "rule", env = "VTMIRROR_RULE", value_delimiter = ';')]
    pub rules: Vec<String>,
    /// Tablet type to stream from: primary, replica or rdonly.
    #[arg(long, default_value = "replica", env = "VTMIRROR_TABLET_TYPE")]
    pub tablet_type: String,
    /// Where a fresh mirror starts: copy, current, or a position as JSON
    /// ('[{"shard":"-80","gtid":"MySQL56/..."}]'). Ignored once the mirror has a checkpoint.
    #[arg(long, default_value = "copy", env = "VTMIRROR_START")]
    pub start: String,
    /// Finish the copy, catch up, then exit 0.
    #[arg(long, env = "VTMIRROR_EXIT_WHEN_CAUGHT_UP")]
    pub exit_when_caught_up: bool,
    /// Seconds without data after which the stream counts as caught up (with --exit-when-caught-up).
    #[arg(long, default_value_t = 2.0, env = "VTMIRROR_CAUGHT_UP_IDLE")]
    pub caught_up_idle: f64,
    /// Ask vtgate for a heartbeat after this many idle seconds (0 = off); a silent stream is
    /// reconnected after 3 × this + 5 s.
    #[arg(long, default_value_t = 10, env = "VTMIRROR_HEARTBEAT")]
    pub heartbeat: u32,
    /// Principal sent as the VStream's effective caller id.
    #[arg(long, env = "VTMIRROR_CALLER_ID")]
    pub caller_id: Option<String>,
    /// Commit durability: normal (crash-safe) or full (also power-loss-safe).
    #[arg(long, value_enum, default_value_t = Durability::Normal, env = "VTMIRROR_DURABILITY")]
    pub durability: Durability,
    /// Row changes per SQLite commit at most (transactions are never split).
    #[arg(long, default_value_t = 20_000, env = "VTMIRROR_MAX_BATCH_ROWS")]
    pub max_batch_rows: usize,
    /// Milliseconds an uncommitted batch may wait at most.
    #[arg(long, default_value_t = 250, env = "VTMIRROR_MAX_BATCH_DELAY_MS")]
    pub max_batch_delay_ms: u64,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 30.0, env = "VTMIRROR_MAX_BACKOFF")]
    pub max_backoff: f64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl SyncArgs {
    pub fn options(&self) -> Result<SyncOptions> {
        if self.keyspace.is_empty() {
            anyhow::bail!("--keyspace must name a keyspace");
        }
        let start = match self.start.as_str() {
            "copy" => StartFrom::Copy,
            "current" => StartFrom::Current,
            json => StartFrom::Position(checkpoint::from_json(json, &self.keyspace)?),
        };
        let positive = |secs: f64| secs.is_finite() && secs > 0.0;
        if !positive(self.caught_up_idle) || !positive(self.max_backoff) {
            anyhow::bail!("--caught-up-idle and --max-backoff must be positive numbers of seconds");
        }
        Ok(SyncOptions {
            spec: StreamSpec::from_flags(StreamFlags {
                vtgate: self.connection.vtgate(&self.vtgate)?,
                keyspace: &self.keyspace,
                tables: &self.tables,
                rules: &self.rules,
                tablet_type: &self.tablet_type,
                heartbeat_secs: self.heartbeat,
                caller_id: self.caller_id.as_deref(),
            })?,
            db: self.db.clone(),
            start,
            exit_when_caught_up: self.exit_when_caught_up,
            caught_up_idle: Duration::from_secs_f64(self.caught_up_idle),
            durability: self.durability,
            policy: CommitPolicy {
                max_rows: self.max_batch_rows.max(1),
                max_delay: Duration::from_millis(self.max_batch_delay_ms),
            },
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs_f64(self.max_backoff),
            queue_depth: 16,
        })
    }
}
