//! A partial row image merged into the version of its key this shard holds.
//!
//! With `binlog_row_image=NOBLOB` (or MINIMAL) at the source, an UPDATE's after image leaves
//! out columns the statement did not change (`source::decode`, "Partial row images"). The
//! mirror holds the whole row as of the change before, so the new row is exactly that row
//! with the present columns replaced. The merged row then takes the path a full after image
//! takes (`ShardRows::upsert`, after a delete of the old key when a key column changed), so
//! ownership, versions kept aside and the change log treat it as they treat any update, and
//! a replay from the checkpoint (the rows as of the previous commit) merges to the same row.
//!
//! The row merged into is this shard's version: the table's row when its owner's key range
//! overlaps the shard's, else the one kept aside for the shard. A key whose row the mirror
//! does not hold cannot be completed: a definite error, and the writer commits nothing of
//! the transaction.

use anyhow::{bail, Context, Result};
use rusqlite::types::Value as SqlValue;
use rusqlite::params;

use super::{decode, key_text, ShardRows};
use crate::mirror::owner::{overlaps, OWNER_COLUMN};
use crate::source::table_schema::TableSchema;
use crate::source::value::Value;

impl ShardRows<'_> {
    /// Sets the `present` columns of `values` on this shard's row for `key`, then writes the
    /// whole row as an upsert would. Returns whether a version was set aside.
    pub fn merge(
        &self,
        schema: &TableSchema,
        key: &[Value],
        values: &[Value],
        present: &[bool],
        versions_aside: bool,
    ) -> Result<bool> {
        let table = self.table;
        let Some(mut row) = self.held_version(schema, key, versions_aside)? else {
            bail!(
                "a partial row image (binlog_row_image NOBLOB or MINIMAL on the source) updates \
                 the key's row of table {table} (key {}), which the mirror does not hold, so \
                 the row cannot be completed; nothing of the transaction is applied",
                schema.pk_names().join(", ")
            );
        };
        for ((slot, value), &carried) in row.iter_mut().zip(values).zip(present) {
            if carried {
                *slot = value.clone();
            }
        }
        // A key column among the present ones moves the row, as a full image's key change.
        if self.pk.iter().zip(key).any(|(&i, old)| row[i] != *old) {
            self.delete(key, versions_aside)?;
        }
        self.upsert(&row)
    }

    /// This shard's whole row for `key`, in `schema`'s column order; None if it holds none.
    fn held_version(
        &self,
        schema: &TableSchema,
        key: &[Value],
        versions_aside: bool,
    ) -> Result<Option<Vec<Value>>> {
        let table = self.table;
        if let Some((names, stored)) = self.whole_row(key)? {
            let owner = (names.iter().zip(&stored))
                .find(|(name, _)| *name == OWNER_COLUMN)
                .and_then(|(_, value)| match value {
                    SqlValue::Text(shard) => Some(shard.as_str()),
                    _ => None,
                });
            if overlaps(owner, self.owner) {
                let column = |name: &str| {
                    let at = names.iter().position(|n| n == name);
                    Ok(at.map(|i| stored[i].clone()))
                };
                return complete(schema, table, column).map(Some);
            }
        }
        if !versions_aside {
            return Ok(None);
        }
        let mut kept = self.conn.prepare_cached(
            "SELECT shard, row FROM _vtmirror_displaced WHERE table_name = ?1 AND key = ?2
             ORDER BY rowid DESC",
        )?;
        let versions: Vec<(String, String)> = kept
            .query_map(params![table, key_text(key.iter())], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()
            .with_context(|| format!("reading the row versions of table {table}"))?;
        let mine = versions.into_iter().find(|(shard, _)| {
            overlaps(Some(shard.as_str()).filter(|s| !s.is_empty()), self.owner)
        });
        let Some((_, row)) = mine else {
            return Ok(None);
        };
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row).context("a kept row version is not JSON")?;
        let column = |name: &str| row.get(name).map(decode).transpose();
        complete(schema, table, column).map(Some)
    }
}

/// The row in `schema`'s column order from a stored row read by column name; a column the
/// stored row lacks (a version kept aside before a column change) cannot be completed.
fn complete(
    schema: &TableSchema,
    table: &str,
    column: impl Fn(&str) -> Result<Option<SqlValue>>,
) -> Result<Vec<Value>> {
    (schema.columns.iter())
        .map(|c| match column(&c.name)? {
            Some(value) => Ok(from_sqlite(value)),
            None => bail!(
                "the mirror's row of table {table} lacks column {}, so a partial row image \
                 cannot be completed",
                c.name
            ),
        })
        .collect()
}

fn from_sqlite(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(text) => Value::text(text),
        SqlValue::Blob(bytes) => Value::blob(bytes),
    }
}
