//! The position a sync requests: fresh, or resumed from the stored checkpoint with the copy
//! knowledge that makes an interrupted VStream Copy safe to resume (see `checkpoint`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::mirror::checkpoint::{resume_position, CopyKnowledge};
use crate::mirror::metadata::{self, Ceiling};
use crate::mirror::table_copy;
use crate::source::naming::Naming;
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

/// The position with each keyspace whose copy has not begun on any shard (every entry an empty
/// GTID without `table_p_ks`) moved onto the shards vtgate serves now, when those differ from
/// the stored ones; None when no keyspace needs it.
///
/// Why: a mirror can store its first checkpoint before a keyspace's copy begins, and the
/// keyspace can be resharded before the mirror resumes. vtgate asked to copy an old shard with
/// an empty GTID copies it from its current position, past the journal event that would move
/// the stream to the new shards, and then follows a shard that no longer serves (until it is
/// deleted). Nothing of such a keyspace is in the mirror yet, so starting its copy on the
/// serving shards is exact. Keyspaces with copy progress keep their shards: their stream reaches
/// the journal event and vtgate moves it.
pub fn onto_serving_shards(
    vgtid: &VGtid,
    serving: &BTreeMap<String, Vec<String>>,
) -> Option<(VGtid, Vec<String>)> {
    let mut moved = Vec::new();
    let mut entries: Vec<ShardGtid> = Vec::new();
    let keyspaces: BTreeSet<&str> = (vgtid.shard_gtids.iter())
        .map(|s| s.keyspace.as_str())
        .collect();
    for keyspace in keyspaces {
        let stored: Vec<&ShardGtid> = (vgtid.shard_gtids.iter())
            .filter(|s| s.keyspace == keyspace)
            .collect();
        let not_begun = (stored.iter()).all(|s| s.gtid.is_empty() && s.table_p_ks.is_empty());
        let stored_shards: BTreeSet<&str> = stored.iter().map(|s| s.shard.as_str()).collect();
        let now = serving.get(keyspace).filter(|now| !now.is_empty());
        match now {
            Some(now)
                if not_begun
                    && !stored_shards.contains("")
                    && stored_shards != now.iter().map(String::as_str).collect() =>
            {
                moved.push(keyspace.to_string());
                entries.extend(now.iter().map(|shard| ShardGtid {
                    keyspace: keyspace.to_string(),
                    shard: shard.clone(),
                    ..Default::default()
                }));
            }
            _ => entries.extend(stored.into_iter().cloned()),
        }
    }
    if moved.is_empty() {
        return None;
    }
    Some((
        VGtid {
            shard_gtids: entries,
        },
        moved,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keyspace: &str, shard: &str, gtid: &str) -> ShardGtid {
        ShardGtid {
            keyspace: keyspace.into(),
            shard: shard.into(),
            gtid: gtid.into(),
            ..Default::default()
        }
    }

    fn serving() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("customer".into(), vec!["-80".into(), "80-".into()]),
            ("commerce".into(), vec!["0".into()]),
        ])
    }

    #[test]
    fn a_keyspace_resharded_before_its_copy_began_is_copied_from_the_serving_shards() {
        let stored = VGtid {
            shard_gtids: vec![
                entry("commerce", "0", "MySQL56/a:1-5"),
                entry("customer", "0", ""),
            ],
        };
        let (moved, keyspaces) = onto_serving_shards(&stored, &serving()).unwrap();
        assert_eq!(keyspaces, ["customer"]);
        assert_eq!(
            moved.shard_gtids,
            [
                entry("commerce", "0", "MySQL56/a:1-5"),
                entry("customer", "-80", ""),
                entry("customer", "80-", "")
            ]
        );
    }

    #[test]
    fn a_keyspace_with_copy_progress_or_on_the_serving_shards_keeps_its_shards() {
        let mut progress = entry("customer", "0", "");
        progress.table_p_ks.push(TableLastPk {
            table_name: "customer".into(),
            lastpk: None,
        });
        for stored in [
            vec![progress],
            vec![entry("customer", "0", "MySQL56/a:1-5")],
            vec![entry("customer", "-80", ""), entry("customer", "80-", "")],
            vec![entry("customer", "", "")],
            vec![entry("gone", "0", "")],
        ] {
            let stored = VGtid {
                shard_gtids: stored,
            };
            assert!(
                onto_serving_shards(&stored, &serving()).is_none(),
                "{stored:?}"
            );
        }
    }
}
