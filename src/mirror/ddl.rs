//! Keeps mirrored SQLite tables in line with the source: each table's layout equal to the merged
//! source schema (create, add columns, or rebuild copying the columns both layouts share), and
//! the table-level effects of source DDL (drop, truncate, rename table or column).

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::mirror::change_log::{self, Marker};
use crate::mirror::metadata;
use crate::mirror::owner::{owner_of, OWNER_COLUMN};
use crate::source::naming::Naming;
use crate::source::table_schema::is_bookkeeping_column;

mod per_shard;
use crate::mirror::schema::{quote, Layout};
use crate::source::ddl_statement::{is_internal, retarget, SourceDdl};
use crate::source::table_schema::check_table_name;
use crate::source::value::Storage;

mod retype;
use retype::check_retype;

fn storage_from_declared(declared: &str) -> Storage {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" => Storage::Integer,
        "ANY" => Storage::IntegerOrText,
        "REAL" => Storage::Real,
        "TEXT" => Storage::Text,
        _ => Storage::Blob,
    }
}

/// The layout SQLite has for `table`, or None if the table does not exist.
pub fn current_layout(conn: &Connection, table: &str) -> Result<Option<Layout>> {
    let mut stmt = conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let rows = stmt.query_map([table], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (name, declared, pk_pos) = row?;
        if is_bookkeeping_column(&name) {
            continue;
        }
        if pk_pos > 0 {
            pk.push((pk_pos, name.clone()));
        }
        columns.push((name, storage_from_declared(&declared)));
    }
    if columns.is_empty() {
        return Ok(None);
    }
    pk.sort();
    Ok(Some(Layout {
        columns,
        pk: pk.into_iter().map(|(_, n)| n).collect(),
    }))
}

/// Makes `table` match `wanted`. Returns true if anything changed (statements must be
/// re-prepared).
pub fn ensure_layout(conn: &Connection, table: &str, wanted: &Layout) -> Result<bool> {
    let current = current_layout(conn, table)?;
    let changed = match current {
        None => {
            conn.execute_batch(&wanted.create_sql(table))
                .with_context(|| format!("creating table {table}"))?;
            true
        }
        Some(current) if &current == wanted => false,
        Some(current) => {
            match wanted.added_columns(&current) {
                Some(added) => add_columns(conn, table, &added)?,
                None => rebuild(conn, table, &current, wanted)?,
            }
            true
        }
    };
    let changed = add_owner_column(conn, table)? || changed;
    if changed {
        change_log::mark(conn, Marker::Schema { table })?;
    }
    Ok(changed)
}

/// Gives a table of a mirror made before rows recorded their shard (`mirror::owner`) the
/// owner column: NULL, a shard spanning every key, is what such a mirror's rows meant.
fn add_owner_column(conn: &Connection, table: &str) -> Result<bool> {
    let has: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, OWNER_COLUMN],
            |r| r.get(0),
        )
        .with_context(|| format!("reading the columns of table {table}"))?;
    if !has {
        conn.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} TEXT",
            quote(table),
            quote(OWNER_COLUMN)
        ))
        .with_context(|| format!("adding the owner column to table {table}"))?;
    }
    Ok(!has)
}

fn add_columns(conn: &Connection, table: &str, added: &[(String, Storage)]) -> Result<()> {
    for (name, storage) in added {
        conn.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(table),
            quote(name),
            storage.declared_type()
        ))
        .with_context(|| format!("adding a column to table {table}"))?;
    }
    Ok(())
}

/// Recreates the table with the new layout, keeping the values of shared columns.
fn rebuild(conn: &Connection, table: &str, current: &Layout, wanted: &Layout) -> Result<()> {
    let staging = format!("_vtmirror_rebuild_{table}");
    let mut shared: Vec<String> = wanted
        .columns
        .iter()
        .filter(|(n, _)| current.columns.iter().any(|(c, _)| c == n))
        .map(|(n, _)| quote(n))
        .collect();
    add_owner_column(conn, table)?;
    shared.push(quote(OWNER_COLUMN));
    let sql = format!(
        "DROP TABLE IF EXISTS {staging_q};
         {create};
         INSERT INTO {staging_q} ({cols}) SELECT {cols} FROM {table_q};
         DROP TABLE {table_q};
         ALTER TABLE {staging_q} RENAME TO {table_q};",
        staging_q = quote(&staging),
        create = wanted.create_sql(&staging),
        cols = shared.join(", "),
        table_q = quote(table),
    );
    conn.execute_batch(&sql)
        .with_context(|| format!("rebuilding table {table} for a changed source schema"))
}

/// Where a source DDL statement ran: its shard (metadata key) and how the bare table names
/// it mentions map to mirror tables (`mirror::naming`).
pub struct DdlScope<'a> {
    pub keyspace: &'a str,
    pub shard: &'a str,
    pub naming: &'a Naming,
    /// Tables being copied (`table_copy`): their copy brings the statement's effect, so a
    /// statement the mirror cannot follow does not stop it.
    pub copying: &'a HashMap<String, String>,
}

/// A source change to `table` that no stream consumer can follow (values rewritten without
/// row events). A definite error; with `sync --recopy-on-ddl` the table is copied again.
#[derive(Debug)]
pub struct CannotFollow {
    pub table: String,
    pub message: String,
}

impl std::fmt::Display for CannotFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; the mirror stays at the position before it (sync --recopy-on-ddl copies the \
             table again instead; or start a new mirror file)",
            self.message
        )
    }
}

impl std::error::Error for CannotFollow {}

impl CannotFollow {
    pub fn error(table: &str, message: String) -> anyhow::Error {
        anyhow::Error::new(CannotFollow {
            table: table.to_string(),
            message,
        })
    }
}

impl DdlScope<'_> {
    fn table(&self, bare: &str) -> String {
        self.naming.table(self.keyspace, bare).into_owned()
    }
}

/// Applies the table-level effect of a source DDL statement, inside the writer's transaction
/// (so it commits with the checkpoint that follows the DDL). Statements about tables the
/// mirror does not hold are ignored; Vitess's internal tables are never mirrored, but online
/// DDL moves tables through them (see `rename_tables`).
pub fn apply_source_ddl(conn: &Connection, scope: &DdlScope, ddl: &SourceDdl) -> Result<()> {
    match ddl {
        SourceDdl::Other => Ok(()),
        SourceDdl::Unsupported { table, reason } => {
            refuse_if_mirrored(conn, scope, &scope.table(table), reason)
        }
        SourceDdl::Unreadable { names } => names.iter().try_for_each(|name| {
            let reason = "a DDL statement vtmirror cannot read names it";
            refuse_if_mirrored(conn, scope, &scope.table(name), reason)
        }),
        SourceDdl::Retype {
            table,
            columns,
            renamed,
        } => {
            let table = &scope.table(table);
            check_retype(conn, scope, table, columns)?;
            match renamed {
                Some((from, to)) => rename_column(conn, scope, table, from, to),
                None => Ok(()),
            }
        }
        SourceDdl::DropTables(tables) => tables
            .iter()
            .filter(|t| !is_internal(t))
            .try_for_each(|t| per_shard::drop(conn, scope, &scope.table(t))),
        SourceDdl::Truncate(table) => {
            let table = &scope.table(table);
            if exists(conn, table)? {
                let shard = owner_of(scope.shard);
                change_log::mark(conn, Marker::Truncate { table, shard })?;
                per_shard::remove_rows(conn, table, owner_of(scope.shard))
                    .with_context(|| format!("truncating table {table}"))?;
            }
            Ok(())
        }
        SourceDdl::RenameTables(pairs) => rename_tables(conn, scope, pairs),
        SourceDdl::RenameColumn { table, from, to } => {
            rename_column(conn, scope, &scope.table(table), from, to)
        }
        SourceDdl::ShadowAlter { shadow, statement } => {
            metadata::remember_shadow_ddl(conn, scope.shard, shadow, statement)
        }
    }
}

pub(crate) fn exists(conn: &Connection, table: &str) -> Result<bool> {
    Ok(current_layout(conn, table)?.is_some())
}

fn refuse_if_mirrored(
    conn: &Connection,
    scope: &DdlScope,
    table: &str,
    reason: &str,
) -> Result<()> {
    if exists(conn, table)? && !scope.copying.contains_key(table) {
        return Err(CannotFollow::error(
            table,
            format!("source DDL on table {table} cannot be mirrored: {reason}"),
        ));
    }
    Ok(())
}

pub(crate) fn drop_table(conn: &Connection, table: &str) -> Result<()> {
    if exists(conn, table)? {
        change_log::mark(conn, Marker::Drop { table })?;
        conn.execute_batch(&format!("DROP TABLE {}", quote(table)))
            .with_context(|| format!("dropping table {table}"))?;
    }
    metadata::forget_table(conn, table)
}

/// Renames in statement order. Besides plain renames, two Vitess online DDL (strategy
/// `vitess`) moves: a cut-over (`t` → `_vt_hld_…`, shadow `_vt_vrp_…` → `t`, …) swaps the
/// altered shadow into the table's name, and a DROP TABLE moves the table aside for table GC
/// (`t` → `_vt_…` alone), which for the mirror is the drop.
fn rename_tables(conn: &Connection, scope: &DdlScope, pairs: &[(String, String)]) -> Result<()> {
    for (i, (from, to)) in pairs.iter().enumerate() {
        match (is_internal(from), is_internal(to)) {
            (true, true) => {}
            (false, false) => per_shard::rename(conn, scope, &scope.table(from), &scope.table(to))?,
            (true, false) => cut_over(conn, scope, from, to)?,
            (false, true) => {
                let swapped = pairs[i + 1..]
                    .iter()
                    .any(|(f, t)| t == from && is_internal(f));
                if !swapped {
                    per_shard::drop(conn, scope, &scope.table(from))?;
                }
            }
        }
    }
    Ok(())
}

pub fn rename_table(conn: &Connection, from: &str, to: &str) -> Result<()> {
    if !exists(conn, from)? {
        return Ok(());
    }
    check_table_name(to)?;
    if exists(conn, to)? {
        change_log::mark(conn, Marker::Drop { table: to })?;
        conn.execute_batch(&format!("DROP TABLE {}", quote(to)))?;
    }
    conn.execute_batch(&format!(
        "ALTER TABLE {} RENAME TO {}",
        quote(from),
        quote(to)
    ))
    .with_context(|| format!("renaming table {from} to {to}"))?;
    metadata::rename_table(conn, from, to)?;
    change_log::mark(conn, Marker::Rename { from, to })
}

/// The shadow's rows never reached the stream, so the table is only followed when every
/// ALTER the shadow received is one the mirror can apply to the rows it holds.
fn cut_over(conn: &Connection, scope: &DdlScope, shadow: &str, bare: &str) -> Result<()> {
    let (shard, table) = (scope.shard, &scope.table(bare));
    let statements = metadata::take_shadow_ddl(conn, shard, shadow)?;
    if !exists(conn, table)? {
        return Ok(());
    }
    if statements.is_empty() && !scope.copying.contains_key(table) {
        return Err(CannotFollow::error(
            table,
            format!(
                "table {table} was replaced by a Vitess online DDL cut-over (shadow table \
                 {shadow} on shard {shard}) whose ALTER was not in the stream, so its rows may \
                 have changed without row events"
            ),
        ));
    }
    for statement in &statements {
        apply_source_ddl(conn, scope, &retarget(statement, shadow, bare))
            .with_context(|| format!("online DDL cut-over of table {table}"))?;
    }
    Ok(())
}

/// A column rename, for the whole table: so only where one shard holds every key. In a
/// sharded keyspace each shard renames at its own binlog position (a direct ALTER runs on
/// each shard, an online DDL cuts over shard by shard), and until then that shard's rows
/// stream the old name; one SQLite column cannot carry both, and renaming at the first
/// shard's statement would apply it to the other shards' rows too. A definite stop instead
/// (`--recopy-on-ddl` copies the table again).
fn rename_column(
    conn: &Connection,
    scope: &DdlScope,
    table: &str,
    from: &str,
    to: &str,
) -> Result<()> {
    let has_column =
        current_layout(conn, table)?.is_some_and(|l| l.columns.iter().any(|(n, _)| n == from));
    if has_column && owner_of(scope.shard).is_some() && !scope.copying.contains_key(table) {
        return Err(CannotFollow::error(
            table,
            format!(
                "source DDL on table {table} cannot be mirrored: column {from} is renamed to \
                 {to} in a sharded keyspace, where each shard renames it at its own time \
                 (shard {} first)",
                scope.shard
            ),
        ));
    }
    if has_column {
        conn.execute_batch(&format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            quote(table),
            quote(from),
            quote(to)
        ))
        .with_context(|| format!("renaming a column of table {table}"))?;
        metadata::rename_field(conn, table, from, to)?;
        change_log::mark(conn, Marker::Schema { table })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(cols: &[(&str, Storage)], pk: &[&str]) -> Layout {
        Layout {
            columns: cols.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            pk: pk.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_changed_column_type_rebuilds_and_keeps_shared_values() {
        let conn = Connection::open_in_memory().unwrap();
        let v1 = layout(
            &[
                ("id", Storage::Integer),
                ("x", Storage::Integer),
                ("gone", Storage::Text),
            ],
            &["id"],
        );
        assert!(ensure_layout(&conn, "t", &v1).unwrap());
        conn.execute("INSERT INTO t (id, x, gone) VALUES (1, 5, 'a')", [])
            .unwrap();
        let v2 = layout(&[("id", Storage::Integer), ("x", Storage::Text)], &["id"]);
        assert!(ensure_layout(&conn, "t", &v2).unwrap());
        assert_eq!(current_layout(&conn, "t").unwrap().unwrap(), v2);
        let x: String = conn
            .query_row("SELECT x FROM t WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, "5");
        assert!(!ensure_layout(&conn, "t", &v2).unwrap());
    }

    #[test]
    fn a_column_rename_stops_in_a_sharded_keyspace_and_is_followed_on_a_full_range_shard() {
        let dir = tempfile::tempdir().unwrap();
        let identity = crate::mirror::store::Identity {
            keyspace: "ks".into(),
            filter: "[]".into(),
        };
        let durability = crate::mirror::store::Durability::Normal;
        let mirror =
            crate::mirror::store::Mirror::open(&dir.path().join("m.db"), &identity, durability)
                .unwrap();
        let conn = &mirror.conn;
        let v1 = layout(&[("id", Storage::Integer), ("c", Storage::Text)], &["id"]);
        ensure_layout(conn, "t", &v1).unwrap();
        let (naming, copying) = (Naming::of_label(""), HashMap::new());
        let rename = SourceDdl::RenameColumn {
            table: "t".into(),
            from: "c".into(),
            to: "d".into(),
        };
        let scope = |shard| DdlScope {
            keyspace: "ks",
            shard,
            naming: &naming,
            copying: &copying,
        };
        let err = apply_source_ddl(conn, &scope("-80"), &rename).unwrap_err();
        assert!(err.downcast_ref::<CannotFollow>().is_some(), "{err:#}");
        assert!(err.to_string().contains("table t"), "{err}");
        assert_eq!(current_layout(conn, "t").unwrap().unwrap(), v1, "untouched");
        apply_source_ddl(conn, &scope("0"), &rename).unwrap();
        let v2 = layout(&[("id", Storage::Integer), ("d", Storage::Text)], &["id"]);
        assert_eq!(current_layout(conn, "t").unwrap().unwrap(), v2);
    }

    #[test]
    fn an_added_column_is_added_in_place() {
        let conn = Connection::open_in_memory().unwrap();
        let v1 = layout(&[("id", Storage::Integer)], &["id"]);
        ensure_layout(&conn, "odd \"name\"", &v1).unwrap();
        let v2 = layout(
            &[("id", Storage::Integer), ("select", Storage::Real)],
            &["id"],
        );
        ensure_layout(&conn, "odd \"name\"", &v2).unwrap();
        assert_eq!(current_layout(&conn, "odd \"name\"").unwrap().unwrap(), v2);
    }
}
