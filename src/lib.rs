//! vtmirror keeps a local SQLite copy of Vitess keyspaces (one, several, every keyspace, or
//! a key range of one) through vtgate's VStream API, exactly once across crashes and restarts.
//!
//! # The public API
//! An application embeds a mirror with [`Mirror`] (the file: read connections, waits, the
//! change feed as a stream), [`Source`] (a vtgate and what to mirror) and [`SyncBuilder`] /
//! [`SyncHandle`] (a sync started and stopped from code). Nothing else is public; the
//! `vtmirror` command line ([`command_line`]) runs its syncs through the same builder.
//! `examples/embed.rs` is a whole application.
//!
//! ```no_run
//! # async fn app() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use vtmirror::{Mirror, Source};
//!
//! let mirror = Mirror::new("orders.db");
//! let source = Source::new("vtgate:15991", "commerce")?;
//! let sync = mirror.sync(&source)?.changes(true).start().await?;
//! // Read-your-writes: every transaction vtgate acknowledged before this call is in the file.
//! mirror.wait_for_source(&source, Duration::from_secs(30)).await?;
//! let rows: i64 = mirror.reader()?.query_row("SELECT count(*) FROM corder", [], |r| r.get(0))?;
//! let mut changes = mirror.changes(0, &[]);
//! while let Some(change) = changes.next().await {
//!     let change = change?;
//!     println!("{} {} {} {}", change.seq, change.op, change.table, change.key());
//! }
//! sync.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Where a row travels
//! ```text
//! vtgate ─gRPC─▶ source::transport ─▶ source::vstream (request, responses)
//!        ─▶ source::decode (VEvents → steps; source::value converts each cell)
//!        ─bounded queue─▶ mirror::apply (writer thread): BEGIN IMMEDIATE; mirror::ddl;
//!                          mirror::upsert / deletes; mirror::checkpoint; COMMIT (mirror::batch)
//!        ─▶ the SQLite file (mirror::store, mirror::metadata)
//! ```
//! `commands::sync` wires these together and retries; `cli` turns flags into options. Data
//! flows one way: `source/` names Vitess's things and never imports `mirror/`; `mirror/`
//! feeds `output/` counters and `output/` never imports `mirror/`'s writer; no module imports
//! another in a circle. The writer
//! feeds `output::progress` (atomics and `output::metrics` counters, once per commit), which
//! the progress display and the `--metrics-addr` endpoint read without touching the file;
//! `commands::serve` (`--serve-addr`) reads the file only through read-only connections.
//!
//! # The tree
//! | folder | holds |
//! |---|---|
//! | `library/` | the public API: `Mirror`, `Source`, `SyncBuilder`/`SyncHandle`, `ChangeStream`; thin over `commands/` |
//! | `cli/` | command-line flags (each also from a `VTMIRROR_*` variable), validated into the options `commands/` define: one file per subcommand, shared flags in files of their own; `commands/` never name `cli` |
//! | `commands/` | one file per subcommand: `sync/` (orchestration: checkpoint → stream → decode → writer; retry and shutdown; `tables`: tables added, dropped or copied again; `reshard`: a copy that had not begun on a keyspace resharded since starts on its serving shards), `changes` (the change feed as NDJSON), `tail`, `status`, `query`, `snapshot`, `demo`, `serve/` (`--serve-addr`: `changes` as long-poll NDJSON and `wait` over HTTP, bearer token, TLS), `wait/` (read-your-writes: the mirror's checkpoint against each serving shard's primary position, or a given one), `verify/` (the mirror against a scratch copy of the source stopped at its checkpoint, and its tables and columns against vtgate's catalog) |
//! | `source/` | vtgate → steps, and the Vitess vocabulary the rest of the tree speaks: `transport` (address, TLS, static auth), `selection` (keyspaces, shards, tables of a mirror), `naming` (bare or `keyspace.table` names), `table_schema` (a table as FIELD events describe it), `vgtid` (a VGtid's stored bytes and JSON text), `phase` (copy, catch-up, replication), `key_range` (shard names as key ranges), `catalog` (what vtgate serves, checked before a new mirror's first write; the tables and columns `verify` compares), `primary_position` (each shard's primary's `gtid_executed` through Execute, for `wait`), `vstream` (request), `proto` (Vitess's messages and the sync's lean view), `decode`, `value`, `position_check`, `gtid_set`, `ddl_statement` |
//! | `mirror/` | steps → SQLite: `apply` (the writer thread), `batch` (group commit), `change_log` (`--changes`: every change to a mirrored table, written by SQLite triggers in the same transaction; markers, retention, the feed reader), `upsert`, `schema` (the SQLite layout of a table schema), `owner` (which shard holds each row), `versions` (one key, two shards: a row moving between shards), `ddl` (with `per_shard`: TRUNCATE/DROP/RENAME as one shard runs them), `store` (the file), `metadata`, `checkpoint`, `resume`, `table_copy` (one table copied while the others replicate; swapped in whole), `wal` (SQLite's WAL checkpoints on a thread of their own, so the writer never waits for them), `power_cut` (a test VFS that simulates power loss; off unless its variable is set) |
//! | `output/` | `progress` counters, `metrics` (the writer's Prometheus counters), `exposition` (what a scrape returns), `report` (progress display, log writer), `render` (tables, hex, sizes), `endpoint` (`--metrics-addr`: HTTP for `/metrics` and `health` (`/healthz`, `/readyz`)), `http_server` (the HTTP/1.1 server under `endpoint` and `commands::serve`: connection cap, header timeout, optional TLS) |
//! | `error/` | the one transient-vs-definite classification, backoff, one-line rendering; `redact` keeps row values out of relayed errors |
//! | `sim/` | the simulated vtgate: a deterministic sharded source behind a real gRPC server |
//!
//! # Invariants
//! 1. Rows and checkpoint commit in one SQLite transaction: the file is always a consistent
//!    prefix of the stream (`mirror::apply::Writer::commit`), whatever number of keyspaces
//!    it holds (one VGtid names every shard of every keyspace: `source::selection`).
//! 2. Every apply is idempotent by primary key: upsert, delete-if-exists, a key change is a
//!    delete of the old key plus an upsert (`source::decode::decode_change`); a partial row
//!    image (NOBLOB) is merged into the row held for its key, then upserted
//!    (`mirror::versions::merge`).
//! 3. The checkpoint is the VGtid stored whole and opaque, `table_p_ks` included; resuming an
//!    unfinished copy never skips a table (`mirror::checkpoint::resume_position`).
//! 4. A source transaction is never split across two SQLite commits: commits happen only at
//!    transaction ends (`mirror::apply::Writer::apply`, `mirror::batch`).
//! 5. Only the writer thread changes the mirror while a sync streams (the WAL checkpoint
//!    thread only copies committed pages back into the file); a second sync on the same file
//!    refuses to start (`mirror::store::Mirror::open`).
//! 6. A value is the same whichever phase (copy or binlog) delivered it (`source::value`).
//! 7. A shard's changes touch only the rows that shard holds (`mirror::owner`): rows moving
//!    between shards and statements run once per shard end as at the source in any
//!    interleaving (`mirror::versions`); a key two shards hold at once stops the sync.
//! 8. The change log never disagrees with the tables: its entries are written by SQLite, in
//!    the transaction that changes the rows, and `seq` has no gap (`mirror::change_log`).

// Without `internals`, items only the crate's tests, benchmarks and simulated faults use look
// unused; with it (every check: `cargo clippy --all-targets`, `cargo test`) they are public,
// as they were before the API was drawn.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

/// The allocator of every program built on this library (the binary, the benchmark, tests),
/// so they all measure the same code. Values are allocated on the decoder's thread and freed
/// on the retirement thread; glibc's malloc serialises that on arena locks (futex waits in
/// `perf`, ≈ 30 % of the CPU in malloc/free against real Vitess), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The inner modules: public to the crate's own tests, benchmarks and examples (feature
/// `internals`), private to every other dependent.
macro_rules! inner_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

inner_modules!(cli, commands, error, mirror, output, sim, source);

mod library;

pub use library::{
    Change, ChangeStream, Mirror, Source, SyncBuilder, SyncHandle, SyncOutcome, SyncStatus,
    WaitOutcome,
};

/// Runs the `vtmirror` command line with this process's arguments, as the binary does, and
/// returns its exit status.
pub fn command_line() -> std::process::ExitCode {
    cli::main()
}
