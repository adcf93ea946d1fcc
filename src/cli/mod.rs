//! Command-line interface: flags (each also readable from a `VTMIRROR_*` variable) and their
//! validation into options.
//!
//! The rule: a subcommand's flags (clap `Args`, help, defaults, environment names) live in
//! `cli/<subcommand>.rs` and nowhere else, and turn into the plain options its
//! `commands/` module defines; flags several subcommands share have a file of their own
//! (`connection`, `endpoint`, `serve`, `selection`). Commands never name `cli`, so the library calls
//! them with options built in code.

use clap::{Parser, Subcommand, ValueEnum};

mod change_log;
mod changes;
mod connection;
mod demo;
mod endpoint;
mod query;
mod run;
mod selection;
mod serve;
mod snapshot;
mod status;
mod sync;
mod tail;
mod verify;
mod wait;

pub use change_log::ChangeLogArgs;
pub use changes::ChangesArgs;
pub use connection::ConnectionArgs;
pub use demo::DemoArgs;
pub use endpoint::EndpointArgs;
pub use query::QueryArgs;
pub use run::main;
pub use selection::SelectionArgs;
pub use serve::ServeArgs;
pub use snapshot::SnapshotArgs;
pub use status::StatusArgs;
pub use sync::SyncArgs;
pub use tail::TailArgs;
pub use verify::{VerifyArgs, VerifyFormat};
pub use wait::WaitArgs;

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

// Parsed once per run: the size of the largest variant (`sync`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror a keyspace into a SQLite file: VStream Copy on a fresh mirror, then replication,
    /// resuming from the stored checkpoint after any stop.
    #[command(
        after_help = "Examples:\n  vtmirror sync --vtgate 127.0.0.1:15991 --keyspace commerce --db commerce.db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace things --db t.db --tables things,things_name_lookup --exit-when-caught-up\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --rule '/.*'\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --metrics-addr 127.0.0.1:9650   # /metrics /healthz /readyz\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --changes --serve-addr 0.0.0.0:9651 --serve-token-file /etc/vtmirror/feed-token   # /changes /wait\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --tls-ca ca.pem --auth-user mirror --auth-password-file /etc/vtmirror/password"
    )]
    Sync(SyncArgs),
    /// Print a keyspace's changes as they happen (writes no file), like the Vitess example
    /// VStream client: each transaction's time, its row changes, and the VGTID after it.
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
    /// Show a mirror's state, checkpoint, copy progress and lag (safe while sync runs).
    #[command(after_help = "Examples:\n  vtmirror status --db commerce.db\n  \
        vtmirror status --db commerce.db --json | jq .lag_seconds")]
    Status(StatusArgs),
    /// Run one read-only SQL statement on a mirror (never blocks the sync writer).
    #[command(
        after_help = "Examples:\n  vtmirror query --db commerce.db 'SELECT count(*) FROM customer'\n  \
        vtmirror query --db commerce.db --format csv 'SELECT * FROM corder WHERE customer_id = 7' > orders.csv\n  \
        vtmirror query --db commerce.db --format json 'SELECT * FROM customer LIMIT 10' | jq .email"
    )]
    Query(QueryArgs),
    /// Write a consistent copy of a mirror (safe while sync runs); a sync of the copy resumes
    /// from the checkpoint it holds.
    #[command(
        after_help = "Examples:\n  vtmirror snapshot --db commerce.db /backups/commerce-$(date +%F).db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace commerce --db /backups/commerce-2026-01-02.db"
    )]
    Snapshot(SnapshotArgs),
    /// Prove that a mirror equals its source at its checkpoint, while both keep changing: the
    /// source is copied again into scratch files stopped at exactly that checkpoint and
    /// compared in key order. Exit 0 equal, 1 different, 2 error.
    #[command(
        after_help = "Examples:\n  vtmirror verify --db commerce.db --vtgate vtgate:15991\n  \
        vtmirror verify --db shop.db --vtgate vtgate:15991 --tables commerce.customer --format json"
    )]
    Verify(VerifyArgs),
    /// Wait until the mirror holds every transaction the source committed before the call
    /// (read-your-writes), or a given position. Exit 0 reached, 3 timed out, 2 error.
    #[command(after_help = WAIT_HELP)]
    Wait(WaitArgs),
    /// Run two simulated keyspaces (commerce, customer) with live writes and sync them into
    /// one local file.
    #[command(
        after_help = "Examples:\n  vtmirror demo\n  vtmirror demo --seconds 30 --db /tmp/demo.db"
    )]
    Demo(DemoArgs),
    /// Print a mirror's change log (sync --changes) as NDJSON: every row change and marker
    /// after a seq, exactly as committed; --follow keeps printing new ones.
    #[command(after_help = CHANGES_HELP)]
    Changes(ChangesArgs),
}

const CHANGES_HELP: &str = r#"Examples:
  vtmirror changes --db demo.db --follow
  vtmirror changes --db shop.db --after 41210 --tables commerce.customer --limit 1000

Each line: {"seq", "table", "op", "key", "after", "before", "position", "timestamp", ...}
  op: insert, update, delete (key, after and/or before are the row), or a marker:
      truncate (every row of the table went; with "shard", only that shard's rows went and
      their deletes follow), schema (the table was created or its columns changed;
      "columns" lists them), resync (the table was replaced by a re-copy: forget its rows;
      an insert of each row follows), drop, rename ("to": the new name).
  Values: integers and reals as JSON numbers, text (DECIMAL, dates, JSON columns included)
  as strings, binary as base64 strings (the entry's "binary" lists those columns), NULL as null.
  position: the VGTID after the entry's source transaction; timestamp: its binlog time.
A consumer applies insert and update as an upsert by key, and stores the last seq in the same
transaction as its effect; restarted with --after that seq, it skips and repeats nothing.
Over HTTP: `sync --serve-addr` serves the same lines at /changes?after=SEQ&wait=SECS."#;

const WAIT_HELP: &str = r#"Examples:
  mysql -e "INSERT INTO customer ..." && vtmirror wait --db commerce.db --vtgate vtgate:15991 && sqlite3 commerce.db 'SELECT ...'
  vtmirror wait --db commerce.db --vtgate vtgate:15991 --timeout 5 || echo "not caught up: $?"
  vtmirror wait --db commerce.db --position '[{"keyspace":"commerce","shard":"0","gtid":"MySQL56/d714417e-b8ee-11ea-ad61-001e677affd5:1-36"}]'

How: each serving shard's primary (of the shards holding the mirror's keys) is asked for its
@@global.gtid_executed through vtgate's Execute RPC, and the mirror's stored checkpoint is read
until, for every such shard, it contains that set. A sync must be running on the file.

Exit status: 0 reached, 3 timed out (the shards still behind go to stderr), 2 error (an
unreachable vtgate, a refused query, a file that is not a mirror)."#;

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
