//! The change log as an async stream of entries, followed as the sync commits them.
//!
//! A thread of its own reads the log through a read-only connection (polled every few
//! milliseconds, as `vtmirror changes --follow` does), so neither the caller's runtime nor
//! the sync's writer ever waits on it. The channel between them is bounded: a slow consumer
//! holds the reader back, never memory.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::mirror::change_log::feed::{Entry, Feed};
use crate::mirror::store::open_read_only;

/// How often the log is looked at for new entries.
const POLL: Duration = Duration::from_millis(5);
/// Entries read per query, and entries waiting in the channel at most.
const PAGE: usize = 1000;

/// One change-log entry: a row change (`insert`, `update`, `delete`) or a marker
/// (`truncate`, `schema`, `resync`, `drop`, `rename`), as `vtmirror changes` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Gap-free, increasing in commit order: store it with the change's effect and resume
    /// after it (`Mirror::changes(seq, …)`) for exactly-once.
    pub seq: i64,
    /// The table as the mirror names it.
    pub table: String,
    pub op: String,
    /// The whole entry (`key`, `after`, `before`, `position`, `timestamp`, …), in the
    /// encoding the README documents.
    pub entry: Json,
}

impl Change {
    fn of(entry: Entry) -> Change {
        let text = |name: &str| entry.json[name].as_str().unwrap_or_default().to_string();
        Change {
            seq: entry.seq,
            table: text("table"),
            op: text("op"),
            entry: entry.json,
        }
    }

    /// The primary key's columns and values (null for markers).
    pub fn key(&self) -> &Json {
        &self.entry["key"]
    }

    /// The row after the change (null for deletes and markers).
    pub fn after(&self) -> &Json {
        &self.entry["after"]
    }

    /// The row before the change, where the stream had it.
    pub fn before(&self) -> &Json {
        &self.entry["before"]
    }
}

/// Change-log entries in order, without end; an error (no change log, entries pruned by
/// retention) is the last item.
pub struct ChangeStream {
    entries: mpsc::Receiver<Result<Change>>,
}

impl ChangeStream {
    pub(crate) fn follow(db: PathBuf, after: i64, tables: &[&str]) -> ChangeStream {
        let (tx, entries) = mpsc::channel(PAGE);
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        std::thread::spawn(move || {
            if let Err(e) = read_forever(&db, after, &tables, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        ChangeStream { entries }
    }

    /// The next entry, waiting for it to be committed.
    pub async fn next(&mut self) -> Option<Result<Change>> {
        self.entries.recv().await
    }
}

impl tokio_stream::Stream for ChangeStream {
    type Item = Result<Change>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.entries.poll_recv(cx)
    }
}

/// Sends entries after `after` until the receiver is gone (Ok) or reading fails (Err).
fn read_forever(
    db: &std::path::Path,
    mut after: i64,
    tables: &[String],
    tx: &mpsc::Sender<Result<Change>>,
) -> Result<()> {
    let conn = open_read_only(db)?;
    let mut feed = Feed::open(&conn)?;
    loop {
        let entries = feed.read(after, PAGE, tables)?;
        let full = entries.len() == PAGE;
        for entry in entries {
            after = entry.seq;
            if tx.blocking_send(Ok(Change::of(entry))).is_err() {
                return Ok(());
            }
        }
        if !full {
            if tx.is_closed() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}
