//! Multi-row upserts: one `INSERT … VALUES (…), (…) ON CONFLICT …` for a run of row changes,
//! which costs a fraction of one statement per row.

use crate::mirror::schema::quote;
use crate::source::decode::Change;

/// Upserts per multi-row statement: one statement per 32 rows costs a fraction of 32
/// (columns × 32 stays far below SQLite's 32766 parameters for any real table).
pub const ROWS_PER_STATEMENT: usize = 32;

pub fn change_values(change: &Change) -> &[crate::source::value::Value] {
    match change {
        Change::Upsert(values) | Change::Delete(values) | Change::Merge { values, .. } => values,
    }
}

/// A row change's values, then the writing shard's owner (`mirror::owner`): the parameters
/// of one row of an upsert.
pub fn row_params<'a>(
    change: &'a Change,
    owner: &'a Option<&'a str>,
) -> impl Iterator<Item = &'a dyn rusqlite::ToSql> {
    (change_values(change).iter())
        .map(|v| v as &dyn rusqlite::ToSql)
        .chain(std::iter::once(owner as &dyn rusqlite::ToSql))
}

/// The single-row upsert `INSERT INTO t (…) VALUES (?1, …, ?n) ON CONFLICT …` for `rows`
/// rows: `VALUES (?1, …, ?n), (?n+1, …), …`. In a multi-row upsert, a row that conflicts with
/// an earlier row of the same statement updates it, exactly as one statement per row would.
/// None if `single` is not of that shape.
pub fn multi_row_upsert(
    single: &str,
    table: &str,
    columns: &[String],
    rows: usize,
) -> Option<String> {
    // SQLite's bound-parameter limit (SQLITE_MAX_VARIABLE_NUMBER, 32766 in the bundled build);
    // MySQL tables may have up to 4096 columns, so very wide tables use single-row statements.
    if columns.len() * rows > 32_766 {
        return None;
    }
    let tuple = |first: usize| {
        let params: Vec<String> = (first..first + columns.len())
            .map(|i| format!("?{i}"))
            .collect();
        format!("({})", params.join(", "))
    };
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(table),
        quoted.join(", ")
    );
    let tail = single.strip_prefix(&head)?.strip_prefix(&tuple(1))?;
    let tuples: Vec<String> = (0..rows).map(|r| tuple(1 + r * columns.len())).collect();
    Some(format!("{head}{}{tail}", tuples.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::schema::RowSql;
    use rusqlite::Connection;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn very_wide_tables_fall_back_to_single_row_upserts() {
        let columns: Vec<String> = (0..2_000).map(|i| format!("c{i}")).collect();
        let single = RowSql::new("t", &columns, &names(&["c0"]));
        assert!(multi_row_upsert(&single.upsert, "t", &columns, ROWS_PER_STATEMENT).is_none());
    }

    #[test]
    fn a_multi_row_upsert_applies_rows_in_order_like_single_statements() {
        let columns = names(&["id", "v"]);
        let single = RowSql::new("t", &columns, &names(&["id"]));
        let multi = multi_row_upsert(&single.upsert, "t", &single.insert_columns, 3).unwrap();
        assert!(multi.contains("VALUES (?1, ?2, ?3), (?4, ?5, ?6), (?7, ?8, ?9) ON CONFLICT"));
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, _vtmirror_shard TEXT);
             INSERT INTO t VALUES (1, 'old', NULL)",
        )
        .unwrap();
        let s = "-80";
        conn.execute(&multi, rusqlite::params![1, "a", s, 2, "b", s, 1, "c", s])
            .unwrap();
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT id, v FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(1, "c".to_string()), (2, "b".to_string())]);
    }

    #[test]
    fn a_statement_of_another_shape_gets_no_multi_row_form() {
        assert!(multi_row_upsert("INSERT INTO x VALUES (?1)", "t", &names(&["id"]), 2).is_none());
    }
}
