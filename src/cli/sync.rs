//! `vtmirror sync` flags, validated into `SyncOptions`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{ChangeLogArgs, ConnectionArgs, EndpointArgs, SelectionArgs, ServeArgs};
use crate::commands::sync::{StartFrom, SyncOptions, TableChanges};
use crate::mirror::batch::CommitPolicy;
use crate::mirror::store::Durability;
use crate::source::vgtid;
use crate::source::vstream::{StreamFlags, StreamSpec};

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// vtgate gRPC address, HOST:PORT.
    #[arg(long, env = "VTMIRROR_VTGATE")]
    pub vtgate: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Mirror file (created if missing; the path is taken literally).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// Tables to mirror, comma-separated (default: every table); keyspace.table with several
    /// keyspaces.
    #[arg(long, value_delimiter = ',', env = "VTMIRROR_TABLES")]
    pub tables: Vec<String>,
    /// A Vitess filter rule MATCH[=FILTER], e.g. '/.*' or 't=select id, name from t'; repeatable.
    #[arg(long = "rule", env = "VTMIRROR_RULE", value_delimiter = ';')]
    pub rules: Vec<String>,
    /// Tablet type to stream from: primary, replica or rdonly.
    #[arg(long, default_value = "replica", env = "VTMIRROR_TABLET_TYPE")]
    pub tablet_type: String,
    /// Where a fresh mirror starts: copy, current, or a position as JSON
    /// ('[{"shard":"-80","gtid":"MySQL56/..."}]'). Ignored once the mirror has a checkpoint.
    #[arg(long, default_value = "copy", env = "VTMIRROR_START")]
    pub start: String,
    /// Finish the copy, catch up, then exit 0.
    #[arg(long, env = "VTMIRROR_EXIT_WHEN_CAUGHT_UP")]
    pub exit_when_caught_up: bool,
    /// Seconds without data after which the stream counts as caught up (with --exit-when-caught-up).
    #[arg(long, default_value_t = 2.0, env = "VTMIRROR_CAUGHT_UP_IDLE")]
    pub caught_up_idle: f64,
    /// Ask vtgate for a heartbeat after this many idle seconds (0 = off); a silent stream is
    /// reconnected after 3 × this + 5 s.
    #[arg(long, default_value_t = 10, env = "VTMIRROR_HEARTBEAT")]
    pub heartbeat: u32,
    /// Principal sent as the VStream's effective caller id.
    #[arg(long, env = "VTMIRROR_CALLER_ID")]
    pub caller_id: Option<String>,
    /// Commit durability: normal (crash-safe) or full (also power-loss-safe).
    #[arg(long, value_enum, default_value_t = Durability::Normal, env = "VTMIRROR_DURABILITY")]
    pub durability: Durability,
    /// Row changes per SQLite commit at most (transactions are never split).
    #[arg(long, default_value_t = 20_000, env = "VTMIRROR_MAX_BATCH_ROWS")]
    pub max_batch_rows: usize,
    /// Milliseconds an uncommitted batch may wait at most.
    #[arg(long, default_value_t = 250, env = "VTMIRROR_MAX_BATCH_DELAY_MS")]
    pub max_batch_delay_ms: u64,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 30.0, env = "VTMIRROR_MAX_BACKOFF")]
    pub max_backoff: f64,
    /// Ask vtgate for bare table names (VStreamFlags.exclude_keyspace_from_table_name): it then
    /// skips cloning every event, about 1.5× faster copies at the source. Risk: vttestserver
    /// (v24) was seen to lose copied rows with it; use only against real vttablets.
    #[arg(long, env = "VTMIRROR_EXCLUDE_KEYSPACE_FROM_TABLE_NAME")]
    pub exclude_keyspace_from_table_name: bool,
    /// Copy these tables again (comma-separated mirror names) while the others keep
    /// replicating; readers see the old table until the copy has caught up. A restart with
    /// the same flag resumes the copy rather than starting it over.
    #[arg(long, value_delimiter = ',')]
    pub recopy: Vec<String>,
    /// Delete tables from the mirror that --tables / --rule no longer select (without it, a
    /// sync that would drop tables is refused).
    #[arg(long, env = "VTMIRROR_DROP_UNSELECTED")]
    pub drop_unselected: bool,
    /// When a source DDL rewrites a table's values without row events (ADD COLUMN with a
    /// default, a type change, an online DDL RENAME COLUMN), copy that table again instead of
    /// stopping.
    #[arg(long, env = "VTMIRROR_RECOPY_ON_DDL")]
    pub recopy_on_ddl: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub change_log: ChangeLogArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl SyncArgs {
    pub fn options(&self) -> Result<SyncOptions> {
        let positive = |secs: f64| secs.is_finite() && secs > 0.0;
        if !positive(self.caught_up_idle) || !positive(self.max_backoff) {
            anyhow::bail!("--caught-up-idle and --max-backoff must be positive numbers of seconds");
        }
        let mut spec = StreamSpec::from_flags(StreamFlags {
            vtgate: self.connection.vtgate(&self.vtgate)?,
            keyspaces: &self.selection.keyspace,
            shards: &self.selection.shards,
            tables: &self.tables,
            rules: &self.rules,
            tablet_type: &self.tablet_type,
            heartbeat_secs: self.heartbeat,
            caller_id: self.caller_id.as_deref(),
        })?;
        spec.exclude_keyspace_from_table_name = self.exclude_keyspace_from_table_name;
        let start = match self.start.as_str() {
            "copy" => StartFrom::Copy,
            "current" => StartFrom::Current,
            json => StartFrom::Position(vgtid::from_json(json, spec.selection.keyspaces.single())?),
        };
        let mut opts = SyncOptions::new(spec, self.db.clone());
        opts.start = start;
        opts.exit_when_caught_up = self.exit_when_caught_up;
        opts.caught_up_idle = Duration::from_secs_f64(self.caught_up_idle);
        opts.durability = self.durability;
        opts.policy = CommitPolicy {
            max_rows: self.max_batch_rows.max(1),
            max_delay: Duration::from_millis(self.max_batch_delay_ms),
        };
        opts.backoff_cap = Duration::from_secs_f64(self.max_backoff);
        opts.changes = TableChanges {
            recopy: self.recopy.clone(),
            drop_unselected: self.drop_unselected,
            recopy_on_ddl: self.recopy_on_ddl,
        };
        opts.log_changes = self.change_log.changes;
        opts.changes_retain = self.change_log.retention()?;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::source::proto::binlogdata::VGtid;

    fn sync_request_flag(extra: &[&str]) -> bool {
        let mut args = vec![
            "vtmirror",
            "sync",
            "--vtgate",
            "127.0.0.1:1",
            "--keyspace",
            "ks",
        ];
        args.extend_from_slice(&["--db", "m.db"]);
        args.extend_from_slice(extra);
        let Command::Sync(sync) = Cli::try_parse_from(args).unwrap().command else {
            unreachable!("a sync command line")
        };
        let request = sync.options().unwrap().spec.request(VGtid::default());
        request.flags.unwrap().exclude_keyspace_from_table_name
    }

    #[test]
    fn bare_table_names_are_asked_for_only_on_request() {
        assert!(
            !sync_request_flag(&[]),
            "off by default: vttestserver lost rows"
        );
        assert!(sync_request_flag(&["--exclude-keyspace-from-table-name"]));
    }
}
