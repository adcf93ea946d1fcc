//! A table's schema as the stream describes it (FIELD events), and the names vtmirror cannot
//! take from a source: `_vtmirror_…` (its own tables and columns) and `sqlite_…`.

use anyhow::{bail, Result};

use crate::source::proto::query::Field;
use crate::source::value::{storage_for, ColumnType, Storage};

/// MySQL column flag: part of the primary key.
pub const PRI_KEY_FLAG: u32 = 2;

/// Prefix reserved for vtmirror's own metadata tables.
pub const METADATA_PREFIX: &str = "_vtmirror_";

/// Whether a mirror table's column is vtmirror's own (named `_vtmirror_…`, like the owner
/// column of `mirror::owner`) rather than a source column: comparisons with the source leave
/// such columns out, and a source column of that name is refused. The one place that says so.
pub fn is_bookkeeping_column(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with(METADATA_PREFIX)
}

/// One source column as the latest FIELD event of a shard described it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub ctype: ColumnType,
    pub field: Field,
}

impl ColumnSchema {
    pub fn storage(&self) -> Storage {
        storage_for(self.ctype.vitess_type, self.ctype.collation)
    }
    pub fn is_pk(&self) -> bool {
        self.field.flags & PRI_KEY_FLAG != 0
    }
}

/// A table's schema as one shard streams it: the column order of its ROW values.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Bare table name (no keyspace prefix).
    pub table: String,
    pub columns: Vec<ColumnSchema>,
    /// Indexes into `columns` of the primary key, in key order.
    pub pk: Vec<usize>,
}

impl TableSchema {
    pub fn from_fields(table: &str, fields: &[Field], enum_set_strings: bool) -> Result<Self> {
        check_table_name(table)?;
        if fields.is_empty() {
            bail!("FIELD event for table {table} has no columns");
        }
        let columns: Vec<ColumnSchema> = fields
            .iter()
            .map(|f| ColumnSchema {
                name: f.name.clone(),
                ctype: ColumnType {
                    vitess_type: f.r#type,
                    collation: f.charset,
                    column_type: f.column_type.clone(),
                    enum_set_strings,
                },
                field: f.clone(),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if is_bookkeeping_column(&c.name) {
                bail!(
                    "source table {table} has a column named {:?}, which vtmirror reserves",
                    c.name
                );
            }
            if !seen.insert(c.name.to_lowercase()) {
                bail!("table {table} streams column {:?} twice", c.name);
            }
        }
        let pk: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].is_pk()).collect();
        if pk.is_empty() {
            bail!(
                "table {table} has no primary key; vtmirror applies changes by primary key \
                 and cannot mirror it (exclude it with --tables or --rule)"
            );
        }
        Ok(TableSchema {
            table: table.to_string(),
            columns,
            pk,
        })
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    pub fn pk_names(&self) -> Vec<String> {
        self.pk
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }
}

/// Rejects names that would collide with our metadata or cannot be stored.
pub fn check_table_name(table: &str) -> Result<()> {
    if table.is_empty() {
        bail!("a FIELD or ROW event names no table");
    }
    if table.to_lowercase().starts_with(METADATA_PREFIX) {
        bail!("source table {table} uses vtmirror's reserved prefix {METADATA_PREFIX}");
    }
    if table.to_lowercase().starts_with("sqlite_") {
        bail!("source table {table} uses SQLite's reserved prefix sqlite_");
    }
    Ok(())
}

/// `keyspace.table` (the default naming) or bare `table` → bare name.
pub fn bare_table_name<'a>(name: &'a str, keyspace: &str) -> &'a str {
    name.strip_prefix(keyspace)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_prefix_is_stripped_only_when_present() {
        assert_eq!(bare_table_name("commerce.customer", "commerce"), "customer");
        assert_eq!(bare_table_name("customer", "commerce"), "customer");
        assert_eq!(
            bare_table_name("other.customer", "commerce"),
            "other.customer"
        );
    }
}
