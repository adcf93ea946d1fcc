//! The mirror side: how steps become SQLite state, exactly once.
//!
//! `apply` is the writer thread, the only code that writes the file while a sync runs; it
//! applies row changes as `upsert`s and deletes by primary key, keeps each table's layout
//! in line with its `schema` (`ddl`), and commits when `batch` says so, always at a source
//! transaction end and always together with the `checkpoint`. `store` opens the file
//! (pragmas, migrations, lock, identity), `metadata` reads and writes the `_vtmirror_*`
//! tables, and `resume` turns the stored checkpoint into the next request's position.
//!
//! Why a crash at any instant loses and duplicates nothing: the checkpoint is written in
//! the same SQLite transaction as the rows it covers, so the file is always a prefix of the
//! stream ending at a transaction boundary; resuming replays from exactly that boundary,
//! and any row sent twice (copy then catch-up, or a replay) converges because every apply
//! is idempotent by primary key.

pub mod apply;
pub mod batch;
pub mod change_log;
pub mod checkpoint;
pub mod copy_check;
pub mod ddl;
pub mod metadata;
pub mod owner;
pub mod power_cut;
pub mod resume;
pub mod schema;
pub mod store;
pub mod table_copy;
pub mod timestamp;
pub mod upsert;
pub mod versions;
pub mod wal;
