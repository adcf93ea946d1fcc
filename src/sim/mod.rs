//! Simulated vtgate: a tonic `vtgateservice.Vitess/VStream` server over a deterministic,
//! seedable in-memory model of a sharded keyspace. Used by integration tests (including crash
//! tests), benchmarks and `vtmirror demo`.
//!
//! Map:
//! * `schema` — table/column specs and the `query::Field` metadata vttablet sends;
//! * `model` — per-shard rows, GTID positions and binlogs; transactions;
//! * `shared` — `SharedModel`: the model behind a mutex, waking streams on writes;
//! * `workload` — seeded population, random transactions, live writer;
//! * `request` — vtgate/vttablet request validation and copy plan;
//! * `shard_stream` — one shard's copy / catch-up / replication state machine;
//! * `stream` — merging shards into responses, heartbeats, faults, throttling;
//! * `server` — the tonic server (`SimVtgate`); `faults` — fault injection;
//! * `security` — optional TLS / mTLS and static auth of the server.
//!
//! Typical use:
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vtmirror::sim::{ModelSpec, SharedModel, SimVtgate};
//! let model = SharedModel::new(ModelSpec::demo(1000)); // 1000 rows per table

//! let server = SimVtgate::start(model.clone(), "127.0.0.1:0").await?;
//! model.apply_random_transactions(50);
//! let expected = model.table_rows("customer");
//! # let _ = (server.endpoint(), expected);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod events;
mod faults;
mod filter;
mod gtid;
mod model;
mod request;
mod rng;
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
