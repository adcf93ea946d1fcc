//! The writer's row side: table schemas from FIELD events (layout kept in line with the
//! source) and row changes applied with cached, multi-row statements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use rusqlite::params_from_iter;

use super::Writer;
use crate::mirror::ddl::ensure_layout;
use crate::mirror::metadata;
use crate::mirror::schema::{Layout, RowSql, TableSchema};
use crate::mirror::upsert::{change_values, multi_row_upsert, ROWS_PER_STATEMENT};
use crate::source::decode::{Change, ShardSchema};

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
    pub(super) fn apply_schema(&mut self, incoming: &Arc<ShardSchema>) -> Result<()> {
        self.begin()?;
        let table_name = self.target(&incoming.schema.table).to_string();
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
        if !self.copy_completed && !self.shards_copied.contains(&incoming.shard) {
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
            &schema.schema.column_names(),
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

    /// Applies row changes in order: runs of upserts go `ROWS_PER_STATEMENT` rows per
    /// statement, the rest one by one; deletes one by one.
    pub(super) fn apply_rows(
        &mut self,
        schema: &Arc<ShardSchema>,
        changes: &[Change],
    ) -> Result<()> {
        self.begin()?;
        let (sql, multi_sql) = self.statements(schema);
        let table = &schema.schema.table;
        let conn = &self.mirror.conn;
        let prepare = |text: &str| {
            conn.prepare_cached(text)
                .with_context(|| format!("preparing a statement for table {table}"))
        };
        let (mut upsert, mut delete) = (prepare(&sql.upsert)?, prepare(&sql.delete)?);
        let mut multi = multi_sql.as_deref().map(prepare).transpose()?;
        let mut rest = changes;
        while let Some(first) = rest.first() {
            let upserts = rest
                .iter()
                .take_while(|c| matches!(c, Change::Upsert(_)))
                .count();
            let applied = match (first, multi.as_mut()) {
                (Change::Delete(key), _) => delete.execute(params_from_iter(key.iter())).map(|_| 1),
                (Change::Upsert(_), Some(multi)) if upserts >= ROWS_PER_STATEMENT => {
                    let values = rest[..ROWS_PER_STATEMENT].iter().flat_map(change_values);
                    multi
                        .execute(params_from_iter(values))
                        .map(|_| ROWS_PER_STATEMENT)
                }
                (Change::Upsert(values), _) => {
                    upsert.execute(params_from_iter(values.iter())).map(|_| 1)
                }
            }
            .with_context(|| format!("applying row changes to table {table}"))?;
            rest = &rest[applied..];
        }
        self.pending.rows += changes.len();
        Ok(())
    }
}
