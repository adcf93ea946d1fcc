//! The change log's triggers: on each mirrored table, AFTER INSERT, UPDATE and DELETE, in
//! the `temp` schema (their bodies may not name a schema: `_vtmirror_changes` is found in
//! `main`, as no temp table has that name) (only the connection that made them has them, so a reader never
//! writes the log and a sync without the log leaves the file as it was).

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::json;

use crate::mirror::schema::quote;

/// A table's column as the log names it.
pub struct Column {
    pub name: String,
    /// The SQLite type the mirror declared (integer, real, text, blob, numeric).
    pub storage: String,
    /// Place in the primary key (1-based), 0 outside it.
    pub pk: i64,
}

impl Column {
    pub fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "storage": self.storage, "pk": self.pk})
    }
}

/// Columns per `vtmirror_image` call (SQLite caps a function's arguments).
const IMAGE_COLUMNS: usize = 100;

/// The file's mirrored tables.
pub fn mirrored_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table'")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names
        .into_iter()
        .filter(|n| super::is_mirrored(n))
        .collect())
}

/// `table`'s columns in order.
pub fn columns(conn: &Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(&format!("PRAGMA main.table_info({})", quote(table)))?;
    let columns = stmt
        .query_map([], |r| {
            Ok(Column {
                name: r.get(1)?,
                storage: r.get::<_, String>(2)?.to_lowercase(),
                pk: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .with_context(|| format!("reading the columns of table {table}"))?;
    Ok(columns)
}

/// The SQL that encodes a row image: `prefix` is `NEW.`, `OLD.` or empty (a SELECT).
fn image_sql(prefix: &str, columns: &[Column]) -> String {
    let groups: Vec<String> = columns
        .chunks(IMAGE_COLUMNS)
        .map(|group| {
            let refs: Vec<String> = group
                .iter()
                .map(|c| format!("{prefix}{}", quote(&c.name)))
                .collect();
            format!("vtmirror_image({})", refs.join(", "))
        })
        .collect();
    match groups.len() {
        1 => groups.into_iter().next().unwrap_or_default(),
        _ => format!("vtmirror_join({})", groups.join(", ")),
    }
}

/// (Re)makes `table`'s three triggers for its current columns, whose list is `cols`.
pub fn create(conn: &Connection, table: &str, cols: i64) -> Result<()> {
    remove(conn, table)?;
    let columns = columns(conn, table)?;
    let (new, old) = (image_sql("NEW.", &columns), image_sql("OLD.", &columns));
    let on = format!("main.{}", quote(table));
    let name = |kind: &str| quote(&format!("vtmirror_log_{kind}_{table}"));
    let literal = format!("'{}'", table.replace('\'', "''"));
    let sql = format!(
        "CREATE TEMP TRIGGER {ins} AFTER INSERT ON {on} BEGIN
           INSERT INTO _vtmirror_changes (tx, op, cols, after)
           VALUES (vtmirror_tx(), 1, {cols}, {new});
         END;
         CREATE TEMP TRIGGER {upd} AFTER UPDATE ON {on} BEGIN
           INSERT INTO _vtmirror_changes (tx, op, cols, after, before)
           VALUES (vtmirror_tx(), 2, {cols}, {new}, {old});
         END;
         CREATE TEMP TRIGGER {del} AFTER DELETE ON {on} WHEN vtmirror_logs_deletes({literal}) BEGIN
           INSERT INTO _vtmirror_changes (tx, op, cols, before)
           VALUES (vtmirror_tx(), 3, {cols}, {old});
         END;",
        ins = name("ins"),
        upd = name("upd"),
        del = name("del"),
    );
    conn.execute_batch(&sql)
        .with_context(|| format!("creating the change log's triggers on table {table}"))
}

/// Drops every trigger on `table` (a renamed table keeps its old ones).
fn remove(conn: &Connection, table: &str) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT name FROM temp.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for name in names {
        conn.execute_batch(&format!("DROP TRIGGER temp.{}", quote(&name)))?;
    }
    Ok(())
}

/// An insert entry for every row of `table` (a resync's rows), in rowid order.
pub fn snapshot(conn: &Connection, table: &str, tx: i64, cols: i64) -> Result<()> {
    let columns = columns(conn, table)?;
    conn.execute(
        &format!(
            "INSERT INTO main._vtmirror_changes (tx, op, cols, after)
             SELECT {tx}, 1, {cols}, {} FROM main.{} ORDER BY rowid",
            image_sql("", &columns),
            quote(table)
        ),
        [],
    )
    .with_context(|| format!("logging every row of table {table} for its resync"))?;
    Ok(())
}
