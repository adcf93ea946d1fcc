//! The SQLite layout derived from a table schema, the rows' SQL, identifier quoting and the
//! names of copies' shadow tables.

use std::sync::Arc;

use crate::mirror::owner::OWNER_COLUMN;
use crate::source::table_schema::TableSchema;
use crate::source::value::Storage;

/// A quoted SQLite identifier: any name is safe, including quotes and reserved words.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Hidden name prefix of a table being copied; `_vtmirror_` keeps it out of every listing.
pub const SHADOW_PREFIX: &str = "_vtmirror_copy_";

/// The hidden table a copy of `table` is written to.
pub fn shadow_of(table: &str) -> String {
    format!("{SHADOW_PREFIX}{table}")
}

/// The table a shadow name copies, if it is one.
pub fn table_of_shadow(name: &str) -> Option<&str> {
    name.strip_prefix(SHADOW_PREFIX)
}

/// The physical SQLite table: columns (name, storage) and primary key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub columns: Vec<(String, Storage)>,
    pub pk: Vec<String>,
}

impl Layout {
    /// Union of the shards' schemas: the latest shard's columns first, then columns other
    /// shards still stream (a DDL rolls out shard by shard; nothing is dropped early).
    pub fn merge<'a>(latest: &TableSchema, others: impl Iterator<Item = &'a TableSchema>) -> Self {
        let mut columns: Vec<(String, Storage)> = latest
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.storage()))
            .collect();
        for other in others {
            for c in &other.columns {
                if !columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(&c.name)) {
                    columns.push((c.name.clone(), c.storage()));
                }
            }
        }
        Layout {
            columns,
            pk: latest.pk_names(),
        }
    }

    pub fn create_sql(&self, table: &str) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(n, s)| format!("{} {}", quote(n), s.declared_type()))
            .collect();
        let pk: Vec<String> = self.pk.iter().map(|n| quote(n)).collect();
        format!(
            "CREATE TABLE {} ({}, {} TEXT, PRIMARY KEY ({})) STRICT",
            quote(table),
            cols.join(", "),
            quote(OWNER_COLUMN),
            pk.join(", ")
        )
    }

    /// Columns of `self` appended after all of `old`'s (then ALTER TABLE ADD COLUMN suffices).
    pub fn added_columns(&self, old: &Layout) -> Option<Vec<(String, Storage)>> {
        if self.pk != old.pk || self.columns.len() < old.columns.len() {
            return None;
        }
        if self.columns[..old.columns.len()] != old.columns[..] {
            return None;
        }
        Some(self.columns[old.columns.len()..].to_vec())
    }
}

/// SQL statements to apply row changes for one column list of one table. Every statement
/// binds the source columns as `?1..?n` and the writing shard's owner (`mirror::owner`)
/// after them; the guarded ones touch a row only while that shard (or no shard) holds it.
#[derive(Debug)]
pub struct RowSql {
    /// The columns an upsert binds, in order: the source's, then the owner.
    pub insert_columns: Vec<String>,
    /// Insert, or update the row this shard holds; a row another shard holds is left alone
    /// (0 changes) for `mirror::versions` to resolve.
    pub upsert: String,
    /// Insert or update whoever holds the row.
    pub upsert_any: String,
    /// Delete the row this shard holds (key, then owner).
    pub delete: String,
    /// Delete the row whoever holds it (key only).
    pub delete_any: String,
    /// The row's owner (key only).
    pub owner: String,
    /// The whole row, owner included (key only).
    pub row: String,
}

impl RowSql {
    pub fn new(table: &str, columns: &[String], pk: &[String]) -> Arc<Self> {
        let mut insert_columns = columns.to_vec();
        insert_columns.push(OWNER_COLUMN.to_string());
        let quoted: Vec<String> = insert_columns.iter().map(|c| quote(c)).collect();
        let params: Vec<String> = (1..=insert_columns.len())
            .map(|i| format!("?{i}"))
            .collect();
        let pk_quoted: Vec<String> = pk.iter().map(|c| quote(c)).collect();
        let updates: Vec<String> = insert_columns
            .iter()
            .filter(|c| !pk.contains(c))
            .map(|c| format!("{0} = excluded.{0}", quote(c)))
            .collect();
        let upsert_any = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
            quote(table),
            quoted.join(", "),
            params.join(", "),
            pk_quoted.join(", "),
            updates.join(", ")
        );
        let owner = format!("{}.{}", quote(table), quote(OWNER_COLUMN));
        let upsert = format!(
            "{upsert_any} WHERE {owner} IS excluded.{OWNER_Q} OR {owner} IS NULL",
            OWNER_Q = quote(OWNER_COLUMN)
        );
        let conds: Vec<String> = pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(c), i + 1))
            .collect();
        let key = conds.join(" AND ");
        let delete_any = format!("DELETE FROM {} WHERE {key}", quote(table));
        let delete = format!(
            "{delete_any} AND ({0} IS ?{1} OR {0} IS NULL)",
            quote(OWNER_COLUMN),
            pk.len() + 1
        );
        let owner = format!(
            "SELECT {} FROM {} WHERE {key}",
            quote(OWNER_COLUMN),
            quote(table)
        );
        let row = format!("SELECT * FROM {} WHERE {key}", quote(table));
        Arc::new(RowSql {
            row,
            insert_columns,
            upsert,
            upsert_any,
            delete,
            delete_any,
            owner,
        })
    }
}

/// A column both schemas have whose type changed in a way that makes MySQL rewrite stored
/// values without row events (DECIMAL scale, fractional seconds, charset, type family, CHAR
/// padding: VARCHAR → CHAR strips trailing spaces, → BINARY pads with 0x00), so the mirror's
/// existing values would silently differ. Widening an integer, a VARCHAR/TEXT or a
/// VARBINARY/BLOB keeps the values and is fine (`ddl_statement::Family`).
pub fn value_rewriting_change(old: &TableSchema, new: &TableSchema) -> Option<String> {
    use crate::source::value::vtype::{BINARY, BLOB, CHAR, TEXT, VARBINARY, VARCHAR};
    for column in &new.columns {
        let Some(before) = old.columns.iter().find(|c| c.name == column.name) else {
            continue;
        };
        let (a, b) = (&before.ctype, &column.ctype);
        let padded_length_changed =
            b.vitess_type == BINARY && before.field.column_length != column.field.column_length;
        if a.vitess_type == b.vitess_type
            && before.field.decimals == column.field.decimals
            && a.collation == b.collation
            && !padded_length_changed
        {
            continue;
        }
        let both_integers =
            before.storage() == Storage::Integer && column.storage() == Storage::Integer;
        // CHAR → CHAR keeps the (already stripped) values; anything else → CHAR strips.
        let kept_characters = a.collation == b.collation
            && matches!(a.vitess_type, VARCHAR | CHAR | TEXT)
            && (matches!(b.vitess_type, VARCHAR | TEXT) || a.vitess_type == b.vitess_type);
        let kept_bytes = matches!(a.vitess_type, VARBINARY | BINARY | BLOB)
            && matches!(b.vitess_type, VARBINARY | BLOB);
        if !(both_integers || kept_characters || kept_bytes) {
            return Some(column.name.clone());
        }
    }
    None
}

/// A mirrored table whose name differs from `table` only in ASCII case. MySQL on Linux keeps
/// `T` and `t` apart; SQLite folds ASCII case in identifiers, so both would land in one table.
pub fn case_collision<'a>(
    known: impl IntoIterator<Item = &'a String>,
    table: &str,
) -> Option<&'a String> {
    known
        .into_iter()
        .find(|k| k.as_str() != table && k.eq_ignore_ascii_case(table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::proto::query::Field;

    fn field(name: &str, t: i32, flags: u32) -> Field {
        Field {
            name: name.into(),
            r#type: t,
            charset: 63,
            flags,
            ..Default::default()
        }
    }

    fn one_column(t: i32, charset: u32, length: u32) -> TableSchema {
        let mut c = field("c", t, 0);
        (c.charset, c.column_length) = (charset, length);
        TableSchema::from_fields("t", &[field("id", 265, 2), c], true).unwrap()
    }

    #[test]
    fn a_type_change_that_pads_or_strips_strings_rewrites_values() {
        use crate::source::value::vtype::{BINARY, BLOB, CHAR, TEXT, VARBINARY, VARCHAR};
        let rewrites = |a: &TableSchema, b: &TableSchema| value_rewriting_change(a, b).is_some();
        let (varchar, char) = (one_column(VARCHAR, 255, 80), one_column(CHAR, 255, 80));
        assert!(
            rewrites(&varchar, &char),
            "VARCHAR → CHAR strips trailing spaces"
        );
        assert!(rewrites(&one_column(TEXT, 255, 0), &char));
        assert!(
            !rewrites(&char, &varchar),
            "CHAR values are read already stripped"
        );
        assert!(!rewrites(&char, &one_column(CHAR, 255, 160)));
        assert!(!rewrites(&varchar, &one_column(VARCHAR, 255, 400)));
        assert!(
            rewrites(&varchar, &one_column(VARCHAR, 8, 80)),
            "a charset change"
        );
        let binary = one_column(BINARY, 63, 4);
        assert!(
            rewrites(&one_column(VARBINARY, 63, 4), &binary),
            "→ BINARY pads"
        );
        assert!(
            rewrites(&binary, &one_column(BINARY, 63, 8)),
            "a longer BINARY pads"
        );
        assert!(!rewrites(&binary, &one_column(VARBINARY, 63, 8)));
        assert!(!rewrites(
            &one_column(VARBINARY, 63, 8),
            &one_column(BLOB, 63, 0)
        ));
    }

    #[test]
    fn tables_differing_only_in_case_are_detected() {
        let known = vec!["Orders".to_string(), "items".to_string()];
        assert_eq!(case_collision(&known, "orders"), Some(&known[0]));
        assert_eq!(case_collision(&known, "Orders"), None);
        assert_eq!(case_collision(&known, "ördersÜ"), None);
    }

    #[test]
    fn identifiers_with_quotes_and_reserved_words_are_quoted_safely() {
        assert_eq!(quote("select"), "\"select\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn a_table_without_primary_key_is_refused_with_its_name() {
        let err = TableSchema::from_fields("t", &[field("a", 265, 0)], true).unwrap_err();
        assert!(err.to_string().contains("table t has no primary key"));
    }

    #[test]
    fn metadata_prefix_is_reserved() {
        assert!(TableSchema::from_fields("_vtmirror_x", &[field("a", 265, 2)], true).is_err());
    }

    #[test]
    fn layout_keeps_columns_other_shards_still_stream() {
        let new = TableSchema::from_fields("t", &[field("id", 265, 2)], true).unwrap();
        let old = TableSchema::from_fields("t", &[field("id", 265, 2), field("x", 265, 0)], true)
            .unwrap();
        let layout = Layout::merge(&new, [&old].into_iter());
        assert_eq!(layout.columns.len(), 2);
        let only_new = Layout::merge(&new, std::iter::empty());
        assert_eq!(layout.added_columns(&only_new).unwrap().len(), 1);
        assert!(only_new.added_columns(&layout).is_none());
    }
}
