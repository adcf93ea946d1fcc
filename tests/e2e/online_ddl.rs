//! Vitess online DDL (strategy `vitess`) against real Vitess: keyspace `onlineddl` of the
//! reshard cluster (real vttablets; vttestserver's vtcombo does not run migrations). A
//! migration alters a shadow table that the stream never carries rows of, then swaps it in
//! with one RENAME TABLE; the mirror follows what it can prove and stops on the rest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::vitess::{assert_same, cluster, sync_until_caught_up, Cluster};
use mysql::prelude::Queryable;

const KEYSPACE: &str = "onlineddl";

fn run(conn: &mut mysql::Conn, statements: &[&str]) {
    for sql in statements {
        conn.query_drop(*sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Submits `ddl` with strategy `vitess`, runs `meanwhile` while it migrates, and waits until
/// the migration completed.
fn online_ddl(conn: &mut mysql::Conn, ddl: &str, meanwhile: &[&str]) {
    conn.query_drop("SET @@ddl_strategy = 'vitess'").unwrap();
    let uuid: String = conn
        .query_first(ddl)
        .unwrap_or_else(|e| panic!("{ddl}: {e}"))
        .expect("an online DDL returns its migration uuid");
    conn.query_drop("SET @@ddl_strategy = 'direct'").unwrap();
    run(conn, meanwhile);
    let started = Instant::now();
    loop {
        let status: Option<String> = conn
            .query_first(format!("SHOW VITESS_MIGRATIONS LIKE '{uuid}'"))
            .map(|row: Option<mysql::Row>| row.and_then(|r| r.get("migration_status")))
            .unwrap();
        match status.as_deref() {
            Some("complete") => break,
            Some("failed") | Some("cancelled") => panic!("migration {uuid} of `{ddl}` {status:?}"),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "migration {uuid} of `{ddl}` did not complete: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "online DDL `{ddl}` completed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Two mirrors: one naming its tables (the stream then carries only those, plus the shadow
/// tables' DDL), one with every table.
struct Mirrors {
    named: PathBuf,
    every: PathBuf,
    tables: &'static str,
}

impl Mirrors {
    fn catch_up(&self, c: &Cluster) {
        for (db, extra) in self.runs() {
            let (ok, err) = sync_until_caught_up(&c.grpc, KEYSPACE, db, &extra);
            assert!(ok, "sync of {} failed: {err}", db.display());
        }
    }

    /// From the primary: a replica's schema learns a just-created table only at its next
    /// reload, and a stream naming a table the tablet does not know fails.
    fn runs(&self) -> [(&Path, Vec<&str>); 2] {
        let primary = ["--tablet-type", "primary"];
        [
            (
                &self.named,
                [&primary[..], &["--tables", self.tables]].concat(),
            ),
            (&self.every, primary.to_vec()),
        ]
    }

    /// Both mirrors stop at a cut-over they cannot follow, with an error naming the table
    /// and `what`, their table left as it was.
    fn stops_before_the_cut_over(&self, what: &str, c: &Cluster, columns_before: [&str; 4]) {
        for (db, extra) in self.runs() {
            let (ok, err) = sync_until_caught_up(&c.grpc, KEYSPACE, db, &extra);
            assert!(!ok, "the cut-over ({what}) must stop the sync");
            assert!(
                err.contains("odl_items")
                    && err.contains("cannot be mirrored")
                    && err.contains(what),
                "{err}"
            );
            assert_eq!(
                columns(db, "odl_items"),
                columns_before,
                "the mirror stays at the position before the cut-over"
            );
        }
    }

    fn assert_same(&self, conn: &mut mysql::Conn, table: &str) {
        for db in [&self.named, &self.every] {
            assert_same(conn, db, table, 1);
        }
    }
}

fn columns(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap();
    // The source's columns: vtmirror's own (the row's shard) are left out.
    stmt.query_map([table], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|c| !vtmirror::source::table_schema::is_bookkeeping_column(c))
        .collect()
}

fn has_table(db: &Path, table: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

#[test]
fn online_ddl_cut_overs_are_followed_and_one_that_rewrites_rows_stops_clearly() {
    let Some(c) = cluster("RESHARD_") else { return };
    let mut conn = c.sql(KEYSPACE);
    run(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS odl_items, odl_gone",
            "CREATE TABLE odl_items (id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20))",
            "CREATE TABLE odl_gone (id BIGINT NOT NULL PRIMARY KEY, v TEXT)",
            "INSERT INTO odl_gone VALUES (1, 'x')",
        ],
    );
    for id in 1..=60 {
        conn.query_drop(format!(
            "INSERT INTO odl_items VALUES ({id}, {id}, 'item {id}')"
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mirrors = Mirrors {
        named: dir.path().join("named.db"),
        every: dir.path().join("every.db"),
        tables: "odl_items,odl_gone",
    };
    mirrors.catch_up(&c);
    mirrors.assert_same(&mut conn, "odl_items");

    online_ddl(
        &mut conn,
        "ALTER TABLE odl_items ADD COLUMN c INT",
        &[
            "UPDATE odl_items SET a = a + 100 WHERE id <= 10",
            "DELETE FROM odl_items WHERE id = 60",
        ],
    );
    run(
        &mut conn,
        &[
            "INSERT INTO odl_items VALUES (61, 61, 'after', 7)",
            "UPDATE odl_items SET c = 1 WHERE id = 2",
        ],
    );
    mirrors.catch_up(&c);
    mirrors.assert_same(&mut conn, "odl_items");
    assert_eq!(columns(&mirrors.named, "odl_items"), ["id", "a", "b", "c"]);

    online_ddl(
        &mut conn,
        "ALTER TABLE odl_items CHANGE COLUMN b label VARCHAR(40)",
        &[],
    );
    run(
        &mut conn,
        &["UPDATE odl_items SET label = 'renamed' WHERE id = 3"],
    );
    mirrors.catch_up(&c);
    mirrors.assert_same(&mut conn, "odl_items");
    assert_eq!(
        columns(&mirrors.every, "odl_items"),
        ["id", "a", "label", "c"],
        "the column's values moved with its new name"
    );

    online_ddl(&mut conn, "DROP TABLE odl_gone", &[]);
    mirrors.catch_up(&c);
    for db in [&mirrors.named, &mirrors.every] {
        assert!(
            !has_table(db, "odl_gone"),
            "an online DROP TABLE drops the mirrored table"
        );
    }

    // Vitess v24 copies the rows of an online RENAME COLUMN without the column's values.
    online_ddl(&mut conn, "ALTER TABLE odl_items RENAME COLUMN c TO n", &[]);
    mirrors.stops_before_the_cut_over("RENAME COLUMN", &c, ["id", "a", "label", "c"]);

    let fresh = Mirrors {
        named: dir.path().join("named-2.db"),
        every: dir.path().join("every-2.db"),
        tables: "odl_items",
    };
    fresh.catch_up(&c);
    fresh.assert_same(&mut conn, "odl_items");
    online_ddl(
        &mut conn,
        "ALTER TABLE odl_items ADD COLUMN d INT NOT NULL DEFAULT 7",
        &[],
    );
    run(
        &mut conn,
        &["INSERT INTO odl_items VALUES (62, 62, 'later', 1, 8)"],
    );
    fresh.stops_before_the_cut_over("fills existing rows", &c, ["id", "a", "label", "n"]);
    run(&mut conn, &["DROP TABLE odl_items"]);
}
