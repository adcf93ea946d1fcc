//! `vtmirror demo`'s flags.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::cli::{ChangeLogArgs, EndpointArgs, ServeArgs};
use crate::commands::demo::DemoOptions;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Mirror file to create or resume.
    #[arg(long, default_value = "demo.db")]
    pub db: PathBuf,
    /// Rows per table loaded before the copy starts.
    #[arg(long, default_value_t = 35_000)]
    pub rows_per_table: usize,
    /// Source transactions per second written while syncing.
    #[arg(long, default_value_t = 200)]
    pub writes_per_sec: u32,
    /// Stop after this many seconds (0 = run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub change_log: ChangeLogArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl DemoArgs {
    pub fn options(&self) -> Result<DemoOptions> {
        Ok(DemoOptions {
            db: self.db.clone(),
            rows_per_table: self.rows_per_table,
            writes_per_sec: self.writes_per_sec,
            seconds: self.seconds,
            endpoint: self.endpoint.settings()?,
            log_changes: self.change_log.changes,
            changes_retain: self.change_log.retention()?,
            serve: self.serve.settings()?,
        })
    }
}
