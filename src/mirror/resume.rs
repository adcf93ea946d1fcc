//! The position a sync requests: fresh, or resumed from the stored checkpoint with the copy
//! knowledge that makes an interrupted VStream Copy safe to resume (see `checkpoint`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::mirror::checkpoint::{resume_position, CopyKnowledge};
use crate::mirror::metadata::{self, Ceiling};
use crate::mirror::naming::Naming;
use crate::mirror::table_copy;
use crate::source::proto::binlogdata::{ShardGtid, TableLastPk, VGtid};

/// Where the stream starts and what the mirror already holds.
#[derive(Debug, Clone)]
pub struct Start {
    pub vgtid: VGtid,
    /// True when the mirror had a stored checkpoint.
    pub resumed: bool,
    pub copy_completed: bool,
    /// Bare names for `VStreamFlags.tables_to_copy` (table copies after the first copy).
    pub tables_to_copy: Vec<String>,
    /// Shard keys that copy single tables; each ends its copy with a COPY_COMPLETED.
    pub copying_shards: BTreeSet<String>,
}

/// Computes the start position; may restart the copy of a table whose keys SQLite cannot
/// order like MySQL (one transaction: rows, copy state and checkpoint entries together).
pub fn start_position(conn: &Connection, naming: &Naming, fresh: &VGtid) -> Result<Start> {
    let stored = metadata::load_checkpoint(conn)?;
    let Some(mut vgtid) = stored.vgtid else {
        return Ok(Start {
            vgtid: fresh.clone(),
            resumed: false,
            copy_completed: false,
            tables_to_copy: Vec::new(),
            copying_shards: BTreeSet::new(),
        });
    };
    if stored.copy_completed {
        let tx = conn.unchecked_transaction()?;
        let copies = table_copy::resume(&tx, naming, &vgtid)?;
        tx.commit()
            .context("restarting an interrupted table copy")?;
        let copies = copies.unwrap_or_else(|| table_copy::CopyRequest {
            vgtid,
            ..Default::default()
        });
        return Ok(Start {
            vgtid: copies.vgtid,
            resumed: true,
            copy_completed: true,
            tables_to_copy: copies.tables_to_copy,
            copying_shards: copies.shards,
        });
    }
    let mut started = metadata::started_copies(conn)?;
    let fields = metadata::load_fields(conn)?;
    let mut ceilings: BTreeMap<String, TableLastPk> = BTreeMap::new();
    for table in tables_needing_ceiling(&vgtid, &started, naming) {
        let Some(schema) = fields.get(&table).and_then(|s| s.values().next()) else {
            continue;
        };
        match metadata::ceiling(conn, schema)? {
            Ceiling::Key(pk) => {
                ceilings.insert(table, pk);
            }
            Ceiling::Empty => {}
            Ceiling::Unordered => {
                tracing::warn!(table = %table, "copy interrupted; copying this table again from scratch");
                let tx = conn.unchecked_transaction()?;
                metadata::restart_table_copy(&tx, naming, &table, &mut vgtid)?;
                tx.commit()
                    .with_context(|| format!("restarting the copy of table {table}"))?;
                started.retain(|(_, t)| t != &table);
            }
        }
    }
    let ceiling = |table: &str| ceilings.get(table).cloned();
    let known = CopyKnowledge {
        started: &started,
        ceiling: &ceiling,
        naming,
    };
    Ok(Start {
        vgtid: resume_position(&vgtid, false, &known),
        resumed: true,
        copy_completed: false,
        tables_to_copy: Vec::new(),
        copying_shards: BTreeSet::new(),
    })
}

/// Tables whose copy started on some shard that no longer lists them in `table_p_ks`.
fn tables_needing_ceiling(
    vgtid: &VGtid,
    started: &BTreeSet<(String, String)>,
    naming: &Naming,
) -> BTreeSet<String> {
    let listed = |s: &ShardGtid, shard: &str, table: &str| {
        naming.shard(&s.keyspace, &s.shard) == shard
            && (s.table_p_ks.iter()).any(|t| naming.table(&s.keyspace, &t.table_name) == table)
    };
    started
        .iter()
        .filter(|(shard, table)| !vgtid.shard_gtids.iter().any(|s| listed(s, shard, table)))
        .map(|(_, table)| table.clone())
        .collect()
}
