//! Source tables (through vtgate) against mirror tables, keyspace by keyspace.

use std::collections::BTreeMap;
use std::path::Path;

use mysql::prelude::Queryable;
use rusqlite::types::Value;
use vtmirror::mirror::schema::quote;

use super::*;

/// A source table through vtgate: key columns → all values, as MySQL text.
pub fn source_rows(conn: &mut mysql::Conn, table: &str, key_columns: usize) -> Rows {
    let sql = format!("SELECT * FROM `{}`", table.replace('`', "``"));
    query_rows(conn, &sql, key_columns)
}

/// The rows a SELECT of whole source rows returns (key columns first), as `source_rows`.
pub fn query_rows(conn: &mut mysql::Conn, sql: &str, key_columns: usize) -> Rows {
    // Streamed (OLAP): vtgate refuses an OLTP result of more than 10,000 rows.
    conn.query_drop("SET workload = 'olap'")
        .expect("OLAP reads");
    let rows: Vec<mysql::Row> = conn.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.query_drop("SET workload = 'oltp'")
        .expect("back to OLTP");
    rows.into_iter()
        .map(|row| {
            let values: Vec<Option<Vec<u8>>> = row
                .unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
                })
                .collect();
            (values[..key_columns].to_vec(), values)
        })
        .collect()
}

/// The same table in the mirror, values rendered as MySQL's text would be.
pub fn mirror_rows(db: &Path, table: &str, key_columns: usize) -> Rows {
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    // The source's columns: vtmirror's own (the row's shard) are not the source's.
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .expect("mirror columns read");
    let columns: Vec<String> = columns
        .iter()
        .filter(|c| !vtmirror::source::table_schema::is_bookkeeping_column(c))
        .map(|c| quote(c))
        .collect();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            quote(table)
        ))
        .expect("mirrored table exists");
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, Value>(i)? {
                        Value::Null => None,
                        Value::Integer(v) => Some(v.to_string().into_bytes()),
                        Value::Real(v) => Some(v.to_string().into_bytes()),
                        Value::Text(t) => Some(t.into_bytes()),
                        Value::Blob(b) => Some(b),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("mirror reads");
    rows.map(|r| {
        let values = r.expect("row reads");
        (values[..key_columns].to_vec(), values)
    })
    .collect()
}

/// Asserts the mirror holds exactly the source's rows; returns how many.
pub fn assert_same(conn: &mut mysql::Conn, db: &Path, table: &str, key_columns: usize) -> usize {
    let want = source_rows(conn, table, key_columns);
    assert_rows_equal(&want, db, table, key_columns)
}

/// Asserts the mirror's `table` holds exactly `want`; returns how many rows.
pub fn assert_rows_equal(want: &Rows, db: &Path, table: &str, key_columns: usize) -> usize {
    let have = mirror_rows(db, table, key_columns);
    let missing = want.keys().filter(|k| !have.contains_key(*k)).count();
    let extra = have.keys().filter(|k| !want.contains_key(*k)).count();
    let differing = want
        .iter()
        .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
        .count();
    let example = want
        .keys()
        .find(|k| have.get(*k) != want.get(*k))
        .or_else(|| have.keys().find(|k| !want.contains_key(*k)))
        .map(|k| {
            format!(
                "key {}: source {}, mirror {}",
                show(Some(k)),
                show(want.get(k)),
                show(have.get(k))
            )
        });
    assert_eq!(
        (missing, extra, differing),
        (0, 0, 0),
        "table {table}: missing, extra, differing rows (first: {})",
        example.unwrap_or_default()
    );
    want.len()
}

/// A row as text, for failure messages.
fn show(row: Option<&Vec<Option<Vec<u8>>>>) -> String {
    let Some(row) = row else { return "none".into() };
    let values: Vec<String> = row
        .iter()
        .map(|v| match v {
            None => "NULL".into(),
            Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
        })
        .collect();
    format!("({})", values.join(", "))
}

/// The tables of a mirror file, its own `_vtmirror_*` tables left out.
pub fn mirror_tables(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_vtmirror\\_%' \
             ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.map(|n| n.unwrap()).collect()
}

/// Leading primary-key columns of a mirrored table (every column when it has no key).
fn mirror_key_columns(db: &Path, table: &str) -> usize {
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    let (keys, all): (usize, usize) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE pk > 0), count(*) FROM pragma_table_info(?1)",
            [table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    if keys == 0 {
        all
    } else {
        keys
    }
}

/// How a mirror names a source table: bare (one keyspace) or `keyspace.table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    Bare,
    Qualified,
}

impl Naming {
    pub fn table(self, keyspace: &str, table: &str) -> String {
        match self {
            Naming::Bare => table.to_string(),
            Naming::Qualified => format!("{keyspace}.{table}"),
        }
    }
}

/// The rows one keyspace contributes to a mirror: read through these vtgate targets, the
/// keyspace itself or some of its shards (`ks:shard`), and merged.
#[derive(Debug, Clone)]
pub struct Part {
    pub keyspace: String,
    pub targets: Vec<String>,
}

impl Part {
    /// The whole keyspace, read through vtgate's routing.
    pub fn whole(keyspace: &str) -> Part {
        Part {
            keyspace: keyspace.into(),
            targets: vec![keyspace.into()],
        }
    }

    /// These shards of the keyspace, each read on its own (also tables without a vindex).
    pub fn shards(keyspace: &str, shards: &[&str]) -> Part {
        Part {
            keyspace: keyspace.into(),
            targets: shards.iter().map(|s| format!("{keyspace}:{s}")).collect(),
        }
    }
}

/// `table` read through each target and merged; a key found in two targets fails the test.
pub fn part_rows(c: &Cluster, part: &Part, table: &str, key_columns: usize) -> Rows {
    let mut merged = Rows::new();
    for target in &part.targets {
        for (key, row) in source_rows(&mut c.sql(target), table, key_columns) {
            assert!(
                merged.insert(key.clone(), row).is_none(),
                "{table}: key {} found in two of {:?}",
                show(Some(&key)),
                part.targets
            );
        }
    }
    merged
}

/// Asserts the mirror holds exactly the tables of `parts`, named by `naming`, each with exactly
/// the source's rows; returns the row count of each mirror table.
pub fn assert_mirror_holds(
    c: &Cluster,
    db: &Path,
    naming: Naming,
    parts: &[Part],
) -> BTreeMap<String, usize> {
    let mut expected = BTreeMap::new();
    for part in parts {
        for table in source_tables(&mut c.sql(&part.targets[0])) {
            expected.insert(naming.table(&part.keyspace, &table), (part, table));
        }
    }
    let names: Vec<&String> = expected.keys().collect();
    assert_eq!(
        mirror_tables(db).iter().collect::<Vec<_>>(),
        names,
        "the mirror's tables are the source's"
    );
    let mut counts = BTreeMap::new();
    for (mirror_table, (part, table)) in &expected {
        let keys = mirror_key_columns(db, mirror_table);
        let want = part_rows(c, part, table, keys);
        counts.insert(
            mirror_table.clone(),
            assert_rows_equal(&want, db, mirror_table, keys),
        );
    }
    counts
}

/// (keyspace, shard) of each entry of the mirror's stored checkpoint, sorted.
pub fn checkpoint_shards(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let bytes: Vec<u8> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .unwrap();
    let vgtid = vtmirror::source::vgtid::decode(&bytes).unwrap();
    let mut shards: Vec<(String, String)> = vgtid
        .shard_gtids
        .iter()
        .map(|s| (s.keyspace.clone(), s.shard.clone()))
        .collect();
    shards.sort();
    shards
}

/// The `phase` the mirror stored with its last commit (copy, catch-up, replication); None
/// before its first commit.
pub fn stored_phase(db: &Path) -> Option<String> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT value FROM _vtmirror_status WHERE key = 'phase'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// Asserts `PRAGMA integrity_check` is ok (when the file exists).
pub fn assert_intact(db: &Path, context: &str) {
    if !db.exists() {
        return;
    }
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "integrity check {context}");
}
