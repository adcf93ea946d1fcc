//! Markers: what rows cannot say (a table truncated, created or altered, replaced by a
//! re-copy, dropped or renamed), written where the mirror changes a table as a whole.

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use super::{columns_id, is_mirrored, lock, log_of, triggers, Inner, Op};

/// A change to a table as a whole.
#[derive(Debug, Clone, Copy)]
pub enum Marker<'a> {
    /// Called before the rows go. `shard`: only that shard's rows go (their deletes follow).
    Truncate {
        table: &'a str,
        shard: Option<&'a str>,
    },
    /// Called after the table was created or its layout changed.
    Schema { table: &'a str },
    /// Called after a re-copy replaced the table: its rows follow as inserts.
    Resync { table: &'a str },
    /// Called before the table is dropped.
    Drop { table: &'a str },
    /// Called after the table was renamed.
    Rename { from: &'a str, to: &'a str },
}

/// Writes a marker if `conn` has a change log, after every entry before it.
pub fn mark(conn: &Connection, marker: Marker<'_>) -> Result<()> {
    let Some(inner) = log_of(conn) else {
        return Ok(());
    };
    let (op, table, detail) = match marker {
        Marker::Truncate { table, shard } => {
            let detail = shard.map(|s| serde_json::json!({"shard": s}).to_string());
            (Op::Truncate, table, detail)
        }
        Marker::Schema { table } => (Op::Schema, table, None),
        Marker::Resync { table } => (Op::Resync, table, None),
        Marker::Drop { table } => (Op::Drop, table, None),
        Marker::Rename { from, to } => {
            let detail = Some(serde_json::json!({"to": to}).to_string());
            (Op::Rename, from, detail)
        }
    };
    if !is_mirrored(table) {
        // A table copy's shadow swapped in is the table's resync.
        if let Marker::Rename { to, .. } = marker {
            return mark(conn, Marker::Resync { table: to });
        }
        return Ok(());
    }
    let mut inner = lock(&inner);
    if inner.dormant {
        return Ok(());
    }
    if matches!(marker, Marker::Schema { .. } | Marker::Resync { .. }) {
        inner.columns.remove(table);
    }
    let cols = columns_id(conn, &mut inner, table)?;
    append_marker(conn, &mut inner, op, cols, detail.as_deref())?;
    match marker {
        Marker::Truncate { shard: None, .. } => inner.muted = Some(table.to_string()),
        Marker::Schema { .. } => triggers::create(conn, table, cols)?,
        Marker::Resync { .. } => {
            triggers::snapshot(conn, table, inner.tx, cols)?;
            triggers::create(conn, table, cols)?;
        }
        Marker::Drop { .. } => {
            inner.columns.remove(table);
        }
        Marker::Truncate { .. } => {}
        Marker::Rename { to, .. } => {
            inner.columns.remove(table);
            let cols = columns_id(conn, &mut inner, to)?;
            triggers::create(conn, to, cols)?;
        }
    }
    Ok(())
}

fn append_marker(
    conn: &Connection,
    inner: &mut Inner,
    op: Op,
    cols: i64,
    detail: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO _vtmirror_changes (tx, op, cols, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![inner.tx, op as i64, cols, detail])
    .context("appending a marker to the change log")?;
    inner.tx_open = true;
    Ok(())
}
