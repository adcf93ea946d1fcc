//! Whether the first copy delivered every table the filter selects.
//!
//! Why it can miss one: vttablet plans a copy from the tables its schema engine knows, and a
//! replica's engine learns a new table only at its next schema reload (vttestserver: every
//! ~60 s; a lagging replica: later still). A copy started right after `CREATE TABLE` then
//! copies every table but that one, and the table's later row changes (which vttablet sends,
//! the table being outside its copy plan) would create it holding only the rows written
//! after it appeared.
//!
//! How it is made exact: the commit that records the copy's completion (`on_copy_completed`,
//! same transaction) drops each table that stream events made rather than the copy (`gaps`
//! over the tables the file holds) and requests a table copy of it (`table_copy`, reason
//! `missing`), so readers never see such a table once the copy shows complete; it also
//! records that a check is due. The sync stops that stream right there, so no event after
//! the copy is applied before the check, which asks vtgate for the tables the filter selects
//! and does the same for those of which nothing arrived (absent from the file meanwhile),
//! then clears the mark, in one transaction. A kill before that commit finds the mark again
//! at the next start; after it, the copies resume like any table copy. A table copy starts
//! at the stored checkpoint and vttablet holds the table's events back until it copied the
//! table, so the rows dropped here come back with the copy.
//!
//! Which tables the copy delivered: those whose FIELD event came from the copy (timestamp
//! 0) on every shard; only such an event records a copy state. A table built from binlog
//! events during the copy has none, so an interrupted copy never resumes it from the
//! largest key those events wrote (`resume`), which would skip every older row.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};

use crate::mirror::metadata;
use crate::mirror::schema;
use crate::mirror::table_copy::{self, Reason};
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::VGtid;

/// The `_vtmirror_status` key that holds the mark while a check is due.
const KEY: &str = "tables_check";

/// Inside the transaction that records the first copy's completion: replaces each table
/// the file holds that the copy did not deliver whole by a pending copy of it, and records
/// that a check is due (for the tables of which nothing arrived). Returns the tables dropped.
pub fn on_copy_completed(tx: &Connection) -> Result<Vec<String>> {
    metadata::set_status(tx, KEY, "due")?;
    let Some(vgtid) = metadata::load_checkpoint(tx)?.vgtid else {
        return Ok(Vec::new());
    };
    let naming = Naming::of_label(&metadata::source_label(tx)?.unwrap_or_default());
    // Every table the file holds: by copy (a copy state) or by binlog events alone (fields).
    let copied = metadata::copy_states(tx)?.into_iter().map(|s| s.table);
    let streamed = metadata::load_fields(tx)?.into_keys();
    let held: BTreeSet<String> = (copied.chain(streamed))
        .filter(|t| schema::table_of_shadow(t).is_none())
        .collect();
    let missing = gaps(tx, &naming, &vgtid, &held)?;
    replace_by_copies(tx, &naming, &vgtid, &missing)?;
    if !missing.is_empty() {
        tracing::warn!(tables = ?missing, "the copy did not deliver these tables whole (a tablet that had not loaded them yet?); copying them now");
    }
    Ok(missing)
}

/// Drops what stream events made of `tables` (readers see each once its copy completes)
/// and requests a copy of each, inside the caller's transaction.
pub fn replace_by_copies(
    tx: &Connection,
    naming: &Naming,
    stored: &VGtid,
    tables: &[String],
) -> Result<()> {
    for table in tables {
        crate::mirror::ddl::drop_table(tx, table)
            .with_context(|| format!("dropping the incomplete table {table}"))?;
    }
    table_copy::request(tx, naming, stored, tables, Reason::Missing)
}

/// Whether a check is due.
pub fn check_due(conn: &Connection) -> Result<bool> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM _vtmirror_status WHERE key = ?1",
            [KEY],
            |r| r.get(0),
        )
        .optional()
        .context("reading whether the copy's tables are checked")?;
    Ok(value.as_deref() == Some("due"))
}

/// Clears the mark inside the caller's transaction.
pub fn checked(tx: &Connection) -> Result<()> {
    tx.execute("DELETE FROM _vtmirror_status WHERE key = ?1", [KEY])
        .context("recording that the copy's tables are checked")?;
    Ok(())
}

/// The tables of `expected` (mirror names) that the first copy did not deliver on every
/// shard of their keyspace (`stored` names the shards), whether or not binlog events made
/// them since.
///
/// vttablet's copy sends a table's FIELD event first, even when the table is empty, with
/// timestamp 0, and the writer records a copy state for each such event only (a binlog
/// FIELD event carries its event's time), so a copied table has a copy state on every
/// shard and a table the copy missed has none on that shard.
pub fn gaps(
    conn: &Connection,
    naming: &Naming,
    stored: &VGtid,
    expected: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut states: BTreeMap<String, Vec<metadata::CopyState>> = BTreeMap::new();
    for state in metadata::copy_states(conn)? {
        states.entry(state.table.clone()).or_default().push(state);
    }
    let pending: BTreeSet<String> = (table_copy::pending(conn)?.into_iter())
        .map(|c| c.table)
        .collect();
    let mut out = Vec::new();
    for table in expected.difference(&pending) {
        let Some((keyspace, _)) = naming.split_table(table) else {
            continue;
        };
        let shards: BTreeSet<String> = (stored.shard_gtids.iter())
            .filter(|s| s.keyspace == keyspace)
            .map(|s| naming.shard(&s.keyspace, &s.shard).into_owned())
            .collect();
        let held = states.get(table).map(Vec::as_slice).unwrap_or_default();
        let every_shard = shards.iter().all(|s| held.iter().any(|h| &h.shard == s));
        if held.is_empty() || !every_shard {
            out.push(table.clone());
        }
    }
    Ok(out)
}
