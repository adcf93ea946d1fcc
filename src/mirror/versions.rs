//! One key, two shards: each shard's version of a row kept until that shard lets go of it.
//!
//! A row moving between shards (`mirror::owner`) is a DELETE on one shard and an INSERT of the
//! same key on another, and the stream may deliver either first; a shard whose stream lags
//! may even replay an older insert of a key another shard holds now. Applying every shard's
//! changes to that shard's own version of the key is exact whatever the interleaving: each
//! version ends as its shard ends it, and once the source's key lives on one shard again, one
//! version is left. The table shows one version per key (the one written last); the others
//! wait in `_vtmirror_displaced` (migration 4), which is empty unless a move is in flight.
//!
//! Rows are kept aside as JSON of SQLite values (`[tag, value]`: integers and reals exact,
//! blobs as hex), with their column names, so a version set aside before a column change is
//! brought back with the columns both layouts share, like a rebuilt table.

use anyhow::{Context, Result};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use serde_json::{json, Value as Json};

use crate::mirror::owner::{overlaps, OWNER_COLUMN};
use crate::mirror::schema::{quote, RowSql};
use crate::source::value::Value;

pub mod held_twice;
mod merge;

/// Whether any version waits aside (checked once per SQLite transaction: the fast paths skip
/// every look-up while none does).
pub fn any(conn: &Connection) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM _vtmirror_displaced)",
        [],
        |r| r.get(0),
    )
    .context("reading the row versions kept aside")
}

/// Row changes of one shard to one table, applied to that shard's version of each key.
pub struct ShardRows<'a> {
    pub conn: &'a Connection,
    /// The SQLite table (a table copy's shadow while it is copied).
    pub table: &'a str,
    pub sql: &'a RowSql,
    /// Indexes of the primary key in a row's values.
    pub pk: &'a [usize],
    /// The writing shard's owner value (`mirror::owner::owner_of`).
    pub owner: Option<&'a str>,
    /// Source time of the change, recorded with a version set aside.
    pub since: i64,
}

fn with_owner<'v>(
    values: impl Iterator<Item = &'v Value>,
    owner: &'v Option<&'v str>,
) -> impl Iterator<Item = &'v dyn ToSql> {
    values
        .map(|v| v as &dyn ToSql)
        .chain(std::iter::once(owner as &dyn ToSql))
}

impl ShardRows<'_> {
    /// Upserts one row: into the version this shard holds, else over another shard's version,
    /// which is kept aside. Returns whether a version was set aside.
    pub fn upsert(&self, values: &[Value]) -> Result<bool> {
        let changed = self.run(&self.sql.upsert, with_owner(values.iter(), &self.owner))?;
        if changed == 1 {
            return Ok(false);
        }
        let key: Vec<&Value> = self.pk.iter().map(|&i| &values[i]).collect();
        let holder = self.holder(&key)?;
        let moved = holder
            .as_ref()
            .is_some_and(|h| !overlaps(h.as_deref(), self.owner));
        if moved {
            self.set_aside(&key)?;
        }
        self.drop_version(&key_text(key.iter().copied()), self.owner)?;
        self.run(&self.sql.upsert_any, with_owner(values.iter(), &self.owner))?;
        Ok(moved)
    }

    /// Deletes this shard's version of a key: the table's row if this shard holds it (then a
    /// version kept aside takes its place), else the one kept aside, if any.
    pub fn delete(&self, key: &[Value], versions_aside: bool) -> Result<()> {
        let deleted = self.run(&self.sql.delete, with_owner(key.iter(), &self.owner))? == 1;
        if deleted && !versions_aside {
            return Ok(());
        }
        let keys: Vec<&Value> = key.iter().collect();
        let text = || key_text(keys.iter().copied());
        if !deleted {
            match self.holder(&keys)? {
                // A parent shard's row (written before a reshard) is the child's.
                Some(holder) if overlaps(holder.as_deref(), self.owner) => {
                    self.run(&self.sql.delete_any, key.iter().map(|v| v as &dyn ToSql))?;
                }
                _ if !versions_aside => return Ok(()),
                // Another shard holds the key now: only this shard's version goes.
                _ => return self.drop_version(&text(), self.owner),
            }
        }
        bring_back(self.conn, self.table, &text())
    }

    fn run<'v>(&self, sql: &str, values: impl Iterator<Item = &'v dyn ToSql>) -> Result<usize> {
        let table = self.table;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params_from_iter(values)))
            .with_context(|| format!("applying row changes to table {table}"))
    }

    /// The table's row for `key`: None if absent, else its owner (None: every key).
    fn holder(&self, key: &[&Value]) -> Result<Option<Option<String>>> {
        let table = self.table;
        let mut stmt = self.conn.prepare_cached(&self.sql.owner)?;
        stmt.query_row(params_from_iter(key.iter()), |r| r.get(0))
            .optional()
            .with_context(|| format!("reading which shard holds a row of table {table}"))
    }

    /// The table's whole row for `key` (owner included) with its column names; None if absent.
    fn whole_row<K: ToSql>(&self, key: &[K]) -> Result<Option<(Vec<String>, Vec<SqlValue>)>> {
        let table = self.table;
        let mut stmt = self.conn.prepare_cached(&self.sql.row)?;
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let row: Option<Vec<SqlValue>> = stmt
            .query_row(params_from_iter(key.iter()), |r| {
                (0..names.len()).map(|i| r.get(i)).collect()
            })
            .optional()
            .with_context(|| format!("reading a row of table {table}"))?;
        Ok(row.map(|row| (names, row)))
    }

    /// Moves the table's row for `key` into `_vtmirror_displaced` under its owner.
    fn set_aside(&self, key: &[&Value]) -> Result<()> {
        let table = self.table;
        let Some((names, row)) = self.whole_row(key)? else {
            return Ok(());
        };
        let mut owner = String::new();
        let mut columns = serde_json::Map::new();
        for (name, value) in names.iter().zip(&row) {
            match (name == OWNER_COLUMN, value) {
                (true, SqlValue::Text(shard)) => owner = shard.clone(),
                (true, _) => {}
                (false, value) => {
                    columns.insert(name.clone(), encode(ValueRef::from(value)));
                }
            }
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO _vtmirror_displaced (table_name, key, shard, row, since)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    table,
                    key_text(key.iter().copied()),
                    owner,
                    Json::Object(columns).to_string(),
                    self.since
                ],
            )
            .with_context(|| format!("keeping aside a row of table {table}"))?;
        self.run(&self.sql.delete_any, key.iter().map(|v| *v as &dyn ToSql))?;
        Ok(())
    }

    /// Deletes the versions kept aside for `key` whose shard overlaps `owner`.
    fn drop_version(&self, key: &str, owner: Option<&str>) -> Result<()> {
        drop_versions(self.conn, self.table, Some(key), owner)
    }
}

/// Deletes the versions of `table` (of one key, or all) whose shard overlaps `owner`.
pub fn drop_versions(
    conn: &Connection,
    table: &str,
    key: Option<&str>,
    owner: Option<&str>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, shard FROM _vtmirror_displaced WHERE table_name = ?1 AND key = coalesce(?2, key)",
    )?;
    let kept: Vec<(String, String)> = stmt
        .query_map(params![table, key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (key, shard) in kept {
        if overlaps(
            Some(&shard).filter(|s| !s.is_empty()).map(|s| s.as_str()),
            owner,
        ) {
            conn.execute(
                "DELETE FROM _vtmirror_displaced WHERE table_name = ?1 AND key = ?2 AND shard = ?3",
                params![table, key, shard],
            )
            .with_context(|| format!("dropping a row version of table {table}"))?;
        }
    }
    Ok(())
}

/// Brings back the version of `key` kept aside last, if the table holds no row for it.
pub fn bring_back(conn: &Connection, table: &str, key: &str) -> Result<()> {
    let kept: Option<(String, String, String)> = conn
        .query_row(
            "SELECT shard, row, key FROM _vtmirror_displaced WHERE table_name = ?1 AND key = ?2
             ORDER BY rowid DESC LIMIT 1",
            params![table, key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .with_context(|| format!("reading a row version of table {table}"))?;
    let Some((shard, row, key)) = kept else {
        return Ok(());
    };
    let columns: Vec<String> = conn
        .prepare_cached("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let row: serde_json::Map<String, Json> =
        serde_json::from_str(&row).context("a kept row version is not JSON")?;
    let mut names = vec![quote(OWNER_COLUMN)];
    let mut values = vec![match shard.is_empty() {
        true => SqlValue::Null,
        false => SqlValue::Text(shard.clone()),
    }];
    for (name, value) in &row {
        if columns.iter().any(|c| c == name) {
            names.push(quote(name));
            values.push(decode(value)?);
        }
    }
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
        quote(table),
        names.join(", "),
        marks.join(", ")
    );
    conn.execute(&sql, params_from_iter(values))
        .with_context(|| format!("bringing back a row version of table {table}"))?;
    conn.execute(
        "DELETE FROM _vtmirror_displaced WHERE table_name = ?1 AND key = ?2 AND shard = ?3",
        params![table, key, shard],
    )?;
    Ok(())
}

/// Brings back, for every key of `table` whose row is gone, the version kept aside last
/// (after a shard's TRUNCATE or DROP removed the rows it held).
pub fn bring_back_all(conn: &Connection, table: &str) -> Result<()> {
    let keys: Vec<String> = conn
        .prepare("SELECT DISTINCT key FROM _vtmirror_displaced WHERE table_name = ?1")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for key in keys {
        // INSERT OR IGNORE leaves a key the table still holds to its holder.
        bring_back(conn, table, &key)?;
    }
    Ok(())
}

/// The key of a row as kept aside: its values in key order.
pub fn key_text<'v>(values: impl Iterator<Item = &'v Value>) -> String {
    let parts: Vec<Json> = values
        .map(|v| match v.to_sql() {
            Ok(rusqlite::types::ToSqlOutput::Borrowed(r)) => encode(r),
            _ => Json::Null,
        })
        .collect();
    Json::Array(parts).to_string()
}

fn encode(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(i) => json!(["i", i]),
        // The bits: a JSON number's decimal text need not parse back to the same double.
        ValueRef::Real(f) => json!(["r", f.to_bits()]),
        ValueRef::Text(t) => json!(["t", String::from_utf8_lossy(t)]),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            json!(["b", hex])
        }
    }
}

fn decode(value: &Json) -> Result<SqlValue> {
    let bad = || anyhow::anyhow!("a kept row version holds a value of unknown shape");
    if value.is_null() {
        return Ok(SqlValue::Null);
    }
    let (tag, inner) = match value.as_array().map(Vec::as_slice) {
        Some([tag, inner]) => (tag.as_str().ok_or_else(bad)?, inner),
        _ => return Err(bad()),
    };
    Ok(match tag {
        "i" => SqlValue::Integer(inner.as_i64().ok_or_else(bad)?),
        "r" => SqlValue::Real(f64::from_bits(inner.as_u64().ok_or_else(bad)?)),
        "t" => SqlValue::Text(inner.as_str().ok_or_else(bad)?.to_string()),
        "b" => {
            let hex = inner.as_str().ok_or_else(bad)?;
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| bad())?;
            SqlValue::Blob(bytes)
        }
        _ => return Err(bad()),
    })
}
