//! Table-level statements as one shard runs them (`mirror::owner`): vtgate runs TRUNCATE,
//! DROP and RENAME TABLE on every shard of a sharded keyspace, and each shard's statement
//! reaches the stream on its own, interleaved with the other shards' row changes. Each one
//! therefore touches only the rows whose owner's key range overlaps its shard's; a statement
//! from a shard spanning every key (an unsharded keyspace) touches the whole table.

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::{current_layout, drop_table, ensure_layout, exists, rename_table, DdlScope};
use crate::mirror::metadata;
use crate::mirror::owner::{overlaps, owner_of, OWNER_COLUMN};
use crate::mirror::schema::quote;
use crate::mirror::versions;

/// The distinct owners of `table`'s rows that overlap `owner` (each `Some` a shard name).
fn owners_within(
    conn: &Connection,
    table: &str,
    owner: Option<&str>,
) -> Result<Vec<Option<String>>> {
    let sql = format!(
        "SELECT DISTINCT {} FROM {}",
        quote(OWNER_COLUMN),
        quote(table)
    );
    let owners: Vec<Option<String>> = conn
        .prepare(&sql)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading which shards hold rows of table {table}"))?;
    Ok(owners
        .into_iter()
        .filter(|o| overlaps(o.as_deref(), owner))
        .collect())
}

/// Deletes the rows (and row versions kept aside) the shard `owner` holds; another shard's
/// version of a key whose row went takes its place.
pub fn remove_rows(conn: &Connection, table: &str, owner: Option<&str>) -> Result<()> {
    if owner.is_none() {
        conn.execute_batch(&format!("DELETE FROM {}", quote(table)))?;
        return versions::drop_versions(conn, table, None, None);
    }
    let delete = format!(
        "DELETE FROM {} WHERE {} IS ?1",
        quote(table),
        quote(OWNER_COLUMN)
    );
    for held in owners_within(conn, table, owner)? {
        conn.execute(&delete, [held])?;
    }
    versions::drop_versions(conn, table, None, owner)?;
    versions::bring_back_all(conn, table)
}

fn is_empty(conn: &Connection, table: &str) -> Result<bool> {
    let sql = format!("SELECT NOT EXISTS (SELECT 1 FROM {})", quote(table));
    Ok(conn.query_row(&sql, [], |r| r.get(0))?)
}

/// A shard's DROP TABLE: its rows and its schema of the table go; the table itself goes
/// once no shard holds a row of it (the others' DROPs are then still to come, or they held
/// none).
pub fn drop(conn: &Connection, scope: &DdlScope, table: &str) -> Result<()> {
    let owner = owner_of(scope.shard);
    if owner.is_none() || !exists(conn, table)? {
        return drop_table(conn, table);
    }
    remove_rows(conn, table, owner).with_context(|| format!("dropping table {table}"))?;
    metadata::forget_shard_fields(conn, table, scope.shard)?;
    if is_empty(conn, table)? {
        drop_table(conn, table)?;
    }
    Ok(())
}

/// A shard's RENAME TABLE: its rows move to the new name; the old table goes once no shard
/// holds a row of it.
pub fn rename(conn: &Connection, scope: &DdlScope, from: &str, to: &str) -> Result<()> {
    let owner = owner_of(scope.shard);
    let Some(layout) = current_layout(conn, from)? else {
        return Ok(());
    };
    let others_hold_rows = owners_within(conn, from, None)?
        .iter()
        .any(|o| !overlaps(o.as_deref(), owner));
    if owner.is_none() || (!others_hold_rows && !exists(conn, to)?) {
        return rename_table(conn, from, to);
    }
    crate::source::table_schema::check_table_name(to)?;
    ensure_layout(conn, to, &layout)?;
    let mut columns: Vec<String> = layout.columns.iter().map(|(n, _)| quote(n)).collect();
    columns.push(quote(OWNER_COLUMN));
    let columns = columns.join(", ");
    let (from_q, to_q, owner_q) = (quote(from), quote(to), quote(OWNER_COLUMN));
    for held in owners_within(conn, from, owner)? {
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {to_q} ({columns}) SELECT {columns} FROM {from_q} WHERE {owner_q} IS ?1"
            ),
            [&held],
        )
        .with_context(|| format!("moving a shard's rows of table {from} to {to}"))?;
        conn.execute(
            &format!("DELETE FROM {from_q} WHERE {owner_q} IS ?1"),
            [&held],
        )?;
    }
    metadata::forget_shard_fields(conn, to, scope.shard)?;
    conn.execute(
        "UPDATE _vtmirror_fields SET table_name = ?2 WHERE table_name = ?1 AND shard = ?3",
        [from, to, scope.shard],
    )
    .with_context(|| format!("moving a shard's schema of table {from} to {to}"))?;
    if is_empty(conn, from)? {
        drop_table(conn, from)?;
    }
    Ok(())
}
