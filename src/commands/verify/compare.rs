//! One table of the mirror against the same table in the scratch copies (one file per shard),
//! walked in primary-key order on both sides: memory stays bounded by one row per cursor,
//! whatever the table size.

use std::cmp::Ordering;

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Serialize;

use crate::mirror::ddl::current_layout;
use crate::mirror::schema::quote;

/// Keys of each kind kept for the report.
const KEYS_SHOWN: usize = 5;

/// How one mirrored table compares with its source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Rows the source holds (at the mirror's checkpoint).
    pub compared: u64,
    pub missing: u64,
    pub extra: u64,
    pub differing: u64,
    /// The first few primary keys of each kind, as `column=value, …` (keys only, never the
    /// other columns' values).
    pub missing_keys: Vec<String>,
    pub extra_keys: Vec<String>,
    pub differing_keys: Vec<String>,
    /// Source columns the mirror table lacks, and mirror columns the source table lacks
    /// (`schema::column_differences`); rows are compared over the columns both have.
    pub missing_columns: Vec<String>,
    pub extra_columns: Vec<String>,
}

impl TableReport {
    pub fn equal(&self) -> bool {
        self.missing == 0
            && self.extra == 0
            && self.differing == 0
            && self.missing_columns.is_empty()
            && self.extra_columns.is_empty()
    }
}

/// One side's rows in key order: key columns first, then the others.
struct Cursor<'s> {
    rows: rusqlite::Rows<'s>,
    current: Option<Vec<Value>>,
}

impl Cursor<'_> {
    fn advance(&mut self, width: usize) -> Result<()> {
        self.current = match self.rows.next()? {
            Some(row) => Some(
                (0..width)
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<rusqlite::Result<_>>()?,
            ),
            None => None,
        };
        Ok(())
    }
}

/// The mirror table's columns with its key first (the other columns only when `compared`
/// says so), as a SELECT in key order.
fn ordered_select(
    conn: &Connection,
    table: &str,
    compared: &dyn Fn(&str) -> bool,
) -> Result<(String, Vec<String>, usize)> {
    let layout = current_layout(conn, table)?
        .with_context(|| format!("table {table} is not in the mirror"))?;
    if layout.pk.is_empty() {
        bail!("table {table} has no primary key to compare by");
    }
    let mut columns = layout.pk.clone();
    columns.extend(
        (layout.columns.iter())
            .map(|(name, _)| name.clone())
            .filter(|n| !layout.pk.contains(n) && compared(n)),
    );
    let key = layout.pk.len();
    Ok((table_select(table, &columns, key), columns, key))
}

fn table_select(table: &str, columns: &[String], key: usize) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        quoted.join(", "),
        quote(table),
        quoted[..key].join(", ")
    )
}

/// Compares `table` of `mirror` with `source_table` of each scratch file that has it, over
/// the key and the other columns `compared` accepts.
pub fn table(
    mirror: &Connection,
    table: &str,
    scratches: &[&Connection],
    source_table: &str,
    compared: &dyn Fn(&str) -> bool,
) -> Result<TableReport> {
    let (sql, columns, key) = ordered_select(mirror, table, compared)?;
    let mut report = TableReport {
        table: table.to_string(),
        ..Default::default()
    };
    let mut mine = mirror.prepare(&sql)?;
    let source_sql = table_select(source_table, &columns, key);
    let mut statements = Vec::new();
    for scratch in scratches {
        if current_layout(scratch, source_table)?.is_some() {
            let stmt = scratch.prepare(&source_sql).with_context(|| {
                format!("reading the source copy of {table} (its columns differ from the mirror's)")
            })?;
            statements.push(stmt);
        }
    }
    let width = columns.len();
    let mut ours = Cursor {
        rows: mine.query([])?,
        current: None,
    };
    ours.advance(width)?;
    let mut theirs = Vec::new();
    for stmt in &mut statements {
        let mut cursor = Cursor {
            rows: stmt.query([])?,
            current: None,
        };
        cursor.advance(width)?;
        theirs.push(cursor);
    }
    walk(&mut ours, &mut theirs, &columns[..key], width, &mut report)
        .with_context(|| format!("comparing table {table}"))?;
    Ok(report)
}

/// The merge: the smallest key among the source cursors against the mirror's next key.
fn walk(
    ours: &mut Cursor,
    theirs: &mut [Cursor],
    key_names: &[String],
    width: usize,
    report: &mut TableReport,
) -> Result<()> {
    let key = key_names.len();
    loop {
        let next = (theirs.iter().enumerate())
            .filter_map(|(i, c)| c.current.as_ref().map(|row| (i, row)))
            .min_by(|(_, a), (_, b)| compare_keys(&a[..key], &b[..key]))
            .map(|(i, _)| i);
        let order = match (&ours.current, next.and_then(|i| theirs[i].current.as_ref())) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(m), Some(s)) => compare_keys(&m[..key], &s[..key]),
        };
        match (order, next) {
            (Ordering::Less, _) => {
                let row = ours.current.as_ref().map(|r| key_text(key_names, r));
                note(&mut report.extra, &mut report.extra_keys, row);
                ours.advance(width)?;
            }
            (Ordering::Greater, Some(i)) => {
                let row = theirs[i].current.as_ref().map(|r| key_text(key_names, r));
                note(&mut report.missing, &mut report.missing_keys, row);
                report.compared += 1;
                theirs[i].advance(width)?;
            }
            (_, Some(i)) => {
                if ours.current != theirs[i].current {
                    let row = ours.current.as_ref().map(|r| key_text(key_names, r));
                    note(&mut report.differing, &mut report.differing_keys, row);
                }
                report.compared += 1;
                ours.advance(width)?;
                theirs[i].advance(width)?;
            }
            (_, None) => return Ok(()),
        }
    }
}

fn note(count: &mut u64, keys: &mut Vec<String>, key: Option<String>) {
    *count += 1;
    if keys.len() < KEYS_SHOWN {
        keys.extend(key);
    }
}

fn key_text(names: &[String], row: &[Value]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(row)
        .map(|(name, value)| format!("{name}={}", value_text(value)))
        .collect();
    parts.join(", ")
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => format!("{t:?}"),
        Value::Blob(b) => format!(
            "x'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// SQLite's ORDER BY for the default BINARY collation: NULL, numbers, text, blobs.
fn compare_keys(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = compare_value(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn compare_value(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => (*x as f64).total_cmp(y),
        (Value::Real(x), Value::Integer(y)) => x.total_cmp(&(*y as f64)),
        (Value::Real(x), Value::Real(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: &[(i64, &str)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for (id, v) in rows {
            conn.execute("INSERT INTO t VALUES (?1, ?2)", (id, v))
                .unwrap();
        }
        conn
    }

    #[test]
    fn missing_extra_and_differing_rows_are_found_by_key_across_shard_copies() {
        let mirror = file(&[(1, "a"), (2, "b"), (4, "changed"), (9, "extra")]);
        let low = file(&[(1, "a"), (4, "d")]);
        let high = file(&[(2, "b"), (7, "g")]);
        let r = table(&mirror, "t", &[&low, &high], "t", &|_| true).unwrap();
        assert_eq!((r.compared, r.missing, r.extra, r.differing), (4, 1, 1, 1));
        assert_eq!(r.missing_keys, ["id=7"]);
        assert_eq!(r.extra_keys, ["id=9"]);
        assert_eq!(r.differing_keys, ["id=4"]);
        let same = table(
            &low,
            "t",
            &[&file(&[(4, "d")]), &file(&[(1, "a")])],
            "t",
            &|_| true,
        );
        let same = same.unwrap();
        assert!(same.equal() && same.compared == 2);
    }

    #[test]
    fn keys_order_like_sqlite() {
        let (i, t, b) = (
            Value::Integer(10),
            Value::Text("9".into()),
            Value::Blob(vec![0]),
        );
        assert_eq!(compare_value(&Value::Null, &i), Ordering::Less);
        assert_eq!(compare_value(&i, &t), Ordering::Less);
        assert_eq!(compare_value(&t, &b), Ordering::Less);
        assert_eq!(compare_value(&Value::Real(9.5), &i), Ordering::Less);
    }
}
