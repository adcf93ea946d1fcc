//! The change log flags `sync` and `demo` share.

use anyhow::Result;
use clap::Args;

use crate::mirror::change_log::retention::Retention;

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Change log")]
pub struct ChangeLogArgs {
    /// Record every row change in the mirror's change log, in the same SQLite transaction as
    /// the rows (read it with `vtmirror changes`). Once a mirror has a log, every later sync
    /// keeps it.
    #[arg(long, env = "VTMIRROR_CHANGES")]
    pub changes: bool,
    /// What the change log keeps: an age (90s, 30m, 12h, 7d), a count of entries, or both
    /// (7d,1000000). Default: everything. A consumer asking for pruned entries gets an error
    /// that says to resync.
    #[arg(long, value_name = "AGE,COUNT", env = "VTMIRROR_CHANGES_RETAIN")]
    pub changes_retain: Option<String>,
}

impl ChangeLogArgs {
    pub fn retention(&self) -> Result<Retention> {
        match &self.changes_retain {
            Some(text) => Retention::parse(text),
            None => Ok(Retention::default()),
        }
    }
}
