//! DDL while streaming, against real Vitess (keyspace `commerce`, unsharded): column and table
//! changes are followed; a change MySQL applies to existing rows without row events stops the
//! sync with a clear error instead of diverging, or with `--recopy-on-ddl` copies the table
//! again; one table per family of rewriting statement.

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
        .query_row(
            "SELECT count(*) FROM pragma_table_info('ddl_t') WHERE name <> '_vtmirror_shard'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        cols, 3,
        "the mirror stays at the position before the unsupported DDL"
    );
    run(&mut conn, &["DROP TABLE ddl_t"]);
}

/// A rewriting statement family: its table, the table's rows, the statement.
struct Family {
    what: &'static str,
    table: &'static str,
    create: &'static str,
    rows: &'static str,
    ddl: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        what: "generated column without GENERATED",
        table: "ddl_rw_gen",
        create: "CREATE TABLE ddl_rw_gen (id BIGINT NOT NULL PRIMARY KEY, a INT)",
        rows: "INSERT INTO ddl_rw_gen VALUES (1, 10), (2, NULL), (3, -4)",
        ddl: "ALTER TABLE ddl_rw_gen ADD COLUMN g INT AS (a * 2) STORED",
    },
    Family {
        what: "VARCHAR to CHAR (trailing spaces)",
        table: "ddl_rw_char",
        create: "CREATE TABLE ddl_rw_char (id BIGINT NOT NULL PRIMARY KEY, c VARCHAR(20))",
        rows: "INSERT INTO ddl_rw_char VALUES (1, 'abc  '), (2, 'x'), (3, '  ')",
        ddl: "ALTER TABLE ddl_rw_char MODIFY c CHAR(20)",
    },
    Family {
        what: "charset conversion",
        table: "ddl_rw_cs",
        create: "CREATE TABLE ddl_rw_cs (id BIGINT NOT NULL PRIMARY KEY, c VARCHAR(20)) \
                 CHARACTER SET utf8mb4",
        rows: "INSERT INTO ddl_rw_cs VALUES (1, 'caf\u{e9}'), (2, 'plain')",
        ddl: "ALTER TABLE ddl_rw_cs CONVERT TO CHARACTER SET latin1",
    },
    Family {
        what: "partition TRUNCATE",
        table: "ddl_rw_part",
        create: "CREATE TABLE ddl_rw_part (id BIGINT NOT NULL PRIMARY KEY, v INT) \
                 PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), \
                 PARTITION p1 VALUES LESS THAN MAXVALUE)",
        rows: "INSERT INTO ddl_rw_part VALUES (1, 1), (5, 5), (20, 20)",
        ddl: "ALTER TABLE ddl_rw_part TRUNCATE PARTITION p0",
    },
    Family {
        what: "version-comment DDL",
        table: "ddl_rw_ver",
        create: "CREATE TABLE ddl_rw_ver (id BIGINT NOT NULL PRIMARY KEY, a INT)",
        rows: "INSERT INTO ddl_rw_ver VALUES (1, 1), (2, 2)",
        ddl: "ALTER TABLE ddl_rw_ver /*!80000 ADD COLUMN d INT NOT NULL DEFAULT 4 */",
    },
];

/// Each rewriting family once: the sync stops naming the table (no row changes follow the
/// statement, so only the statement's reading can tell), then `--recopy-on-ddl` copies the
/// table again and the mirror equals the source. A TRUNCATE behind a comment is followed.
#[test]
fn rewriting_ddl_stops_naming_its_table_and_recopy_on_ddl_makes_the_mirror_equal() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    let tables: Vec<&str> = FAMILIES
        .iter()
        .map(|f| f.table)
        .chain(["ddl_rw_trunc"])
        .collect();
    let list = tables.join(",");
    run(&mut conn, &[&format!("DROP TABLE IF EXISTS {list}")]);
    for f in FAMILIES {
        run(&mut conn, &[f.create, f.rows]);
    }
    run(
        &mut conn,
        &[
            "CREATE TABLE ddl_rw_trunc (id BIGINT NOT NULL PRIMARY KEY, v TEXT)",
            "INSERT INTO ddl_rw_trunc VALUES (1, 'a'), (2, 'b')",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rewrites.db");
    let args = ["--tablet-type", "primary", "--tables", &list];
    let recopy = [&args[..], &["--recopy-on-ddl"]].concat();
    let sync = |extra: &[&str]| sync_until_caught_up(&c.grpc, "commerce", &db, extra);
    let (ok, err) = sync(&args);
    assert!(ok, "first sync failed: {err}");

    run(&mut conn, &["/* a comment */ TRUNCATE TABLE ddl_rw_trunc"]);
    let (ok, err) = sync(&args);
    assert!(ok, "a TRUNCATE behind a comment is followed: {err}");
    assert_same(&mut conn, &db, "ddl_rw_trunc", 1);
    println!("followed: leading-comment TRUNCATE");

    for f in FAMILIES {
        run(&mut conn, &[f.ddl]);
        let (ok, err) = sync(&args);
        assert!(
            !ok && err.contains(f.table) && err.contains("cannot be mirrored"),
            "{}: the sync must stop naming {}: {err}",
            f.what,
            f.table
        );
        let (ok, err) = sync(&recopy);
        assert!(ok, "{}: --recopy-on-ddl sync failed: {err}", f.what);
        assert_same(&mut conn, &db, f.table, 1);
        println!("stopped, then re-copied equal: {}", f.what);
    }
    run(&mut conn, &[&format!("DROP TABLE {list}")]);
}
