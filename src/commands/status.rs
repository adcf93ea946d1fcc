//! `vtmirror status`: what a mirror file holds and how far behind the source it is, read
//! through a read-only connection in one read transaction (safe while `sync` runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::source::naming::Naming;
use crate::source::vgtid;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::mirror::store::{lock_path, open_read_only};
use crate::mirror::timestamp::format_utc;
use crate::output::render::{count, one_line, plain_table, size};
use crate::source::proto::binlogdata::VGtid;
use crate::source::vgtid::row_texts;

#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Mirror file.
    pub db: PathBuf,
    /// Print one JSON object instead of text.
    pub json: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub file: String,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    pub keyspace: Option<String>,
    /// starting, copying, replicating, stopped or failed (a sync that died without a clean
    /// stop shows as stopped).
    pub state: String,
    /// `state` as the last sync wrote it.
    pub stored_state: Option<String>,
    /// Whether a sync holds the file's lock now (None when that cannot be told).
    pub sync_running: Option<bool>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub copy_completed: bool,
    pub transactions: i64,
    /// Seconds behind the source, while replicating.
    pub lag_seconds: Option<i64>,
    /// Binlog time of the last applied transaction.
    pub last_event_time: Option<String>,
    /// vtgate time of the newest heartbeat.
    pub last_heartbeat_time: Option<String>,
    pub last_commit_at: Option<String>,
    pub checkpoint: Vec<ShardPosition>,
    pub copy: Vec<TableCopy>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShardPosition {
    pub keyspace: String,
    pub shard: String,
    pub gtid: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableCopy {
    pub table: String,
    /// "first copy", or why the table is copied on its own: added, re-copy, re-copy after DDL.
    pub copy: String,
    pub shard: String,
    pub rows_copied: i64,
    /// The last primary key copied, while the table's copy is in progress on the shard.
    pub last_pk: Option<String>,
    pub done: bool,
}

/// Reads the status of the mirror at `db`; `now` is the current time in seconds.
pub fn read(db: &Path, now: i64) -> Result<Status> {
    let conn = open_read_only(db)?;
    let tx = conn
        .unchecked_transaction()
        .context("starting a read transaction")?;
    let mut status = read_tables(&tx, now)?;
    tx.finish().context("ending the read transaction")?;
    status.file = db.display().to_string();
    status.file_bytes = file_len(db);
    status.wal_bytes = file_len(&with_suffix(db, "-wal"));
    status.sync_running = sync_running(db);
    status.state = effective_state(status.stored_state.as_deref(), status.sync_running);
    if status.state != "replicating" {
        status.lag_seconds = None;
    }
    Ok(status)
}

fn read_tables(conn: &Connection, now: i64) -> Result<Status> {
    let kv = status_values(conn)?;
    let value = |key: &str| kv.get(key).map(|(v, _)| v.clone());
    let heartbeat: i64 = value("heartbeat_time")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cp = read_checkpoint(conn)?;
    let keyspace = crate::mirror::metadata::source_label(conn)?;
    let naming = Naming::of_label(keyspace.as_deref().unwrap_or_default());
    let newest = cp.event_time.max(heartbeat);
    let vgtid = cp.vgtid.unwrap_or_default();
    Ok(Status {
        file: String::new(),
        file_bytes: 0,
        wal_bytes: 0,
        keyspace,
        state: String::new(),
        stored_state: value("state"),
        sync_running: None,
        last_error: value("last_error").filter(|e| !e.is_empty()),
        last_error_at: kv.get("last_error").map(|(_, at)| at.clone()),
        copy_completed: cp.copy_completed,
        transactions: cp.transactions,
        lag_seconds: (newest > 0).then(|| (now - newest).max(0)),
        last_event_time: (cp.event_time > 0).then(|| format_utc(cp.event_time, 0)),
        last_heartbeat_time: (heartbeat > 0).then(|| format_utc(heartbeat, 0)),
        last_commit_at: cp.committed_at,
        checkpoint: positions(&vgtid),
        copy: copy_progress(conn, &vgtid, &naming)?,
    })
}

fn status_values(conn: &Connection) -> Result<BTreeMap<String, (String, String)>> {
    let mut stmt = conn.prepare("SELECT key, value, updated_at FROM _vtmirror_status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading _vtmirror_status")
}

#[derive(Default)]
struct CheckpointRow {
    vgtid: Option<VGtid>,
    copy_completed: bool,
    transactions: i64,
    event_time: i64,
    committed_at: Option<String>,
}

fn read_checkpoint(conn: &Connection) -> Result<CheckpointRow> {
    let row = conn
        .query_row(
            "SELECT vgtid, copy_completed, transactions, event_time, committed_at
             FROM _vtmirror_checkpoint WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            },
        )
        .optional()
        .context("reading the checkpoint")?;
    let Some((bytes, copy_completed, transactions, event_time, committed_at)) = row else {
        return Ok(CheckpointRow::default());
    };
    Ok(CheckpointRow {
        vgtid: Some(vgtid::decode(&bytes)?),
        copy_completed,
        transactions,
        event_time,
        committed_at: Some(committed_at),
    })
}

fn positions(vgtid: &VGtid) -> Vec<ShardPosition> {
    vgtid
        .shard_gtids
        .iter()
        .map(|s| ShardPosition {
            keyspace: s.keyspace.clone(),
            shard: s.shard.clone(),
            gtid: s.gtid.clone(),
        })
        .collect()
}

fn copy_progress(conn: &Connection, vgtid: &VGtid, naming: &Naming) -> Result<Vec<TableCopy>> {
    let mut stmt = conn.prepare(
        "SELECT table_name, shard, rows_copied, completed FROM _vtmirror_copy_state
         ORDER BY table_name, shard",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TableCopy {
            table: r.get(0)?,
            copy: "first copy".into(),
            shard: r.get(1)?,
            rows_copied: r.get(2)?,
            last_pk: None,
            done: r.get(3)?,
        })
    })?;
    let mut tables = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading _vtmirror_copy_state")?;
    let single = crate::mirror::table_copy::pending(conn).unwrap_or_default();
    for t in &mut tables {
        if let Some(copy) = single.iter().find(|c| c.shadow == t.table) {
            t.table = copy.table.clone();
            t.copy = copy.reason.clone();
        }
        t.last_pk = (!t.done)
            .then(|| last_pk(vgtid, naming, &t.shard, &t.table))
            .flatten();
    }
    Ok(tables)
}

/// `col=value, …` of the table's last copied key on the shard (metadata key, mirror table
/// name: `mirror::naming`), from the checkpoint.
fn last_pk(vgtid: &VGtid, naming: &Naming, shard: &str, table: &str) -> Option<String> {
    let entry = (vgtid.shard_gtids.iter())
        .filter(|s| naming.shard(&s.keyspace, &s.shard) == shard)
        .flat_map(|s| s.table_p_ks.iter().map(move |t| (&s.keyspace, t)))
        .find(|(keyspace, t)| naming.table(keyspace, &t.table_name) == table)
        .map(|(_, t)| t)?;
    let result = entry.lastpk.as_ref()?;
    let values = result.rows.first().map(row_texts).unwrap_or_default();
    let pairs: Vec<String> = result
        .fields
        .iter()
        .zip(values)
        .map(|(f, v)| format!("{}={}", f.name, v.as_str().unwrap_or("NULL")))
        .collect();
    Some(pairs.join(", "))
}

/// A sync that is not running cannot be copying or replicating, whatever it wrote last.
fn effective_state(stored: Option<&str>, running: Option<bool>) -> String {
    match (stored, running) {
        (None, _) => "new".into(),
        (Some("starting" | "copying" | "replicating"), Some(false)) => "stopped".into(),
        (Some(state), _) => state.into(),
    }
}

/// Probes the sync lock with a shared lock, released at once (a sync holds it exclusively).
pub(crate) fn sync_running(db: &Path) -> Option<bool> {
    let path = lock_path(db);
    let Ok(file) = std::fs::File::open(&path) else {
        return Some(false);
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Some(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `vtmirror status`: prints the status as text or JSON.
pub fn run(args: &StatusOptions, out: &mut dyn std::io::Write) -> Result<()> {
    let status = read(&args.db, now_secs())?;
    let text = if args.json {
        serde_json::to_string_pretty(&status).context("encoding the status as JSON")?
    } else {
        text(&status)
    };
    writeln!(out, "{text}").map_err(crate::output::render::output_error)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The human-readable status.
pub fn text(s: &Status) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let running = match s.sync_running {
        Some(true) => " (sync running)",
        Some(false) => " (no sync running)",
        None => "",
    };
    let mut lines = vec![
        format!(
            "mirror          {} ({}, WAL {})",
            s.file,
            size(s.file_bytes),
            size(s.wal_bytes)
        ),
        format!("keyspace        {}", keyspace_text(s.keyspace.as_deref())),
        format!("state           {}{running}", s.state),
        format!("lag             {}", lag_text(s)),
        format!("last event      {}", or_dash(&s.last_event_time)),
        format!("last heartbeat  {}", or_dash(&s.last_heartbeat_time)),
        format!("last commit     {}", or_dash(&s.last_commit_at)),
        format!("transactions    {}", count(s.transactions.max(0) as u64)),
    ];
    if let Some(error) = &s.last_error {
        let at = or_dash(&s.last_error_at);
        lines.push(format!("last error      {} (at {at})", one_line(error)));
    }
    lines.push("checkpoint".into());
    for p in &s.checkpoint {
        let gtid = if p.gtid.is_empty() {
            "(copy starting)"
        } else {
            &p.gtid
        };
        lines.push(format!("  {}/{}  {gtid}", p.keyspace, p.shard));
    }
    let single = (s.copy.iter())
        .filter(|t| t.copy != "first copy" && !t.done)
        .map(|t| t.table.as_str())
        .collect::<std::collections::BTreeSet<_>>();
    let copy = match (s.copy_completed, single.len()) {
        (false, _) => "in progress".to_string(),
        (true, 0) => "completed".to_string(),
        (true, _) => format!(
            "completed; copying {} (readers see the old table until done)",
            single.into_iter().collect::<Vec<_>>().join(", ")
        ),
    };
    lines.push(format!("copy            {copy}"));
    if !s.copy.is_empty() {
        lines.push(indent(&copy_table(&s.copy)));
    }
    lines.join("\n")
}

/// The source label, with what it means for table names and shards.
fn keyspace_text(label: Option<&str>) -> String {
    let Some(label) = label else {
        return "-".into();
    };
    match (label.split_once('/'), Naming::of_label(label)) {
        (Some((keyspace, shards)), _) => format!("{keyspace} (key range: shards {shards})"),
        (None, Naming::Qualified) => format!("{label} (tables named keyspace.table)"),
        (None, Naming::Bare(_)) => label.to_string(),
    }
}

fn lag_text(s: &Status) -> String {
    match s.lag_seconds {
        Some(lag) => format!("{lag} s behind the source"),
        None if s.state == "copying" => "- (copying)".into(),
        None => "-".into(),
    }
}

fn copy_table(tables: &[TableCopy]) -> String {
    let header: Vec<String> = ["table", "copy", "shard", "rows copied", "last pk", "done"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.copy.clone(),
                t.shard.clone(),
                count(t.rows_copied.max(0) as u64),
                t.last_pk.clone().unwrap_or_else(|| "-".into()),
                if t.done { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    plain_table(&header, &rows)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {}", l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_that_died_is_reported_stopped_not_replicating() {
        assert_eq!(effective_state(Some("replicating"), Some(false)), "stopped");
        assert_eq!(
            effective_state(Some("replicating"), Some(true)),
            "replicating"
        );
        assert_eq!(effective_state(Some("failed"), Some(false)), "failed");
        assert_eq!(effective_state(None, Some(false)), "new");
    }
}
