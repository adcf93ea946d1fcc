//! The change log (`sync --changes`): every change the writer makes to a mirrored table,
//! written in the same SQLite transaction as the change and the checkpoint.
//!
//! Why it can never disagree with the tables: entries are not derived from the stream but
//! written by SQLite itself, by triggers on each mirrored table (TEMP triggers: only the
//! writer's connection has them), as each row is inserted, updated or deleted. Whatever the
//! mirror does with a row change (a row moving between shards that only replaces another
//! shard's version, a delete that brings a kept version back, a shard's TRUNCATE that
//! removes only that shard's rows) is logged as what it did to the table, in the order it
//! did it, in the transaction that did it.
//!
//! What rows cannot say is a marker, written where the mirror changes a table as a whole
//! (`mark`): a schema change (the table was created or its layout changed; its triggers are
//! made anew for the new columns), a drop, a rename, a whole table's truncate (its deletes
//! are then not logged one by one) and a resync (a table replaced by a re-copy, followed by
//! an insert of each of its rows).
//!
//! `seq` is gap-free and follows commit order: one writer appends with max(seq) + 1, a
//! rollback takes its entries with it, and pruning (`retention`) keeps the newest entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OptionalExtension};

pub mod feed;
pub mod image;
mod marker;
pub mod retention;
mod triggers;

pub use marker::{mark, Marker};

use crate::source::proto::binlogdata::VGtid;
use crate::source::table_schema::METADATA_PREFIX;
use retention::Retention;

/// Entry kinds, as stored in `_vtmirror_changes.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Insert = 1,
    Update = 2,
    Delete = 3,
    Truncate = 10,
    Schema = 11,
    Resync = 12,
    Drop = 13,
    Rename = 14,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Insert,
        Op::Update,
        Op::Delete,
        Op::Truncate,
        Op::Schema,
        Op::Resync,
        Op::Drop,
        Op::Rename,
    ];

    pub fn from_code(code: i64) -> Option<Op> {
        Op::ALL.into_iter().find(|op| *op as i64 == code)
    }

    /// The name the feed prints.
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
            Op::Schema => "schema",
            Op::Resync => "resync",
            Op::Drop => "drop",
            Op::Rename => "rename",
        }
    }
}

/// What the triggers' functions and the writer share (one thread uses it).
struct Inner {
    /// The source transaction the next entries belong to.
    tx: i64,
    /// Whether entries of `tx` were written without its `_vtmirror_change_tx` row yet.
    tx_open: bool,
    /// A table whose whole truncate was marked: its deletes in this step are that truncate.
    muted: Option<String>,
    /// Table → its `_vtmirror_change_columns` id under the current layout.
    columns: HashMap<String, i64>,
    /// When entries were last pruned.
    pruned_at: Option<Instant>,
    /// The mirror's first copy has not completed: nothing is logged until it has, and then
    /// each table whole (see `copy_completed`).
    dormant: bool,
}

/// Pruning runs at most this often (each commit would be wasted work at 20k commits/s).
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// The writer connection's change log, while it is on.
pub struct ChangeLog {
    inner: Arc<Mutex<Inner>>,
    retention: Retention,
}

/// Connections with a change log, by SQLite handle: `mark` is called deep in the DDL code
/// with only the connection at hand.
static LOGS: Mutex<Vec<(usize, Weak<Mutex<Inner>>)>> = Mutex::new(Vec::new());

fn handle_of(conn: &Connection) -> usize {
    // SAFETY: the pointer is only compared, never dereferenced.
    unsafe { conn.handle() as usize }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the table is one of the mirror's (not vtmirror's own, not SQLite's).
pub fn is_mirrored(table: &str) -> bool {
    !table.starts_with(METADATA_PREFIX) && !table.starts_with("sqlite_")
}

impl ChangeLog {
    /// Starts logging every change `conn` makes to a mirrored table: the triggers' functions,
    /// then a trigger set on every table the file holds.
    pub fn install(conn: &Connection, retention: Retention) -> Result<ChangeLog> {
        let last_tx: Option<i64> = conn
            .query_row("SELECT max(tx) FROM _vtmirror_change_tx", [], |r| r.get(0))
            .context("reading the change log's last transaction")?;
        let logging = is_logging(conn)?;
        let inner = Arc::new(Mutex::new(Inner {
            tx: last_tx.unwrap_or(0) + 1,
            tx_open: false,
            muted: None,
            columns: HashMap::new(),
            pruned_at: None,
            dormant: !logging,
        }));
        register_functions(conn, &inner)?;
        if logging {
            for table in triggers::mirrored_tables(conn)? {
                let cols = columns_id(conn, &mut lock(&inner), &table)?;
                triggers::create(conn, &table, cols)?;
            }
        }
        let mut logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
        logs.retain(|(_, log)| log.strong_count() > 0);
        logs.push((handle_of(conn), Arc::downgrade(&inner)));
        Ok(ChangeLog { inner, retention })
    }

    /// A writer step ended: a marked truncate's deletes are over.
    pub fn step_done(&self) {
        lock(&self.inner).muted = None;
    }

    /// A source transaction ended: its entries get its position (the newest checkpoint of
    /// the open SQLite transaction, else the stored one) and time.
    pub fn end_transaction(
        &self,
        conn: &Connection,
        position: Option<&VGtid>,
        event_time: i64,
    ) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.muted = None;
        let position = position.map(crate::source::vgtid::encode);
        close_transaction(conn, &mut inner, position, event_time)
    }

    /// Before COMMIT: entries written outside a source transaction (a table copy swapped in,
    /// tables dropped at start-up) get the checkpoint the commit stores; then entries the
    /// retention no longer keeps go, at most every few seconds.
    pub fn before_commit(&self, conn: &Connection) -> Result<()> {
        let mut inner = lock(&self.inner);
        close_transaction(conn, &mut inner, None, 0)?;
        let due = inner.pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        if !self.retention.keeps_everything() && due {
            retention::prune(conn, &self.retention, now_ms())?;
            inner.pruned_at = Some(Instant::now());
        }
        Ok(())
    }

    /// The mirror's first copy completed (in the open SQLite transaction): every table is
    /// logged whole, as it stands at this commit (a resync each), and from here on every
    /// change. Logging the copy as it streams would cost a trigger per copied row and show a
    /// consumer the copy's interleaving with its catch-up; the tables at completion are the
    /// same rows, read at SQLite's speed.
    pub fn copy_completed(&self, conn: &Connection) -> Result<()> {
        if !std::mem::replace(&mut lock(&self.inner).dormant, false) {
            return Ok(());
        }
        crate::mirror::metadata::set_status(conn, LOGGING_KEY, "1")?;
        for table in triggers::mirrored_tables(conn)? {
            mark(conn, Marker::Resync { table: &table })?;
        }
        Ok(())
    }

    /// The mirror runs no first copy (it started at a position): log from now on, every
    /// table whole first (a resync each), in a transaction of its own.
    pub fn wake(&self, conn: &Connection) -> Result<()> {
        if !lock(&self.inner).dormant {
            return Ok(());
        }
        let tx = conn.unchecked_transaction()?;
        self.copy_completed(&tx)?;
        self.before_commit(&tx)?;
        tx.commit().context("starting the change log")
    }

    /// The open SQLite transaction rolled back: its entries went with it.
    pub fn discard(&self, conn: &Connection) {
        let mut inner = lock(&self.inner);
        // A rolled-back completion of the copy: the log sleeps again (its triggers went too).
        inner.dormant = !is_logging(conn).unwrap_or(false);
        inner.tx_open = false;
        inner.muted = None;
        inner.columns.clear();
    }
}

/// Status key: "on" once a sync of the file ran with `--changes` (it then stays on).
pub const STATUS_KEY: &str = "changes";

/// Status key: "1" once the log records changes (its first copy completed, or it ran none).
const LOGGING_KEY: &str = "changes_logging";

fn is_logging(conn: &Connection) -> Result<bool> {
    Ok(crate::mirror::metadata::status(conn, LOGGING_KEY)?.as_deref() == Some("1"))
}

/// Turns the change log on for this sync when asked, or when an earlier sync turned it on
/// (a sync without the flag must not leave a silent gap), and applies the retention. The first time, on a mirror that
/// already holds rows, every table is logged whole (a resync each), so a consumer starting
/// at the first entry rebuilds every table.
pub fn enable(conn: &Connection, asked: bool, retention: Retention) -> Result<Option<ChangeLog>> {
    let on = crate::mirror::metadata::status(conn, STATUS_KEY)?.as_deref() == Some("on");
    if !asked && !on {
        return Ok(None);
    }
    if !asked {
        tracing::info!("the change log stays on: an earlier sync of this mirror turned it on");
    }
    let log = ChangeLog::install(conn, retention)?;
    if on && !retention.keeps_everything() {
        // Retention applies from the start, not only every few seconds of a running sync.
        let tx = conn.unchecked_transaction()?;
        retention::prune(&tx, &retention, now_ms())?;
        tx.commit().context("pruning the change log")?;
    }
    if !on {
        // It logs from the first copy's completion (or, with no copy to run, from the first
        // stream), every table whole first.
        crate::mirror::metadata::set_status(conn, STATUS_KEY, "on")?;
    }
    Ok(Some(log))
}

/// `vtmirror_tx()` numbers each entry's source transaction; `vtmirror_image(…)` encodes a
/// row image; `vtmirror_join(…)` joins the images of a wide table's column groups;
/// `vtmirror_logs_deletes(table)` is false while a marked truncate removes the table's rows.
fn register_functions(conn: &Connection, inner: &Arc<Mutex<Inner>>) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let numbering = Arc::clone(inner);
    conn.create_scalar_function("vtmirror_tx", 0, flags, move |_| {
        let mut inner = lock(&numbering);
        inner.tx_open = true;
        Ok(inner.tx)
    })?;
    let deterministic = flags | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("vtmirror_image", -1, deterministic, |ctx| {
        let mut out = Vec::with_capacity(16 * ctx.len());
        for i in 0..ctx.len() {
            image::push(ctx.get_raw(i), &mut out);
        }
        Ok(out)
    })?;
    conn.create_scalar_function("vtmirror_join", -1, deterministic, |ctx| {
        let mut out = Vec::new();
        for i in 0..ctx.len() {
            if let rusqlite::types::ValueRef::Blob(part) = ctx.get_raw(i) {
                out.extend_from_slice(part);
            }
        }
        Ok(out)
    })?;
    let muting = Arc::clone(inner);
    conn.create_scalar_function("vtmirror_logs_deletes", 1, flags, move |ctx| {
        let table = ctx.get_raw(0).as_str().unwrap_or_default();
        Ok(lock(&muting).muted.as_deref() != Some(table))
    })
    .context("registering the change log's functions")
}

fn close_transaction(
    conn: &Connection,
    inner: &mut Inner,
    position: Option<Vec<u8>>,
    event_time: i64,
) -> Result<()> {
    if !inner.tx_open {
        return Ok(());
    }
    let (position, event_time) = match position {
        Some(position) => (position, event_time),
        None => conn
            .query_row(
                "SELECT coalesce(vgtid, x''), event_time FROM _vtmirror_checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or_default(),
    };
    conn.prepare_cached(
        "INSERT INTO _vtmirror_change_tx (tx, position, event_time, committed_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![inner.tx, position, event_time, now_ms()])
    .context("recording a change log transaction")?;
    inner.tx += 1;
    inner.tx_open = false;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The id of `table`'s current column list, added on first use.
fn columns_id(conn: &Connection, inner: &mut Inner, table: &str) -> Result<i64> {
    if let Some(id) = inner.columns.get(table) {
        return Ok(*id);
    }
    let columns = triggers::columns(conn, table)?;
    let json = serde_json::Value::Array(columns.iter().map(|c| c.json()).collect()).to_string();
    let id = conn
        .prepare_cached(
            "INSERT INTO _vtmirror_change_columns (table_name, columns) VALUES (?1, ?2)
             ON CONFLICT (table_name, columns) DO UPDATE SET table_name = excluded.table_name
             RETURNING id",
        )?
        .query_row(params![table, json], |r| r.get(0))
        .with_context(|| format!("recording the columns of table {table} in the change log"))?;
    inner.columns.insert(table.to_string(), id);
    Ok(id)
}

fn log_of(conn: &Connection) -> Option<Arc<Mutex<Inner>>> {
    let handle = handle_of(conn);
    let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
    // A closed connection's handle can come back for a new one: only a live log counts.
    logs.iter()
        .filter(|(h, _)| *h == handle)
        .find_map(|(_, log)| log.upgrade())
}

#[cfg(test)]
mod tests;
