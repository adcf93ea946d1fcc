//! The checkpoint: the VGtid exactly as vtgate sent it (opaque, `table_p_ks` included),
//! stored with the rows it covers, and the request position built from it on restart.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use prost::Message;
use serde_json::{json, Value as Json};

use crate::mirror::naming::Naming;
use crate::source::proto::binlogdata::{ShardGtid, TableLastPk, VGtid};

/// Position value asking vtgate to start at the current binlog position.
pub const CURRENT: &str = "current";

pub fn encode(vgtid: &VGtid) -> Vec<u8> {
    vgtid.encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<VGtid> {
    VGtid::decode(bytes).context("stored checkpoint is not a valid VGtid")
}

/// True when every shard has a real position (a "current" entry is not resumable: the
/// events between the first start and a restart would be skipped).
pub fn is_positioned(vgtid: &VGtid) -> bool {
    !vgtid.shard_gtids.is_empty() && vgtid.shard_gtids.iter().all(|s| s.gtid != CURRENT)
}

/// The position of a fresh mirror: all shards of the keyspace, copy ("") or "current".
pub fn fresh(keyspace: &str, gtid: &str) -> VGtid {
    VGtid {
        shard_gtids: vec![ShardGtid {
            keyspace: keyspace.to_string(),
            shard: String::new(),
            gtid: gtid.to_string(),
            table_p_ks: Vec::new(),
        }],
    }
}

/// Parses a user-given position: `[{"keyspace":..,"shard":..,"gtid":..}]` or
/// `{"shard_gtids":[...]}`; a missing keyspace means `default_keyspace`, which a stream over
/// several keyspaces does not have.
pub fn from_json(text: &str, default_keyspace: Option<&str>) -> Result<VGtid> {
    let parsed: Json = serde_json::from_str(text).context("position is not valid JSON")?;
    let list = match &parsed {
        Json::Array(items) => items.clone(),
        Json::Object(map) => match map.get("shard_gtids") {
            Some(Json::Array(items)) => items.clone(),
            _ => bail!("position object has no shard_gtids list"),
        },
        _ => bail!("position must be a JSON list of {{shard, gtid}} entries"),
    };
    if list.is_empty() {
        bail!("position lists no shard");
    }
    let field = |item: &Json, name: &str| -> Result<String> {
        match item.get(name) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(_) => bail!("position field {name} must be a string"),
        }
    };
    let mut shard_gtids = Vec::new();
    for item in &list {
        if !item.is_object() {
            bail!("each position entry must be an object like {{\"shard\": \"-80\", \"gtid\": \"...\"}}");
        }
        let lastpks = item.get("table_p_ks");
        if lastpks.is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            bail!("a position with table_p_ks cannot be given by hand; resume from the mirror");
        }
        let keyspace = match (field(item, "keyspace")?, default_keyspace) {
            (named, _) if !named.is_empty() => named,
            (_, Some(default)) => default.to_string(),
            (_, None) => bail!("with several keyspaces, each position entry names its keyspace"),
        };
        shard_gtids.push(ShardGtid {
            keyspace,
            shard: field(item, "shard")?,
            gtid: field(item, "gtid")?,
            table_p_ks: Vec::new(),
        });
    }
    Ok(VGtid { shard_gtids })
}

/// A readable rendering for status output and logs (last-PK values included: they are keys,
/// which `status` shows on purpose; errors never include them).
pub fn to_json(vgtid: &VGtid) -> Json {
    let shards: Vec<Json> = vgtid
        .shard_gtids
        .iter()
        .map(|s| {
            let pks: Vec<Json> = s.table_p_ks.iter().map(lastpk_json).collect();
            json!({"keyspace": s.keyspace, "shard": s.shard, "gtid": s.gtid, "table_p_ks": pks})
        })
        .collect();
    json!({ "shard_gtids": shards })
}

fn lastpk_json(pk: &TableLastPk) -> Json {
    let Some(result) = &pk.lastpk else {
        return json!({"table_name": pk.table_name, "lastpk": null});
    };
    let names: Vec<&str> = result.fields.iter().map(|f| f.name.as_str()).collect();
    let values = result.rows.first().map(row_texts).unwrap_or_default();
    json!({"table_name": pk.table_name, "columns": names, "values": values})
}

/// Values of a `query.Row` as lossy UTF-8 text (for display only).
pub fn row_texts(row: &crate::source::proto::query::Row) -> Vec<Json> {
    let mut offset = 0usize;
    let mut out = Vec::new();
    for &len in &row.lengths {
        if len < 0 {
            out.push(Json::Null);
            continue;
        }
        let end = offset.saturating_add(len as usize).min(row.values.len());
        out.push(Json::String(
            String::from_utf8_lossy(&row.values[offset.min(end)..end]).into_owned(),
        ));
        offset = end;
    }
    out
}

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
    use crate::source::proto::query::{Field, QueryResult, Row};

    fn shard(name: &str, gtid: &str, tables: &[&str]) -> ShardGtid {
        ShardGtid {
            keyspace: "ks".into(),
            shard: name.into(),
            gtid: gtid.into(),
            table_p_ks: tables.iter().map(|t| lastpk(t, "5")).collect(),
        }
    }

    fn lastpk(table: &str, value: &str) -> TableLastPk {
        TableLastPk {
            table_name: table.into(),
            lastpk: Some(QueryResult {
                fields: vec![Field {
                    name: "id".into(),
                    r#type: 265,
                    ..Default::default()
                }],
                rows: vec![Row {
                    lengths: vec![value.len() as i64],
                    values: value.as_bytes().to_vec().into(),
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn checkpoint_round_trips_with_table_p_ks() {
        let v = VGtid {
            shard_gtids: vec![shard("-80", "MySQL56/u:1-5", &["a"])],
        };
        assert_eq!(decode(&encode(&v)).unwrap(), v);
    }

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
            vec![json!("99")]
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

    #[test]
    fn a_printed_position_with_empty_table_p_ks_can_be_pasted_back() {
        let printed = to_json(&VGtid {
            shard_gtids: vec![shard("-80", "MySQL56/u:1-5", &[])],
        });
        let parsed = from_json(&printed.to_string(), Some("ks")).unwrap();
        assert_eq!(parsed.shard_gtids[0].gtid, "MySQL56/u:1-5");
    }

    #[test]
    fn user_positions_parse_from_the_seed_format() {
        let v = from_json(r#"[ {"shard":"", "gtid":"current"} ]"#, Some("customer")).unwrap();
        assert_eq!(v.shard_gtids[0].keyspace, "customer");
        assert_eq!(v.shard_gtids[0].gtid, "current");
        assert!(!is_positioned(&v));
        assert!(from_json("{}", Some("k")).is_err());
        assert!(from_json("[1]", Some("k")).is_err());
        assert!(from_json(r#"[{"shard":"0","gtid":"x"}]"#, None).is_err());
    }
}
