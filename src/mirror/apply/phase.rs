//! How the writer tells the phase of a source transaction (copy, catch-up, replication):
//! stored in `_vtmirror_status` as `phase`, counted by phase in `/metrics`, and named in
//! crash-point reports (the crash tests classify kills by it).

use super::{Uncommitted, Writer};
use crate::source::phase::Phase;

/// The crash-point report of a commit: its phase and checkpoint.
pub(super) fn describe_commit(phase: Phase, pending: &Uncommitted) -> String {
    let phase = phase.name();
    let checkpoint = pending.checkpoint.as_ref().map_or_else(String::new, |cp| {
        crate::source::vgtid::to_json(cp).to_string()
    });
    format!("phase {phase} checkpoint {checkpoint}")
}

impl Writer {
    /// Files the ended transaction under its phase (transactions without rows keep the last).
    pub(super) fn end_phase(&mut self) {
        if let Some(copied) = self.txn_copied.take() {
            self.pending.phase = Some(match (self.copy_completed, copied) {
                (true, _) => Phase::Replication,
                (false, true) => Phase::Copy,
                (false, false) => Phase::CatchUp,
            });
        }
    }

    /// Where the writer is, for the crash-point report of a point inside a transaction.
    pub(super) fn describe(&self) -> String {
        let phase = match (self.copy_completed, self.txn_copied) {
            (true, _) => Phase::Replication,
            (false, Some(true)) => Phase::Copy,
            (false, _) => Phase::CatchUp,
        };
        format!("phase {}", phase.name())
    }

    /// The phase of a commit: of its last transaction with rows, else the one stored.
    pub(super) fn current_phase(&self, committed: Option<Phase>) -> Phase {
        committed
            .or(self.phase_written)
            .unwrap_or(if self.copy_completed {
                Phase::Replication
            } else {
                Phase::Copy
            })
    }
}
