//! Table copies: one table copied (again) while every other table keeps replicating.
//!
//! A mirror's first copy loads every selected table. Later, a table can need a copy of its
//! own: it was added to the selection, the user asked for a re-copy, or a source DDL rewrote
//! its values without row events. Copying the whole keyspace again for that would take as
//! long as the first copy; VStream can copy single tables instead.
//!
//! How vttablet (v23+) does it, and why it is exactly once here: a shard's position with
//! `table_p_ks` entries makes vttablet catch up from that position and then copy the listed
//! tables (an entry without a last PK from the start), and `VStreamFlags.tables_to_copy`
//! keeps it from copying any other table the filter matches. Events of the other tables
//! pass through as in replication; events of a table being copied are only sent for rows
//! already copied. The VGtid of every commit carries the copy's last PKs, so a restart
//! resumes the copy where it stopped (`resume`), as for the first copy.
//!
//! Readers never see a half-copied table: the copy goes into a hidden table (the shadow,
//! `_vtmirror_copy_<table>`; the writer sends the table's rows there, `Writer::target`),
//! readers keep the old table, frozen where the copy began, and the commit that records the
//! last shard's COPY_COMPLETED renames the shadow over the table (`finish_completed`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};

use crate::mirror::metadata::{self, Ceiling, CopyState};
use crate::mirror::schema::{quote, shadow_of};
use crate::mirror::timestamp::now_text;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{TableLastPk, VGtid};
use crate::source::table_schema::TableSchema;

/// Why a table is copied on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It joined the selection of an existing mirror.
    Added,
    /// `sync --recopy`.
    Requested,
    /// A source DDL the stream cannot follow (`sync --recopy-on-ddl`).
    Ddl,
    /// The first copy did not deliver it (`mirror::copy_check`).
    Missing,
    /// Its rule's row filter changed: the rows the mirror holds were chosen by the old one.
    Filter,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Added => "added",
            Reason::Requested => "re-copy",
            Reason::Ddl => "re-copy after DDL",
            Reason::Missing => "missing from the copy",
            Reason::Filter => "re-copy: its row filter changed",
        }
    }
}

/// A table copy that has not finished on every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub shadow: String,
    pub reason: String,
}

/// Every unfinished table copy.
pub fn pending(conn: &Connection) -> Result<Vec<TableCopy>> {
    let mut stmt = conn.prepare(
        "SELECT table_name, shadow, reason FROM _vtmirror_table_copy ORDER BY table_name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TableCopy {
            table: r.get(0)?,
            shadow: r.get(1)?,
            reason: r.get(2)?,
        })
    })?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading the pending table copies")
}

/// Records a copy of each table (mirror names) inside the caller's transaction: on every
/// shard of its keyspace in `stored`, from the start. A copy already pending goes on (the
/// same `--recopy` after a restart resumes it), except after a DDL: that one starts over.
pub fn request(
    tx: &Connection,
    naming: &Naming,
    stored: &VGtid,
    tables: &[String],
    reason: Reason,
) -> Result<()> {
    let pending: Vec<TableCopy> = pending(tx)?;
    for table in tables {
        // A pending copy made under a filter or a schema that has since changed restarts.
        let restart = matches!(reason, Reason::Ddl | Reason::Filter);
        if !restart && pending.iter().any(|c| &c.table == table) {
            continue;
        }
        let Some((keyspace, _)) = naming.split_table(table) else {
            bail!("table {table} names no keyspace");
        };
        let shards: Vec<String> = (stored.shard_gtids.iter())
            .filter(|s| s.keyspace == keyspace)
            .map(|s| naming.shard(&s.keyspace, &s.shard).into_owned())
            .collect();
        if shards.is_empty() {
            bail!("keyspace {keyspace} of table {table} is not in the stored checkpoint");
        }
        let shadow = shadow_of(table);
        discard_shadow(tx, &shadow)?;
        tx.execute(
            "INSERT INTO _vtmirror_table_copy (table_name, shadow, reason, requested_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![table, shadow, reason.name(), now_text()],
        )
        .with_context(|| format!("recording a copy of table {table}"))?;
        for shard in &shards {
            tx.execute(
                "INSERT INTO _vtmirror_copy_state (shard, table_name) VALUES (?1, ?2)",
                params![shard, shadow],
            )?;
        }
    }
    Ok(())
}

/// Forgets a pending copy of `table`, if any, and its shadow (a table dropped from the
/// selection, or a copy requested again).
pub fn cancel(tx: &Connection, table: &str) -> Result<()> {
    discard_shadow(tx, &shadow_of(table))
}

fn discard_shadow(tx: &Connection, shadow: &str) -> Result<()> {
    tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(shadow)))
        .with_context(|| format!("dropping the unfinished copy {shadow}"))?;
    metadata::forget_table(tx, shadow)?;
    tx.execute(
        "DELETE FROM _vtmirror_table_copy WHERE shadow = ?1",
        [shadow],
    )?;
    Ok(())
}

/// Replaces each table whose copy has completed on every shard by its copy, inside the
/// caller's transaction (the one recording the last COPY_COMPLETED). Returns the tables.
pub fn finish_completed(tx: &Connection) -> Result<Vec<String>> {
    let states = metadata::copy_states(tx)?;
    let mut finished = Vec::new();
    for copy in pending(tx)? {
        let mut shards = states.iter().filter(|s| s.table == copy.shadow);
        if !shards.all(|s| s.completed) {
            continue;
        }
        check_delivered(tx, &copy)?;
        crate::mirror::ddl::rename_table(tx, &copy.shadow, &copy.table)?;
        tx.execute(
            "UPDATE _vtmirror_copy_state SET completed = 1 WHERE table_name = ?1",
            [&copy.table],
        )?;
        tx.execute(
            "DELETE FROM _vtmirror_table_copy WHERE table_name = ?1",
            [&copy.table],
        )?;
        finished.push(copy.table);
    }
    Ok(finished)
}

/// vttablet's copy of a table sends its FIELD event first, even when the table is empty, so
/// a shard that ended its copy without one did not copy the table (its tablet did not know
/// it). Replacing the table then would leave that shard's rows out: a transient error
/// instead, so the commit holding that COPY_COMPLETED rolls back and the copy is retried.
fn check_delivered(tx: &Connection, copy: &TableCopy) -> Result<()> {
    let fields = metadata::load_fields(tx)?;
    let delivered = fields.get(&copy.shadow);
    let states = metadata::copy_states(tx)?;
    let mut shards = (states.iter()).filter(|s| s.table == copy.shadow);
    if let Some(state) = shards.find(|s| delivered.is_none_or(|d| !d.contains_key(&s.shard))) {
        return Err(crate::error::Transient(format!(
            "the copy of table {} on shard {} ended without sending the table (its tablet \
             does not know it yet); copying it again",
            copy.table, state.shard
        ))
        .into());
    }
    Ok(())
}

/// The request for a mirror whose first copy completed and that has table copies pending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyRequest {
    pub vgtid: VGtid,
    /// Bare names for `VStreamFlags.tables_to_copy`.
    pub tables_to_copy: Vec<String>,
    /// Shard keys that copy: each ends its copy with a COPY_COMPLETED.
    pub shards: BTreeSet<String>,
}

/// The position that continues the pending table copies from `stored` (None: none pending).
///
/// Per shard, each table copy not completed there gets an entry: its stored last PK while
/// in progress, none (from the start) before it began, and after it ended there (the VGtid
/// no longer lists it) a last PK at or above every row the shadow holds, so that vttablet,
/// which copies every table of `tables_to_copy` a shard lists nothing for, copies no row
/// twice and lets the changes to rows already held through. The same ceiling goes to any
/// other table of a copying shard whose bare name is in `tables_to_copy`.
pub fn resume(tx: &Connection, naming: &Naming, stored: &VGtid) -> Result<Option<CopyRequest>> {
    let copies = pending(tx)?;
    if copies.is_empty() {
        return Ok(None);
    }
    let states = metadata::copy_states(tx)?;
    let fields = metadata::load_fields(tx)?;
    let mut stored = stored.clone();
    for copy in &copies {
        if let Some(restart) = unordered_restart(tx, naming, copy, &states, &fields, &stored)? {
            stored = restart;
        }
    }
    let states = metadata::copy_states(tx)?;
    let mut out = CopyRequest {
        vgtid: stored.clone(),
        ..Default::default()
    };
    let mut copying_names = BTreeSet::new();
    for shard in &mut out.vgtid.shard_gtids {
        let key = naming.shard(&shard.keyspace, &shard.shard).into_owned();
        let mut entries = Vec::new();
        for copy in &copies {
            let Some(state) = states
                .iter()
                .find(|s| s.shard == key && s.table == copy.shadow)
            else {
                continue;
            };
            if state.completed {
                continue;
            }
            let bare = bare_name(naming, &copy.table);
            let listed = shard.table_p_ks.iter().find(|t| t.table_name == bare);
            let entry = match listed {
                Some(listed) => listed.clone(),
                None if state.rows_copied == 0 => TableLastPk {
                    table_name: bare.clone(),
                    lastpk: None,
                },
                None => ceiling_entry(tx, &fields, &copy.shadow, &bare)?,
            };
            copying_names.insert(bare);
            entries.push(entry);
        }
        if !entries.is_empty() {
            out.shards.insert(key);
        }
        shard.table_p_ks = entries;
    }
    out.tables_to_copy = copying_names.into_iter().collect();
    guard_same_named(tx, naming, &fields, &copies, &mut out)?;
    Ok(Some(out))
}

fn bare_name(naming: &Naming, table: &str) -> String {
    naming
        .split_table(table)
        .map_or(table, |(_, bare)| bare)
        .to_string()
}

/// A last PK at or above every row `target` holds, named `bare` (an empty table: none).
fn ceiling_entry(
    tx: &Connection,
    fields: &BTreeMap<String, BTreeMap<String, TableSchema>>,
    target: &str,
    bare: &str,
) -> Result<TableLastPk> {
    let schema = fields.get(target).and_then(|s| s.values().next());
    let ceiling = match schema {
        Some(schema) => metadata::ceiling(tx, schema)?,
        None => Ceiling::Empty,
    };
    match ceiling {
        Ceiling::Key(mut pk) => {
            pk.table_name = bare.to_string();
            Ok(pk)
        }
        Ceiling::Empty => Ok(TableLastPk {
            table_name: bare.to_string(),
            lastpk: None,
        }),
        Ceiling::Unordered => bail!(
            "table {target} has a key SQLite does not order like MySQL, so its copy cannot be \
             resumed next to another table of the same name; copy them one at a time"
        ),
    }
}

/// A copy interrupted after it ended on some shard, of a table whose keys SQLite cannot
/// order like MySQL, has no safe ceiling there: it starts over on every shard (its rows and
/// last PKs go, in this transaction). Returns the checkpoint without its last PKs.
fn unordered_restart(
    tx: &Connection,
    naming: &Naming,
    copy: &TableCopy,
    states: &[CopyState],
    fields: &BTreeMap<String, BTreeMap<String, TableSchema>>,
    stored: &VGtid,
) -> Result<Option<VGtid>> {
    let bare = bare_name(naming, &copy.table);
    let ended_somewhere = states.iter().any(|s| {
        s.table == copy.shadow && !s.completed && s.rows_copied > 0 && {
            let listed = |g: &&crate::source::proto::binlogdata::ShardGtid| {
                naming.shard(&g.keyspace, &g.shard) == s.shard
                    && g.table_p_ks.iter().any(|t| t.table_name == bare)
            };
            !stored.shard_gtids.iter().any(|g| listed(&g))
        }
    });
    let Some(schema) = fields.get(&copy.shadow).and_then(|s| s.values().next()) else {
        return Ok(None);
    };
    if !ended_somewhere || !matches!(metadata::ceiling(tx, schema)?, Ceiling::Unordered) {
        return Ok(None);
    }
    tracing::warn!(table = %copy.table, "table copy interrupted; copying this table again from scratch");
    tx.execute_batch(&format!("DELETE FROM {}", quote(&copy.shadow)))?;
    tx.execute(
        "UPDATE _vtmirror_copy_state SET rows_copied = 0, completed = 0 WHERE table_name = ?1",
        [&copy.shadow],
    )?;
    let mut restarted = stored.clone();
    for shard in &mut restarted.shard_gtids {
        shard.table_p_ks.retain(|t| t.table_name != bare);
    }
    metadata::save_checkpoint(tx, &restarted, 0, 0)?;
    Ok(Some(restarted))
}

/// `tables_to_copy` holds bare names, valid in every keyspace: a table of a copying shard
/// that shares a bare name with a copied table (another keyspace's table, or a copy already
/// done on that shard) would be copied from the start, with the changes to its rows held
/// back meanwhile. A ceiling entry keeps its rows streaming and copies only newer ones.
fn guard_same_named(
    tx: &Connection,
    naming: &Naming,
    fields: &BTreeMap<String, BTreeMap<String, TableSchema>>,
    copies: &[TableCopy],
    out: &mut CopyRequest,
) -> Result<()> {
    for shard in &mut out.vgtid.shard_gtids {
        if shard.table_p_ks.is_empty() {
            continue;
        }
        for bare in &out.tables_to_copy {
            if shard.table_p_ks.iter().any(|t| &t.table_name == bare) {
                continue;
            }
            let table = naming.table(&shard.keyspace, bare).into_owned();
            let target = match copies.iter().find(|c| c.table == table) {
                Some(copy) => copy.shadow.clone(),
                None if fields.contains_key(&table) => table,
                None => continue,
            };
            shard
                .table_p_ks
                .push(ceiling_entry(tx, fields, &target, bare)?);
        }
    }
    Ok(())
}
