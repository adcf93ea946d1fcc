//! `vtmirror changes`: the mirror's change log as NDJSON, one entry per line, from a `seq`
//! on; with `follow`, new entries as their commits land (polled every few milliseconds,
//! through a read-only connection that never blocks the sync's writer).
//!
//! The exactly-once pattern for a consumer: apply each entry and store its `seq` in the same
//! transaction as the effect; after a crash, start again with `--after` that stored `seq`.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::mirror::change_log::feed::Feed;
use crate::mirror::store::open_read_only;
use crate::output::render::output_error;

/// How often `follow` looks for new entries: well inside the 50 ms a commit may take to
/// reach a follower.
const POLL: Duration = Duration::from_millis(5);

/// Entries read per query.
const PAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct ChangesOptions {
    pub db: PathBuf,
    /// Print entries with a larger `seq` (0: from the first).
    pub after: i64,
    pub follow: bool,
    /// Mirror table names; empty: every table.
    pub tables: Vec<String>,
    /// Stop after this many entries.
    pub limit: Option<u64>,
}

/// Prints entries to `out` until the log's end (or `limit`), or with `follow` until
/// `shutdown`.
pub async fn run(
    opts: &ChangesOptions,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let conn = open_read_only(&opts.db)?;
    let mut feed = Feed::open(&conn)?;
    let mut after = opts.after;
    let mut left = opts.limit.unwrap_or(u64::MAX);
    tokio::pin!(shutdown);
    while left > 0 {
        let page = PAGE.min(usize::try_from(left).unwrap_or(PAGE));
        let entries = feed.read(after, page, &opts.tables)?;
        for entry in &entries {
            writeln!(out, "{}", entry.json).map_err(output_error)?;
            after = entry.seq;
        }
        left -= entries.len() as u64;
        out.flush().map_err(output_error)?;
        if entries.len() == page {
            continue;
        }
        if !opts.follow {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    Ok(())
}
