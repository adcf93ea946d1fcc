//! The library: a mirror as an application's local database, in a few calls (the crate's
//! front page shows them together).
//!
//! Why so little is public: the guarantees (rows, checkpoint and change log commit together;
//! a source transaction is never split; only the writer thread writes) hold because one
//! writer owns the file. The API hands out what cannot break them: a sync to start and stop,
//! read-only connections, waits that only read, and the change log read as a stream. The
//! `vtmirror` command line runs its `sync` and `demo` through the same [`SyncBuilder`].

mod changes;
mod mirror;
mod source;
mod sync;

pub use changes::{Change, ChangeStream};
pub use mirror::Mirror;
pub use source::Source;
pub use sync::{SyncBuilder, SyncHandle, SyncStatus};

pub use crate::commands::sync::Outcome as SyncOutcome;
pub use crate::commands::wait::WaitOutcome;
