//! `vtmirror verify` flags, validated into `VerifyOptions`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::ConnectionArgs;
use crate::commands::verify::VerifyOptions;
use crate::source::vstream::{StreamFlags, StreamSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Mirror file to verify (never written).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// vtgate gRPC address of the mirror's source, HOST:PORT.
    #[arg(long, env = "VTMIRROR_VTGATE")]
    pub vtgate: String,
    /// Mirror tables to compare, comma-separated, as named in the file (default: all).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Tablet type to copy the source from: primary, replica or rdonly.
    #[arg(long, default_value = "replica", env = "VTMIRROR_TABLET_TYPE")]
    pub tablet_type: String,
    /// Principal sent as the VStream's effective caller id.
    #[arg(long, env = "VTMIRROR_CALLER_ID")]
    pub caller_id: Option<String>,
    /// Seconds the source copy and the wait for the mirror to catch up may take.
    #[arg(long, default_value_t = 3600.0)]
    pub wait: f64,
    /// Output: text or json (one object).
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl VerifyArgs {
    pub fn options(&self, quiet: bool) -> Result<VerifyOptions> {
        if !(self.wait.is_finite() && self.wait > 0.0) {
            anyhow::bail!("--wait must be a positive number of seconds");
        }
        // The keyspaces, shards and rules come from the mirror file; these flags only say how
        // to reach the source.
        let spec = StreamSpec::from_flags(StreamFlags {
            vtgate: self.connection.vtgate(&self.vtgate)?,
            keyspaces: &["verify".to_string()],
            shards: &[],
            tables: &[],
            rules: &[],
            tablet_type: &self.tablet_type,
            heartbeat_secs: 1,
            caller_id: self.caller_id.as_deref(),
        })?;
        Ok(VerifyOptions {
            db: self.db.clone(),
            spec,
            tables: self.tables.clone(),
            wait: Duration::from_secs_f64(self.wait),
            quiet,
        })
    }
}
