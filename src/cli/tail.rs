//! `vtmirror tail` flags, validated into `TailOptions`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::{ConnectionArgs, SelectionArgs};
use crate::commands::tail::{Format, TailOptions};
use crate::source::vgtid;
use crate::source::vstream::{StreamFlags, StreamSpec};

#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    /// vtgate gRPC address, HOST:PORT.
    #[arg(long, env = "VTMIRROR_VTGATE")]
    pub vtgate: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Tablet type to stream from: primary, replica or rdonly.
    #[arg(long, default_value = "replica")]
    pub tablet_type: String,
    /// Start position: a JSON list of {"shard", "gtid"} (keyspace optional per entry; "" shard =
    /// every shard; "" gtid = copy the tables first, "current" = from now), or just `current`
    /// (the default) or `copy`. Entries name their keyspace when several are followed.
    #[arg(long, default_value = "current")]
    pub pos: String,
    /// Tables to follow, comma-separated (default: every table).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// A Vitess filter rule MATCH[=FILTER]; repeatable.
    #[arg(long = "rule")]
    pub rules: Vec<String>,
    /// Output: text (tables, like the Vitess example client) or json (one object per line).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after printing this many transactions.
    #[arg(long)]
    pub count: Option<u64>,
    /// Ask vtgate for a heartbeat after this many idle seconds; a stream silent for 3 × this
    /// + 5 s is reconnected (0 = off).
    #[arg(long, default_value_t = 10)]
    pub heartbeat: u32,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub max_backoff: f64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl TailArgs {
    pub fn options(&self) -> Result<TailOptions> {
        if !(self.max_backoff.is_finite() && self.max_backoff > 0.0) {
            anyhow::bail!("--max-backoff must be a positive number of seconds");
        }
        let spec = StreamSpec::from_flags(StreamFlags {
            vtgate: self.connection.vtgate(&self.vtgate)?,
            keyspaces: &self.selection.keyspace,
            shards: &self.selection.shards,
            tables: &self.tables,
            rules: &self.rules,
            tablet_type: &self.tablet_type,
            heartbeat_secs: self.heartbeat,
            caller_id: None,
        })?;
        let selection = &spec.selection;
        let position = match self.pos.trim() {
            "current" => selection.fresh(vgtid::CURRENT),
            "copy" => selection.fresh(""),
            json => {
                vgtid::from_json(json, selection.keyspaces.single()).context("reading --pos")?
            }
        };
        Ok(TailOptions {
            spec,
            position,
            format: self.format,
            count: self.count,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs_f64(self.max_backoff),
        })
    }
}
