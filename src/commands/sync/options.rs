//! What a sync is asked to do: `SyncOptions`, built with `SyncOptions::new` by every caller
//! (the flags, the demo, `verify`'s scratch copies, tests), so the defaults live here only.

use std::path::PathBuf;
use std::time::Duration;

use super::TableChanges;
use crate::mirror::batch::CommitPolicy;
use crate::mirror::change_log::retention::Retention;
use crate::mirror::store::{Durability, Identity};
use crate::source::proto::binlogdata::VGtid;
use crate::source::vgtid;
use crate::source::vstream::StreamSpec;

/// Where a fresh mirror starts.
#[derive(Debug, Clone)]
pub enum StartFrom {
    Copy,
    Current,
    Position(VGtid),
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub spec: StreamSpec,
    pub db: PathBuf,
    pub start: StartFrom,
    pub exit_when_caught_up: bool,
    /// With `exit_when_caught_up`: this long without data events means caught up.
    pub caught_up_idle: Duration,
    pub durability: Durability,
    pub policy: CommitPolicy,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Full-size VStream responses buffered between the stream and the writer
    /// (back-pressure): the queue holds at most `queue_depth` × 2000 row changes, so small
    /// responses (one replication transaction each) queue deep enough for group commit
    /// while a copy's large ones keep memory bounded.
    pub queue_depth: usize,
    /// Stop exactly at this position (`verify` brings a scratch copy to the mirror's
    /// checkpoint): the transaction that reaches it is the last one applied.
    pub stop_at: Option<VGtid>,
    /// Stop once the copy has completed (`verify`'s scratch copies: under constant writes a
    /// stream is never idle long enough to count as caught up).
    pub exit_after_copy: bool,
    /// Tables added, dropped or copied again (`tables`).
    pub changes: TableChanges,
    /// Record every change in the change log (`mirror::change_log`); once on, it stays on.
    pub log_changes: bool,
    /// What the change log keeps.
    pub changes_retain: Retention,
}

impl SyncOptions {
    /// The options every sync starts from: a copy on a fresh mirror, replication forever,
    /// crash-safe commits, the default batch policy and backoff. Callers change what they
    /// need; this is the one place the defaults are written.
    pub fn new(spec: StreamSpec, db: PathBuf) -> SyncOptions {
        SyncOptions {
            spec,
            db,
            start: StartFrom::Copy,
            exit_when_caught_up: false,
            caught_up_idle: Duration::from_secs(2),
            durability: Durability::Normal,
            policy: CommitPolicy::default(),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(30),
            queue_depth: 16,
            stop_at: None,
            exit_after_copy: false,
            changes: TableChanges::default(),
            log_changes: false,
            changes_retain: Retention::default(),
        }
    }

    pub(super) fn fresh_position(&self) -> VGtid {
        match &self.start {
            StartFrom::Copy => self.spec.selection.fresh(""),
            StartFrom::Current => self.spec.selection.fresh(vgtid::CURRENT),
            StartFrom::Position(v) => v.clone(),
        }
    }

    pub(super) fn identity(&self) -> Identity {
        let rules: Vec<_> = self
            .spec
            .rules
            .iter()
            .map(|r| serde_json::json!({"match": r.r#match, "filter": r.filter}))
            .collect();
        Identity {
            keyspace: self.spec.selection.label(),
            filter: serde_json::Value::Array(rules).to_string(),
        }
    }
}
