//! The checkpoint: the VGtid exactly as vtgate sent it (opaque, `table_p_ks` included),
//! stored with the rows it covers, and the request position built from it on restart. Its
//! bytes and text form are the source's vocabulary (`source::vgtid`).

use std::collections::BTreeSet;

use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{TableLastPk, VGtid};
use crate::source::vgtid::CURRENT;

/// What the mirror knows about an unfinished copy, used to build a safe resume position.
pub struct CopyKnowledge<'a> {
    /// (shard key, mirror table) pairs whose copy has started on that shard.
    pub started: &'a BTreeSet<(String, String)>,
    /// A last PK at or above every row the mirror holds for the (mirror) table, or None when
    /// the mirror holds no row of it.
    pub ceiling: &'a dyn Fn(&str) -> Option<TableLastPk>,
    /// How the stored VGtid's keyspaces, shards and bare table names map to the mirror's.
    pub naming: &'a Naming,
}

/// The position to request on restart.
///
/// After the final COPY_COMPLETED the stored VGtid is used as is. Before it, the stored
/// `table_p_ks` alone is unsafe (pitfall P1): between two tables it can be empty, and then
/// vtgate would replicate without copying the remaining tables; with it non-empty, vtgate
/// copies every unlisted table again from scratch, while the mirror may hold rows of those
/// tables that were deleted at the source meanwhile. So for every table whose copy started
/// on a shard but is not listed there (it finished), we add a last PK at or above everything
/// the mirror holds of it: vtgate then streams all changes to those rows and copies only
/// newer ones. A shard left with no table_p_ks holds no row in the mirror: it copies anew.
pub fn resume_position(stored: &VGtid, copy_completed: bool, known: &CopyKnowledge) -> VGtid {
    if copy_completed {
        return stored.clone();
    }
    let mut out = stored.clone();
    let naming = known.naming;
    for shard in &mut out.shard_gtids {
        if shard.gtid.is_empty() || shard.gtid == CURRENT {
            continue;
        }
        let key = naming.shard(&shard.keyspace, &shard.shard);
        let listed: BTreeSet<String> = shard
            .table_p_ks
            .iter()
            .map(|t| naming.table(&shard.keyspace, &t.table_name).into_owned())
            .collect();
        for (started_shard, table) in known.started {
            if *started_shard != key || listed.contains(table) {
                continue;
            }
            if let Some(mut ceiling) = (known.ceiling)(table) {
                // The VGtid names the table as its keyspace knows it.
                if let Some((_, bare)) = naming.split_table(table) {
                    ceiling.table_name = bare.to_string();
                }
                shard.table_p_ks.push(ceiling);
            }
        }
        if shard.table_p_ks.is_empty() {
            shard.gtid.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::vgtid::row_texts;
    use crate::source::vgtid::test_values::{lastpk, shard};

    #[test]
    fn resume_between_tables_still_copies_unfinished_tables() {
        // Shard -80 finished table a and has not started b: stored table_p_ks is empty.
        let stored = VGtid {
            shard_gtids: vec![
                shard("-80", "MySQL56/u:1-5", &[]),
                shard("80-", "MySQL56/v:1-7", &["a"]),
            ],
        };
        let started: BTreeSet<_> = [
            ("-80".to_string(), "a".to_string()),
            ("80-".into(), "a".into()),
        ]
        .into();
        let ceiling = |t: &str| Some(lastpk(t, "99"));
        let known = CopyKnowledge {
            started: &started,
            ceiling: &ceiling,
            naming: &Naming::Bare("ks".into()),
        };
        let resumed = resume_position(&stored, false, &known);
        let s0 = &resumed.shard_gtids[0];
        assert_eq!(s0.gtid, "MySQL56/u:1-5");
        assert_eq!(
            s0.table_p_ks.len(),
            1,
            "finished table a gets a ceiling so copy continues"
        );
        assert_eq!(
            row_texts(&s0.table_p_ks[0].lastpk.as_ref().unwrap().rows[0]),
            vec![serde_json::json!("99")]
        );
        let s1 = &resumed.shard_gtids[1];
        assert_eq!(
            s1.table_p_ks, stored.shard_gtids[1].table_p_ks,
            "in-progress lastpk kept"
        );
    }

    #[test]
    fn a_shard_holding_no_mirrored_rows_restarts_its_copy() {
        let stored = VGtid {
            shard_gtids: vec![shard("0", "MySQL56/u:1-5", &[])],
        };
        let started: BTreeSet<_> = [("0".to_string(), "empty".to_string())].into();
        let ceiling = |_: &str| None;
        let resumed = resume_position(
            &stored,
            false,
            &CopyKnowledge {
                started: &started,
                ceiling: &ceiling,
                naming: &Naming::Bare("ks".into()),
            },
        );
        assert_eq!(resumed.shard_gtids[0].gtid, "");
    }

    #[test]
    fn after_copy_completed_the_stored_position_is_used_unchanged() {
        let stored = VGtid {
            shard_gtids: vec![shard("0", "MySQL56/u:1-5", &[])],
        };
        let started = BTreeSet::new();
        let ceiling = |_: &str| None;
        let resumed = resume_position(
            &stored,
            true,
            &CopyKnowledge {
                started: &started,
                ceiling: &ceiling,
                naming: &Naming::Bare("ks".into()),
            },
        );
        assert_eq!(resumed, stored);
    }
}
