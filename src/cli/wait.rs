//! `vtmirror wait` flags, validated into `WaitOptions`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::ConnectionArgs;
use crate::commands::wait::{WaitFor, WaitOptions};
use crate::source::vgtid;

#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Mirror file (only read).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// vtgate gRPC address, HOST:PORT: the source whose commits to wait for (not needed with
    /// --position).
    #[arg(long, env = "VTMIRROR_VTGATE", required_unless_present = "position")]
    pub vtgate: Option<String>,
    /// Seconds to wait at most (the question to vtgate included); then exit 3.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Wait for this position instead of the source's current one, as `sync --start` takes
    /// it: '[{"keyspace":"ks","shard":"-80","gtid":"MySQL56/…"}]', one entry per shard.
    #[arg(long, value_name = "VGTID", conflicts_with = "vtgate")]
    pub position: Option<String>,
    /// Principal sent as the effective caller id of the Execute calls.
    #[arg(long, env = "VTMIRROR_CALLER_ID")]
    pub caller_id: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl WaitArgs {
    pub fn options(&self) -> Result<WaitOptions> {
        if !(self.timeout.is_finite() && self.timeout >= 0.0) {
            bail!("--timeout must be a number of seconds, 0 or more");
        }
        let wait_for = match (&self.position, &self.vtgate) {
            (Some(position), _) => WaitFor::Position(vgtid::from_json(position, None).context(
                "--position: each entry names its keyspace, shard and gtid (as `vtmirror status --json` shows them)",
            )?),
            (None, Some(address)) => WaitFor::Source {
                vtgate: self.connection.vtgate(address)?,
                caller_id: self.caller_id.clone(),
            },
            (None, None) => bail!("give --vtgate (or --position)"),
        };
        Ok(WaitOptions {
            db: self.db.clone(),
            wait_for,
            timeout: Duration::from_secs_f64(self.timeout),
        })
    }
}
