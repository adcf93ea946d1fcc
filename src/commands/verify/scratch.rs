//! A scratch copy of one source shard for `verify`: a key-range mirror of that shard made by
//! the same sync engine as the mirror, copied to its end, then streamed on to stop exactly at
//! a given position.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::Connection;

use super::VerifyOptions;
use crate::commands::sync::{Outcome, SyncOptions};
use crate::mirror::metadata;
use crate::mirror::store::open_read_only;
use crate::output::progress::Progress;
use crate::source::gtid_set::GtidSet;
use crate::source::proto::binlogdata::{Rule, ShardGtid, VGtid};
use crate::source::selection::Selection;

pub struct Scratch {
    keyspace: String,
    shard: String,
    opts: SyncOptions,
}

impl Scratch {
    pub fn new(
        dir: &Path,
        verify: &VerifyOptions,
        rules: &[Rule],
        shard: &ShardGtid,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the scratch directory {}", dir.display()))?;
        let mut spec = verify.spec.clone();
        spec.selection = Selection::parse(
            std::slice::from_ref(&shard.keyspace),
            std::slice::from_ref(&shard.shard),
            &[],
        )?;
        spec.rules = rules.to_vec();
        let file = format!("{}_{}.db", shard.keyspace, shard.shard.replace('-', "_"));
        let db: PathBuf = dir.join(file);
        remove_files(&db);
        let mut opts = SyncOptions::new(spec, db);
        opts.caught_up_idle = Duration::from_secs(1);
        opts.backoff_cap = Duration::from_secs(5);
        opts.exit_after_copy = true;
        Ok(Scratch {
            keyspace: shard.keyspace.clone(),
            shard: shard.shard.clone(),
            opts,
        })
    }

    pub fn name(&self) -> String {
        format!("{}/{}", self.keyspace, self.shard)
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    pub fn open(&self) -> Result<Connection> {
        open_read_only(&self.opts.db)
    }

    /// Copies the shard to the end of its copy. A scratch copy is disposable, so one that
    /// stopped on a definite error is started again from nothing, twice at most: vttestserver
    /// (v24) was seen once to send a copy VGTID one transaction behind the previous one, which
    /// the position check refuses (RELIABILITY.md).
    pub async fn copy(&self, deadline: Instant) -> Result<()> {
        let mut attempt = 1;
        loop {
            let copied = run(self.opts.clone(), deadline).await;
            match copied {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 3 && Instant::now() < deadline => {
                    let error = crate::error::render(&e);
                    tracing::warn!(shard = %self.name(), %error, "scratch copy failed; copying again");
                    remove_files(&self.opts.db);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("copying shard {} of the source", self.name()))
                }
            }
        }
    }

    /// True when the scratch's position on its shard is within `target`'s (not past it).
    pub fn within(&self, target: &VGtid) -> Result<bool> {
        let wanted = self.entry(target)?;
        let stored = metadata::load_checkpoint(&self.open()?)?
            .vgtid
            .unwrap_or_default();
        let have = self.entry(&stored)?;
        let set = |gtid: &str| {
            GtidSet::from_position(gtid)?
                .ok_or_else(|| anyhow!("position {gtid:?} is not a GTID set"))
        };
        Ok(set(&wanted.gtid)?.contains(&set(&have.gtid)?))
    }

    fn entry<'v>(&self, vgtid: &'v VGtid) -> Result<&'v ShardGtid> {
        (vgtid.shard_gtids.iter())
            .find(|s| s.keyspace == self.keyspace && s.shard == self.shard)
            .with_context(|| {
                format!(
                    "shard {} is no longer in the position (resharded while verify ran?); run verify again",
                    self.name()
                )
            })
    }

    /// Streams the shard on from its copy and stops exactly at `target`'s position for it.
    pub async fn stop_at(&self, target: &VGtid, deadline: Instant) -> Result<()> {
        let mut opts = self.opts.clone();
        opts.exit_after_copy = false;
        opts.stop_at = Some(VGtid {
            shard_gtids: vec![self.entry(target)?.clone()],
        });
        run(opts, deadline)
            .await
            .with_context(|| format!("streaming shard {} to the mirror's checkpoint", self.name()))
    }
}

async fn run(opts: SyncOptions, deadline: Instant) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let progress = Arc::new(Progress::default());
    let outcome = tokio::time::timeout(
        left,
        crate::commands::sync::run(opts, progress, std::future::pending()),
    )
    .await
    .map_err(|_| anyhow!("did not finish within --wait"))??;
    if outcome != Outcome::CaughtUp {
        bail!("stopped before it was done");
    }
    Ok(())
}

/// Removes a scratch file and its WAL and lock files.
fn remove_files(db: &Path) {
    for suffix in ["", "-wal", "-shm", ".sync-lock"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        std::fs::remove_file(&file).ok();
    }
}
