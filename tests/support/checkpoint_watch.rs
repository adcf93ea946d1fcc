//! The "checkpoint never moves backwards" oracle: samples a mirror's stored VGtid while a sync
//! runs and fails on any shard whose GTID sequence went down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Per-shard highest sequence number seen so far.
pub struct CheckpointWatch {
    db: PathBuf,
    seen: BTreeMap<String, u64>,
    pub samples: u64,
}

impl CheckpointWatch {
    pub fn new(db: &Path) -> Self {
        CheckpointWatch {
            db: db.to_path_buf(),
            seen: BTreeMap::new(),
            samples: 0,
        }
    }

    /// Reads the stored checkpoint (if any yet) and asserts no shard went backwards.
    pub fn observe(&mut self, context: &str) {
        let Some(now) = stored_sequences(&self.db) else {
            return;
        };
        self.samples += 1;
        for (shard, n) in &now {
            let before = self.seen.get(shard).copied().unwrap_or(0);
            assert!(
                *n >= before,
                "checkpoint of shard {shard} moved backwards ({before} -> {n}) {context}"
            );
        }
        self.seen = now;
    }
}

/// Sequence number N of each shard's `MySQL56/uuid:1-N` (0 while a shard's copy has no
/// position yet).
pub fn stored_sequences(db: &Path) -> Option<BTreeMap<String, u64>> {
    let conn = rusqlite::Connection::open(db).ok()?;
    let bytes: Vec<u8> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .ok()?;
    let vgtid = vtmirror::source::vgtid::decode(&bytes).ok()?;
    Some(
        vgtid
            .shard_gtids
            .iter()
            .map(|s| {
                let n = s
                    .gtid
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (s.shard.clone(), n)
            })
            .collect(),
    )
}

/// Whether the mirror finished its copy.
pub fn copy_completed(db: &Path) -> bool {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row("SELECT copy_completed FROM _vtmirror_checkpoint", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|v| v == 1)
        .unwrap_or(false)
}
