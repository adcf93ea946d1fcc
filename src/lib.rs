//! vtmirror keeps a local SQLite copy of a Vitess keyspace through vtgate's VStream API,
//! exactly once across crashes and restarts.
//!
//! # Data flow
//! ```text
//! vtgate ─VStream (tonic)─▶ vstream ─VEvents─▶ decode ─Steps─▶ bounded channel ─▶ apply (writer thread)
//!                                                                   BEGIN IMMEDIATE; DDL; upserts/deletes;
//!                                                                   checkpoint; COMMIT (batch decides when)
//! ```
//!
//! # Modules
//! | module | job |
//! |---|---|
//! | `cli` | command-line flags (each also from a `VTMIRROR_*` variable) |
//! | `sync` | orchestration: checkpoint → stream → decode → writer; retry and shutdown |
//! | `vstream` | connect to vtgate and build the VStream request |
//! | `transport` | how to reach vtgate: address, TLS, static auth credentials |
//! | `proto` | Vitess's messages (generated); `proto::vstream_events`: the sync's own lean view of the stream |
//! | `decode` | VEvents → steps (consecutive ROW events of a table merged); validates every wire fact, never panics |
//! | `value` | Vitess type + bytes → SQLite value (short text inline, long text shared with the receive buffer) |
//! | `position_check` | every VGTID: one keyspace, same key range (reshards allowed), GTID sets only grow |
//! | `gtid_set` | MySQL56 GTID sets: parse, containment |
//! | `schema` | table schema from FIELD events, SQLite layout, identifier quoting |
//! | `source_ddl` | table-level meaning of a source DDL statement (drop, truncate, renames, online DDL shadows) |
//! | `ddl` | create / alter / rebuild mirrored tables; apply source DDL effects |
//! | `checkpoint` | the stored VGtid and the safe resume position |
//! | `resume` | the start position of a sync, from the mirror's metadata |
//! | `batch` | group commit policy |
//! | `apply` | the writer thread: steps → SQLite transactions |
//! | `upsert` | multi-row upsert statements for runs of row changes |
//! | `store` | the mirror file: pragmas, migrations, lock, identity |
//! | `metadata` | reads and writes of the `_vtmirror_*` tables |
//! | `error` | transient vs definite errors; backoff |
//! | `redact` | row values out of relayed remote errors before they are shown or stored |
//! | `progress` | live counters for progress reporting |
//! | `demo` | `vtmirror demo`: the simulated vtgate synced into `demo.db` |
//! | `tail` | `vtmirror tail`: print a keyspace's changes (no file), like the Vitess example client |
//! | `status` | `vtmirror status`: state, checkpoint, copy progress and lag of a mirror, read-only |
//! | `query` | `vtmirror query`: read-only SQL on a mirror as a table, CSV or JSON |
//! | `snapshot` | `vtmirror snapshot`: a consistent copy of a mirror that can resume syncing |
//! | `report` | progress display of `sync`/`demo` (terminal line or periodic logs), log writer |
//! | `render` | text tables, hex, counts and sizes shared by the commands' output |
//! | `sim` | the simulated vtgate: a deterministic sharded source behind a real gRPC server |
//!
//! # Invariants
//! 1. Rows and checkpoint commit in one SQLite transaction: the file is always a consistent
//!    prefix of the stream (`apply::Writer::commit`).
//! 2. Every apply is idempotent by primary key: upsert, delete-if-exists, a key change is a
//!    delete of the old key plus an upsert (`decode::decode_change`).
//! 3. The checkpoint is the VGtid stored whole and opaque, `table_p_ks` included; resuming an
//!    unfinished copy never skips a table (`checkpoint::resume_position`).
//! 4. A source transaction is never split across two SQLite commits: commits happen only at
//!    transaction ends (`apply::Writer::apply`, `batch`).
//! 5. Only the writer thread touches the mirror while a sync streams; a second sync on the
//!    same file refuses to start (`store::Mirror::open`).

/// The allocator of every program built on this library (the binary, the benchmark, tests),
/// so they all measure the same code. Values are allocated on the decoder's thread and freed
/// on the retirement thread; glibc's malloc serialises that on arena locks (futex waits in
/// `perf`, ≈ 30 % of the CPU in malloc/free against real Vitess), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod apply;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod ddl;
pub mod decode;
pub mod demo;
pub mod error;
pub mod gtid_set;
pub mod metadata;
pub mod position_check;
pub mod progress;
pub mod proto;
pub mod query;
pub mod redact;
pub mod render;
pub mod report;
pub mod resume;
pub mod schema;
pub mod sim;
pub mod snapshot;
pub mod source_ddl;
pub mod status;
pub mod store;
pub mod sync;
pub mod tail;
pub mod transport;
pub mod upsert;
pub mod value;
pub mod vstream;
