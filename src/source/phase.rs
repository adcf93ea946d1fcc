//! The three phases of a VStream that starts with a copy, as the stream itself tells them:
//! copy batches, the binlog replayed between them (catch-up), and replication after the
//! final COPY_COMPLETED. The writer records each commit's phase; metrics count by it.

/// What the mirror is doing, by the kind of the last applied source transaction; stored in
/// `_vtmirror_status` as `phase` (crash tests classify kills by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Copy batches: rows read from the source tables.
    Copy,
    /// Binlog written during the copy, replayed between copy batches.
    CatchUp,
    /// After the copy completed.
    Replication,
}

impl Phase {
    /// In `index` order.
    pub const ALL: [Phase; 3] = [Phase::Copy, Phase::CatchUp, Phase::Replication];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::CatchUp => "catch-up",
            Phase::Replication => "replication",
        }
    }
}
