//! A VGtid's forms outside the wire: the bytes a checkpoint is stored as, the JSON people read
//! and paste back (`status`, `--pos`, logs), and the positions a fresh stream starts from.

use anyhow::{bail, Context, Result};
use prost::Message;
use serde_json::{json, Value as Json};

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

#[cfg(test)]
pub(crate) mod test_values {
    use crate::source::proto::binlogdata::{ShardGtid, TableLastPk};
    use crate::source::proto::query::{Field, QueryResult, Row};

    pub(crate) fn shard(name: &str, gtid: &str, tables: &[&str]) -> ShardGtid {
        ShardGtid {
            keyspace: "ks".into(),
            shard: name.into(),
            gtid: gtid.into(),
            table_p_ks: tables.iter().map(|t| lastpk(t, "5")).collect(),
        }
    }

    pub(crate) fn lastpk(table: &str, value: &str) -> TableLastPk {
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
}

#[cfg(test)]
mod tests {
    use super::test_values::shard;
    use super::*;

    #[test]
    fn checkpoint_round_trips_with_table_p_ks() {
        let v = VGtid {
            shard_gtids: vec![shard("-80", "MySQL56/u:1-5", &["a"])],
        };
        assert_eq!(decode(&encode(&v)).unwrap(), v);
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
