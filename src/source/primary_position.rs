//! How far the source has committed, asked of vtgate for `wait`: each serving shard's
//! PRIMARY answers `@@global.gtid_executed` through vtgate's Execute RPC, targeted at that
//! one shard (`keyspace:shard@primary` bypasses routing: the statement reaches that tablet
//! verbatim). Every transaction committed before the question is in the answer, because a
//! commit is acknowledged only once the primary's binlog (and so its executed set) has it.
//!
//! The consolidator is off (comment directive and session option): vttablet may otherwise
//! hand an identical query already in flight its older result, which could miss a commit
//! made just before this call.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};

use crate::source::catalog::cells;
use crate::source::gtid_set::GtidSet;
use crate::source::proto::query::{execute_options::Consolidator, BoundQuery, ExecuteOptions};
use crate::source::proto::vtgate::{ExecuteRequest, Session};
use crate::source::proto::vtrpc::{CallerId, Code};
use crate::source::transport::VtgateClient;

/// The statement each primary answers.
pub const GTID_EXECUTED_SQL: &str = "select /*vt+ CONSOLIDATOR=disabled */ @@global.gtid_executed";

/// One shard of one keyspace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShardName {
    pub keyspace: String,
    pub shard: String,
}

impl std::fmt::Display for ShardName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.keyspace, self.shard)
    }
}

/// The serving shards of every keyspace vtgate serves (`SHOW VITESS_SHARDS`: `ks/shard`).
pub async fn serving_shards(
    client: &VtgateClient,
    caller_id: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let rows = execute(client, caller_id, "", "SHOW VITESS_SHARDS").await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        if let Some((keyspace, shard)) = row.split_once('/') {
            out.entry(keyspace.to_string())
                .or_default()
                .push(shard.to_string());
        }
    }
    Ok(out)
}

/// Each shard's primary's executed GTID set, asked of all shards at once.
pub async fn primary_gtid_sets(
    client: &VtgateClient,
    caller_id: Option<&str>,
    shards: &[ShardName],
) -> Result<BTreeMap<ShardName, GtidSet>> {
    let mut asks = tokio::task::JoinSet::new();
    for shard in shards {
        let (client, caller_id, shard) =
            (client.clone(), caller_id.map(str::to_string), shard.clone());
        asks.spawn(async move {
            let set = primary_gtid_set(&client, caller_id.as_deref(), &shard).await;
            (shard, set)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(answer) = asks.join_next().await {
        let (shard, set) = answer.context("asking a shard's primary for its position")?;
        out.insert(shard, set?);
    }
    Ok(out)
}

async fn primary_gtid_set(
    client: &VtgateClient,
    caller_id: Option<&str>,
    shard: &ShardName,
) -> Result<GtidSet> {
    let target = format!("{}:{}@primary", shard.keyspace, shard.shard);
    let rows = execute(client, caller_id, &target, GTID_EXECUTED_SQL)
        .await
        .with_context(|| {
            format!("asking the primary of shard {shard} for @@global.gtid_executed")
        })?;
    let text = rows
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the primary of shard {shard} returned no gtid_executed row"))?;
    parse_gtid_executed(&text).with_context(|| format!("the gtid_executed of shard {shard}"))
}

/// MySQL's `@@global.gtid_executed`: a GTID set without a flavor prefix, with a newline
/// after each comma when it names several servers.
pub fn parse_gtid_executed(text: &str) -> Result<GtidSet> {
    let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    GtidSet::parse(&joined)
}

/// Runs `sql` on vtgate target `target` and returns the first column of every row. vtgate
/// answers a refused statement with RPC success and the error in the response: both fail.
async fn execute(
    client: &VtgateClient,
    caller_id: Option<&str>,
    target: &str,
    sql: &str,
) -> Result<Vec<String>> {
    let request = ExecuteRequest {
        caller_id: caller_id.map(|principal| CallerId {
            principal: principal.to_string(),
            component: "vtmirror".into(),
            ..Default::default()
        }),
        session: Some(Session {
            autocommit: true,
            target_string: target.to_string(),
            options: Some(ExecuteOptions {
                consolidator: Consolidator::Disabled as i32,
            }),
            ..Default::default()
        }),
        query: Some(BoundQuery { sql: sql.into() }),
    };
    let response = (client.clone().execute(request).await)
        .map_err(|status| anyhow::Error::new(status).context(format!("vtgate Execute {sql}")))?
        .into_inner();
    if let Some(error) = response.error.filter(|e| e.code != Code::Ok as i32) {
        anyhow::bail!("vtgate refused {sql}: {}", error.message);
    }
    let rows = cells(response.result.as_ref(), 1)?;
    Ok(rows.into_iter().filter_map(|mut row| row.pop()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_executed_with_newlines_after_commas_parses_as_one_set() {
        let text = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-36,\n\
                    4f11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9\n";
        let set = parse_gtid_executed(text).unwrap();
        let stream = "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-36,\
                      4f11fa47-71ca-11e1-9e33-c80aa9429562:1-9";
        let streamed = GtidSet::from_position(stream).unwrap().unwrap();
        assert!(streamed.contains(&set));
        let behind = "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-35,\
                      4f11fa47-71ca-11e1-9e33-c80aa9429562:1-9";
        let behind = GtidSet::from_position(behind).unwrap().unwrap();
        assert!(!behind.contains(&set));
        assert_eq!(parse_gtid_executed("").unwrap(), GtidSet::default());
        assert!(parse_gtid_executed("not a gtid set").is_err());
    }
}
