//! DDL while streaming, against real Vitess (keyspace `commerce`, unsharded): column and table
//! changes are followed; a change MySQL applies to existing rows without row events stops the
//! sync with a clear error instead of diverging.

use std::path::Path;

use crate::support::vitess::{assert_same, cluster, sync_until_caught_up, Cluster};
use mysql::prelude::Queryable;

fn run(conn: &mut mysql::Conn, statements: &[&str]) {
    for sql in statements {
        conn.query_drop(*sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn catch_up(c: &Cluster, db: &Path) {
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", db, &["--tablet-type", "primary"]);
    assert!(ok, "sync failed: {err}");
}

fn mirrored_tables(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'ddl%' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn column_and_table_ddl_is_followed_and_a_backfilling_change_stops_clearly() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    run(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS ddl_t, ddl_new, ddl_renamed",
            "CREATE TABLE ddl_t (id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20))",
            "INSERT INTO ddl_t (id, a, b) VALUES (1, 10, 'one'), (2, 20, 'two'), (3, 30, 'three')",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ddl.db");
    catch_up(&c, &db);
    let steps: &[(&str, &[&str])] = &[
        (
            "add a nullable column",
            &[
                "ALTER TABLE ddl_t ADD COLUMN c INT",
                "UPDATE ddl_t SET c = id * 2 WHERE id <= 2",
                "INSERT INTO ddl_t (id, a, b, c) VALUES (4, 40, 'four', 8)",
            ],
        ),
        (
            "drop a column",
            &[
                "ALTER TABLE ddl_t DROP COLUMN a",
                "INSERT INTO ddl_t (id, b, c) VALUES (5, 'five', 10)",
            ],
        ),
        (
            "widen a column",
            &[
                "ALTER TABLE ddl_t MODIFY b VARCHAR(100)",
                "UPDATE ddl_t SET b = 'a longer value than twenty' WHERE id = 5",
            ],
        ),
        (
            "rename a column",
            &[
                "ALTER TABLE ddl_t RENAME COLUMN b TO bb",
                "UPDATE ddl_t SET c = 99 WHERE id = 3",
            ],
        ),
        (
            "add an index",
            &[
                "CREATE INDEX ddl_t_c ON ddl_t (c)",
                "INSERT INTO ddl_t (id, bb, c) VALUES (6, 'six', 12)",
            ],
        ),
        (
            "create a table",
            &[
                "CREATE TABLE ddl_new (id BIGINT NOT NULL PRIMARY KEY, v TEXT)",
                "INSERT INTO ddl_new VALUES (1, 'x'), (2, 'y')",
            ],
        ),
        (
            "rename a table",
            &[
                "RENAME TABLE ddl_new TO ddl_renamed",
                "INSERT INTO ddl_renamed VALUES (3, 'z')",
            ],
        ),
        (
            "truncate a table",
            &[
                "TRUNCATE TABLE ddl_t",
                "INSERT INTO ddl_t (id, bb, c) VALUES (7, 'seven', 14)",
            ],
        ),
    ];
    for (what, statements) in steps {
        run(&mut conn, statements);
        catch_up(&c, &db);
        assert_same(&mut conn, &db, "ddl_t", 1);
        println!("DDL followed: {what}");
    }
    assert_same(&mut conn, &db, "ddl_renamed", 1);
    assert_eq!(mirrored_tables(&db), vec!["ddl_renamed", "ddl_t"]);
    run(&mut conn, &["DROP TABLE ddl_renamed"]);
    catch_up(&c, &db);
    assert_eq!(
        mirrored_tables(&db),
        vec!["ddl_t"],
        "a dropped table is dropped from the mirror"
    );

    run(
        &mut conn,
        &["ALTER TABLE ddl_t ADD COLUMN d INT NOT NULL DEFAULT 3"],
    );
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &["--tablet-type", "primary"]);
    assert!(!ok, "a backfilling ADD COLUMN must stop the sync");
    assert!(
        err.contains("ddl_t") && err.contains("cannot be mirrored"),
        "{err}"
    );
    let mirror = rusqlite::Connection::open(&db).unwrap();
    let cols: i64 = mirror
        .query_row("SELECT count(*) FROM pragma_table_info('ddl_t')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        cols, 3,
        "the mirror stays at the position before the unsupported DDL"
    );
    run(&mut conn, &["DROP TABLE ddl_t"]);
}
