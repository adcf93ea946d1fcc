//! A mirror file: start its sync, read it, wait on it, follow its changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use rusqlite::Connection;

use super::{ChangeStream, Source, SyncBuilder, WaitOutcome};
use crate::commands::wait::{run as wait, WaitFor, WaitOptions};
use crate::mirror::metadata::load_checkpoint;
use crate::mirror::store::open_read_only;
use crate::source::vgtid;

/// The mirror in one SQLite file. Cheap to clone: it is the file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    path: PathBuf,
}

impl Mirror {
    /// The mirror in `path`, created by its first sync (nothing is written before that).
    pub fn new(path: impl Into<PathBuf>) -> Mirror {
        Mirror { path: path.into() }
    }

    /// An existing mirror; an error when `path` is missing or not a mirror file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Mirror> {
        let mirror = Mirror::new(path);
        mirror.reader()?;
        Ok(mirror)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sync of `source` into this file, with `vtmirror sync`'s defaults; one per file (a
    /// second one refuses to start).
    pub fn sync(&self, source: &Source) -> Result<SyncBuilder> {
        SyncBuilder::new(source, self.path.clone())
    }

    /// A read-only connection. Reads never block the sync's writer (WAL) and see whole
    /// source transactions only.
    pub fn reader(&self) -> Result<Connection> {
        open_read_only(&self.path)
    }

    /// The stored checkpoint as VGtid JSON (what `wait_for_position` takes), None before the
    /// first commit.
    pub fn position(&self) -> Result<Option<String>> {
        let stored = load_checkpoint(&self.reader()?)?;
        Ok(stored.vgtid.map(|v| vgtid::to_json(&v).to_string()))
    }

    /// Waits until the file holds every transaction `source` committed before this call
    /// (each serving shard's primary is asked for its executed GTID set through vtgate).
    pub async fn wait_for_source(&self, source: &Source, timeout: Duration) -> Result<WaitOutcome> {
        let wait_for = WaitFor::Source {
            vtgate: source.vtgate().clone(),
            caller_id: source.caller_id_text().map(str::to_string),
        };
        self.wait(wait_for, timeout).await
    }

    /// Waits until the file holds `position` (VGtid JSON, one entry per shard with its GTID
    /// set, as `position` returns it).
    pub async fn wait_for_position(
        &self,
        position: &str,
        timeout: Duration,
    ) -> Result<WaitOutcome> {
        self.wait(
            WaitFor::Position(vgtid::from_json(position, None)?),
            timeout,
        )
        .await
    }

    async fn wait(&self, wait_for: WaitFor, timeout: Duration) -> Result<WaitOutcome> {
        let opts = WaitOptions {
            db: self.path.clone(),
            wait_for,
            timeout,
        };
        wait(&opts).await
    }

    /// The change log after `after` (0: from its first entry), of `tables` (all when empty),
    /// followed as commits land. Needs a mirror synced with `changes(true)`.
    pub fn changes(&self, after: i64, tables: &[&str]) -> ChangeStream {
        ChangeStream::follow(self.path.clone(), after, tables)
    }
}
