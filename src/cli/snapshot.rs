//! `vtmirror snapshot`'s flags.

use std::path::PathBuf;

use clap::Args;

use crate::commands::snapshot::SnapshotOptions;

#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// Mirror file to copy (it may be syncing).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// The new file to write (must not exist yet).
    pub out: PathBuf,
}

impl SnapshotArgs {
    pub fn options(&self) -> SnapshotOptions {
        SnapshotOptions {
            db: self.db.clone(),
            out: self.out.clone(),
        }
    }
}
