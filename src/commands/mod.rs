//! One module per subcommand. Each takes validated options (from `cli`) and a shutdown
//! future, and returns errors instead of logging them; `main` prints the one line.
//!
//! `sync` drives the whole data flow (source → bounded queue → writer thread); `demo` runs
//! it against the simulated vtgate; `tail` follows a keyspace without a file; `status`,
//! `query` and `snapshot` only ever read a mirror; `wait` reads one until it has caught up
//! with the source (read-your-writes); `serve` offers `changes` and `wait` over HTTP
//! (`--serve-addr`) beside a sync.

pub mod changes;
pub mod demo;
pub mod query;
pub mod serve;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod tail;
pub mod verify;
pub mod wait;
