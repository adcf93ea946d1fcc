//! What the writer tells `/metrics`: applied transactions and rows by phase, counted at each
//! transaction end; per commit its size and duration; after a commit that changed the copy
//! state, each table's copy progress read back from the metadata it just committed. All of it
//! reaches `Progress` as atomics once per commit, never per row.

use std::time::Duration;

use super::{Uncommitted, Writer};
use crate::mirror::metadata;
use crate::output::metrics::{CommitMeasure, CopyLabels};
use crate::output::progress::SyncState;

impl Writer {
    /// Files the transaction that just ended (and its rows) under its phase.
    pub(super) fn count_transaction(&mut self) {
        let phase = self.current_phase(self.pending.phase);
        let rows = self.pending.rows - self.pending.rows_counted;
        let applied = &mut self.pending.applied[phase.index()];
        applied.transactions += 1;
        applied.rows += rows as u64;
        self.pending.rows_counted = self.pending.rows;
    }

    /// After a successful COMMIT of `pending`, which took `duration`.
    pub(super) fn measure_commit(&self, pending: &Uncommitted, duration: Duration) {
        let mut applied = pending.applied;
        let uncounted = pending.rows - pending.rows_counted;
        if uncounted > 0 {
            applied[self.current_phase(pending.phase).index()].rows += uncounted as u64;
        }
        self.progress.metrics.committed(&CommitMeasure {
            applied,
            rows: pending.rows,
            duration,
        });
        self.progress.set_state(if self.copy_completed {
            SyncState::Replicating
        } else {
            SyncState::Copying
        });
        if pending.copy_changed {
            self.publish_copy_state();
        }
    }

    /// Sets the copy metrics to the committed `_vtmirror_copy_state` (best effort: metrics
    /// must never stop a sync).
    pub(super) fn publish_copy_state(&self) {
        let states = match metadata::copy_states(&self.mirror.conn) {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not read the copy state for /metrics");
                return;
            }
        };
        let naming = &self.mirror.naming;
        // A table copy's hidden table is left out: its table keeps the figures of the copy
        // readers see until the new one replaces it (`status` shows the copy under way).
        let labelled: Vec<_> = states
            .into_iter()
            .filter(|s| crate::mirror::schema::table_of_shadow(&s.table).is_none())
            .map(|s| {
                let (keyspace, shard) = naming.split_shard(&s.shard).unwrap_or(("", &s.shard));
                let table = naming.split_table(&s.table).map_or(&*s.table, |(_, t)| t);
                let labels = CopyLabels {
                    keyspace: keyspace.to_string(),
                    shard: shard.to_string(),
                    table: table.to_string(),
                };
                (labels, s.rows_copied, s.completed)
            })
            .collect();
        self.progress.metrics.set_copy_states(&labelled);
    }
}
