//! The writer's row side: table schemas from FIELD events (layout kept in line with the
//! source) and row changes applied with cached, multi-row statements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use rusqlite::params_from_iter;

use super::Writer;
use crate::mirror::ddl::ensure_layout;
use crate::mirror::metadata;
use crate::mirror::owner::owner_of;
use crate::mirror::schema::{Layout, RowSql};
use crate::mirror::upsert::{change_values, multi_row_upsert, row_params, ROWS_PER_STATEMENT};
use crate::mirror::versions::ShardRows;
use crate::source::decode::{Change, ShardSchema};
use crate::source::table_schema::TableSchema;

/// A shard schema's statements: the single-row upsert and delete, and the multi-row upsert.
pub(super) struct Statements {
    schema: Arc<ShardSchema>,
    sql: Arc<RowSql>,
    multi_upsert: Option<Arc<str>>,
}

/// Per mirrored table: each shard's schema and the statements per column list.
#[derive(Default)]
pub(super) struct MirrorTable {
    pub(super) shards: BTreeMap<String, TableSchema>,
    statements: HashMap<String, Statements>,
}

impl Writer {
    /// Records a shard's table schema. Only a copy's FIELD event starts a copy state: a
    /// table that arrives by binlog events during the copy (a tablet that did not know it
    /// when it planned the copy) is not one the copy delivered (`mirror::copy_check`).
    pub(super) fn apply_schema(&mut self, incoming: &Arc<ShardSchema>, copied: bool) -> Result<()> {
        self.begin()?;
        let table_name = self.target(&incoming.schema.table).to_string();
        if !copied && self.streamed_before_copy(&table_name, &incoming.shard) {
            return Err(crate::error::Transient(format!(
                "shard {} streams table {} without copying it first (its tablet does not know \
                 the table yet); copying it again",
                incoming.shard, incoming.schema.table
            ))
            .into());
        }
        if let Some(other) = crate::mirror::schema::case_collision(self.tables.keys(), &table_name)
        {
            anyhow::bail!(
                "source tables {other} and {table_name} differ only in case, which SQLite table \
                 names cannot tell apart; mirror one of them (--tables or --rule)"
            );
        }
        let table = self.tables.entry(table_name.clone()).or_default();
        table.statements.remove(&incoming.shard);
        let conn = &self.mirror.conn;
        if copied && !self.copy_completed && !self.shards_copied.contains(&incoming.shard) {
            metadata::add_copy_progress(conn, &incoming.shard, &table_name, 0)?;
            self.pending.copy_changed = true;
        }
        if table.shards.get(&incoming.shard) == Some(&incoming.schema) {
            return Ok(());
        }
        if let Some(old) = table.shards.get(&incoming.shard) {
            if let Some(column) =
                crate::mirror::schema::value_rewriting_change(old, &incoming.schema)
            {
                return Err(crate::mirror::ddl::CannotFollow::error(
                    &table_name,
                    format!(
                        "the type of column {column} of table {table_name} changed in a way \
                         that rewrites existing values without row events"
                    ),
                ));
            }
        }
        metadata::save_fields(conn, &table_name, incoming)?;
        table
            .shards
            .insert(incoming.shard.clone(), incoming.schema.clone());
        let others = table
            .shards
            .iter()
            .filter(|(s, _)| *s != &incoming.shard)
            .map(|(_, schema)| schema);
        let layout = Layout::merge(&incoming.schema, others);
        ensure_layout(conn, &table_name, &layout)?;
        Ok(())
    }

    fn statements(&mut self, schema: &Arc<ShardSchema>) -> (Arc<RowSql>, Option<Arc<str>>) {
        let target = self.target(&schema.schema.table).to_string();
        let table = self.tables.entry(target.clone()).or_default();
        if let Some(known) = table.statements.get(&schema.shard) {
            if Arc::ptr_eq(&known.schema, schema) {
                return (Arc::clone(&known.sql), known.multi_upsert.clone());
            }
        }
        let sql = RowSql::new(
            &target,
            &schema.schema.column_names(),
            &schema.schema.pk_names(),
        );
        let multi_upsert: Option<Arc<str>> = multi_row_upsert(
            &sql.upsert,
            &target,
            &sql.insert_columns,
            ROWS_PER_STATEMENT,
        )
        .map(Arc::from);
        let statements = Statements {
            schema: Arc::clone(schema),
            sql: Arc::clone(&sql),
            multi_upsert: multi_upsert.clone(),
        };
        table.statements.insert(schema.shard.clone(), statements);
        (sql, multi_upsert)
    }

    /// Applies row changes in order, each to the version of its key this shard holds
    /// (`mirror::versions`): runs of upserts go `ROWS_PER_STATEMENT` rows per statement
    /// (rows that met another shard's version are then resolved one by one), the rest one
    /// by one; deletes and merges of partial images (`mirror::versions::merge`) one by one.
    pub(super) fn apply_rows(
        &mut self,
        schema: &Arc<ShardSchema>,
        changes: &[Change],
    ) -> Result<()> {
        self.begin()?;
        self.ensure_streamed_table(schema)?;
        let (sql, multi_sql) = self.statements(schema);
        let owner = owner_of(&schema.shard);
        let shard_rows = ShardRows {
            conn: &self.mirror.conn,
            table: self.target(&schema.schema.table),
            sql: &sql,
            pk: &schema.schema.pk,
            owner,
            since: self.move_started(),
        };
        let table = &schema.schema.table;
        let mut multi = (multi_sql.as_deref())
            .map(|text| shard_rows.conn.prepare_cached(text))
            .transpose()
            .with_context(|| format!("preparing a statement for table {table}"))?;
        let mut aside = self.versions_aside;
        let mut rest = changes;
        while let Some(first) = rest.first() {
            let upserts = rest
                .iter()
                .take_while(|c| matches!(c, Change::Upsert(_)))
                .count();
            let applied = match (first, multi.as_mut()) {
                (Change::Delete(key), _) => shard_rows.delete(key, aside).map(|()| 1),
                (
                    Change::Merge {
                        key,
                        values,
                        present,
                    },
                    _,
                ) => (shard_rows.merge(&schema.schema, key, values, present, aside)).map(|moved| {
                    aside |= moved;
                    1
                }),
                (Change::Upsert(_), Some(multi)) if upserts >= ROWS_PER_STATEMENT => {
                    let run = &rest[..ROWS_PER_STATEMENT];
                    let values = run.iter().flat_map(|c| row_params(c, &owner));
                    let changed = multi
                        .execute(params_from_iter(values))
                        .with_context(|| format!("applying row changes to table {table}"))?;
                    // A row that met another shard's version changed nothing: redo the run
                    // row by row (each upsert is idempotent) and resolve those rows.
                    if changed < ROWS_PER_STATEMENT {
                        for change in run {
                            aside |= shard_rows.upsert(change_values(change))?;
                        }
                    }
                    Ok(ROWS_PER_STATEMENT)
                }
                (Change::Upsert(values), _) => shard_rows.upsert(values).map(|moved| {
                    aside |= moved;
                    1
                }),
            }?;
            rest = &rest[applied..];
        }
        drop(multi);
        self.versions_aside = aside;
        self.pending.rows += changes.len();
        Ok(())
    }

    /// The source time a version set aside now is measured from: the stream's latest
    /// transaction time, or during a copy (whose rows carry none) the clock, near the copy's
    /// snapshot, so that moves in flight then are not taken for a key held twice.
    fn move_started(&self) -> i64 {
        match self
            .pending
            .event_time
            .max(self.progress.snapshot().event_time)
        {
            0 => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            t => t,
        }
    }

    /// Whether `target` is the shadow of a table copy to which `shard` sends a binlog FIELD
    /// event before its copy sent one: vttablet holds a table's binlog events back until it
    /// copied it, unless it planned its copy without the table (asked by pattern, in a
    /// mirror of several keyspaces, by a tablet that has not loaded the table yet). Applied,
    /// those events would make the shadow look delivered while holding none of the older rows.
    fn streamed_before_copy(&self, target: &str, shard: &str) -> bool {
        let copying = self.copying.values().any(|shadow| shadow == target);
        copying && !(self.tables.get(target)).is_some_and(|t| t.shards.contains_key(shard))
    }

    /// A shard still streaming a table another shard's DROP removed from the file (its own
    /// DROP is yet to come) brings the table back with its schema.
    fn ensure_streamed_table(&mut self, schema: &Arc<ShardSchema>) -> Result<()> {
        let target = self.target(&schema.schema.table);
        let known = (self.tables.get(target)).is_some_and(|t| t.shards.contains_key(&schema.shard));
        if !known {
            self.apply_schema(schema, false)?;
        }
        Ok(())
    }
}
