//! A key two shards hold at once beyond a move: a definite error, never a merge.
//!
//! A move's DELETE and INSERT commit together (one vtgate transaction, or two within moments),
//! so a version kept aside is normally gone as soon as both shards' streams pass the moment
//! it was set aside. One still there once **both** shards, the one whose version waits aside
//! and the one the table shows, have delivered transactions from more than `MOVE_WINDOW`
//! later (their own binlog times) means both shards hold the key: the table has no global
//! uniqueness (ids per shard without a sequence), and no single row can mirror it. Waiting
//! for both streams keeps a lagging shard (whose DELETE is still on its way) from looking
//! like one; an idle shard only delays the verdict.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::mirror::owner::OWNER_COLUMN;
use crate::mirror::schema::quote;

/// How long (source seconds) both shards may hold one key while it moves between them.
pub const MOVE_WINDOW: i64 = 60;

/// Fails, naming the table, the key and both shards, if a version kept aside outlived a move.
/// `shard_times`: each shard's (owner name's) latest transaction time seen by this writer.
pub fn check(conn: &Connection, shard_times: &HashMap<String, i64>) -> Result<()> {
    let kept: Vec<(String, String, String, i64)> = conn
        .prepare_cached("SELECT table_name, key, shard, since FROM _vtmirror_displaced")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the row versions kept aside")?;
    let passed = |shard: &str, since: i64| {
        shard_times
            .get(shard)
            .is_some_and(|&t| t >= since + MOVE_WINDOW)
    };
    for (table, key, aside, since) in kept {
        if !passed(&aside, since) {
            continue;
        }
        let Some(shown) = holder(conn, &table, &key)? else {
            continue;
        };
        if passed(&shown, since) {
            bail!(
                "table {table}: key {key} is held by shards {aside} and {shown} at once, and \
                 neither deleted it within {MOVE_WINDOW} s as a move between shards would; a \
                 mirror holds one row per key, so a sharded table needs keys unique across \
                 shards (a sequence, or the key as its primary vindex). The mirror stays at \
                 the position before it"
            );
        }
    }
    Ok(())
}

/// The owner of the row `table` shows for `key` (JSON, `versions::key_text`); None if the
/// table shows none, or one that spans every key.
fn holder(conn: &Connection, table: &str, key: &str) -> Result<Option<String>> {
    let pk: Vec<String> = conn
        .prepare_cached("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let values: Vec<serde_json::Value> =
        serde_json::from_str(key).context("a kept row version's key is not JSON")?;
    let values: Vec<SqlValue> = values.iter().map(super::decode).collect::<Result<_>>()?;
    if pk.is_empty() || pk.len() != values.len() {
        return Ok(None);
    }
    let conds: Vec<String> = (pk.iter().enumerate())
        .map(|(i, c)| format!("{} = ?{}", quote(c), i + 1))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        quote(OWNER_COLUMN),
        quote(table),
        conds.join(" AND ")
    );
    let owner: Option<Option<String>> = conn
        .query_row(&sql, params_from_iter(values), |r| r.get(0))
        .optional()
        .with_context(|| format!("reading which shard holds a row of table {table}"))?;
    Ok(owner.flatten())
}
