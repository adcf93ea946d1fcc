//! Simulated vtgate: a tonic `vtgateservice.Vitess` server (`VStream` and `Execute`) over
//! deterministic, seedable in-memory models of one or several keyspaces, each sharded or not.
//! Used by integration tests (including crash tests), benchmarks and `vtmirror demo`.
//!
//! One server serves every keyspace it is given (one `SharedModel` each, distinct names), like
//! one vtgate over one topology. A VStream may name several keyspaces, all of them (empty
//! keyspace + "current") or a `/regex` over their names, and whole keyspaces or a subset of
//! their shards: vtgate's `resolveParams`. All those shards are merged into one stream whose
//! VGTID events carry every shard of every keyspace; transactions stay within one shard. The
//! final COPY_COMPLETED comes once every shard of every keyspace finished its copy. `Execute`
//! answers `SHOW VITESS_SHARDS` and `SHOW TABLES FROM <keyspace>`.
//!
//! Map:
//! * `schema` — table/column specs and the `query::Field` metadata vttablet sends;
//! * `model` — one keyspace: per-shard rows, GTID positions and binlogs; transactions;
//! * `shared` — `SharedModel`: one keyspace's model behind a mutex, waking streams on writes;
//! * `keyspaces` — the served keyspaces, locked together in one order;
//! * `workload` — seeded population, random transactions, live writer;
//! * `request` — vtgate/vttablet request validation and copy plan, over every keyspace;
//! * `shard_stream` — one shard's copy / catch-up / replication state machine;
//! * `stream` — merging shards of all keyspaces into responses, heartbeats, faults, throttling;
//! * `execute` — the catalog statements of `Execute`;
//! * `server` — the tonic server (`SimVtgate`); `faults` — fault injection;
//! * `security` — optional TLS / mTLS and static auth of the server (every RPC).
//!
//! Typical use (one keyspace; `SimVtgate::start_keyspaces` serves several):
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vtmirror::sim::{ModelSpec, SharedModel, SimVtgate, StreamOptions};
//! let model = SharedModel::new(ModelSpec::demo(1000)); // 1000 rows per table
//! let server = SimVtgate::start(model.clone(), "127.0.0.1:0").await?;
//! model.apply_random_transactions(50);
//! let expected = model.table_rows("customer");
//! # let _ = (server.endpoint(), expected);
//! server.shutdown().await;
//!
//! // Vitess's local example: `commerce` (unsharded) and `customer` (-80, 80-).
//! let models = ModelSpec::local_example(100).into_iter().map(SharedModel::new).collect();
//! let server = SimVtgate::start_keyspaces(models, "127.0.0.1:0", StreamOptions::default()).await?;
//! let customers = server.keyspace("customer").map(|m| m.table_rows("customer"));
//! # let _ = customers;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod events;
mod execute;
mod faults;
mod filter;
mod gtid;
mod keyspaces;
mod model;
mod request;
pub mod rng;
mod row_filter;
mod schema;
mod security;
mod server;
mod shard_stream;
mod shared;
mod stream;
mod workload;

#[cfg(test)]
mod tests;

pub use events::{decode_row, encode_row, lastpk_result, lastpk_value};
pub use faults::{AfterInjection, Faults};
pub use gtid::{format_position, parse_position, shard_uuid};
pub use model::{
    now_secs, BinlogTxn, Model, ModelError, Op, Row, RowChange, Shard, TxnSpec, INITIAL_TXNS,
};
pub use schema::{ColKind, ColumnSpec, ModelSpec, TableSpec, CHARSET_BINARY, CHARSET_UTF8MB4};
pub use security::{Security, ServerTls};
pub use server::{SimService, SimVtgate};
pub use shard_stream::BatchLimits;
pub use shared::SharedModel;
pub use stream::StreamOptions;
pub use workload::{spawn_live_writes, INITIAL_BALANCE};
