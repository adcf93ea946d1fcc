//! Identifiers against real Vitess (keyspace `commerce` of vttestserver): reserved words,
//! spaces, quotes, unicode and mixed case in table and column names survive the copy, the
//! binlog and a column rename; names vtmirror or Vitess cannot carry are refused clearly.

use std::path::Path;

use crate::support::vitess::{assert_same, cluster, sync_until_caught_up, Cluster};
use mysql::prelude::Queryable;

const TABLES: [&str; 5] = ["select", "sp ace", "we\"ird", "tää", "MiXed"];

fn run(conn: &mut mysql::Conn, statements: &[&str]) {
    for sql in statements {
        conn.query_drop(*sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn catch_up(c: &Cluster, db: &Path, tables: &str) -> (bool, String) {
    sync_until_caught_up(
        &c.grpc,
        "commerce",
        db,
        &["--tablet-type", "primary", "--tables", tables],
    )
}

#[test]
fn odd_table_and_column_names_round_trip_through_copy_binlog_and_renames() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    run(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS `select`, `sp ace`, `we\"ird`, `tää`, `MiXed`",
            "CREATE TABLE `select` (id BIGINT PRIMARY KEY, `from` VARCHAR(10), `a b` INT)",
            "CREATE TABLE `sp ace` (id BIGINT PRIMARY KEY, `col umn` VARCHAR(10))",
            "CREATE TABLE `we\"ird` (`i\"d` BIGINT PRIMARY KEY, `v'v` INT, `x``y` INT)",
            "CREATE TABLE `tää` (id BIGINT PRIMARY KEY, `ö` VARCHAR(10), `日本` TEXT)",
            "CREATE TABLE `MiXed` (Id BIGINT PRIMARY KEY, `CamelCol` INT)",
            "INSERT INTO `select` VALUES (1, 'where', 1), (2, 'order', 2)",
            "INSERT INTO `sp ace` VALUES (1, 'a b'), (2, 'c d')",
            "INSERT INTO `we\"ird` VALUES (1, 1, 1), (2, 2, 2)",
            "INSERT INTO `tää` VALUES (1, 'ü', '語'), (2, 'ß', NULL)",
            "INSERT INTO `MiXed` VALUES (1, 10), (2, 20)",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.db");
    let tables = TABLES.join(",");
    let (ok, err) = catch_up(&c, &db, &tables);
    assert!(ok, "copy failed: {err}");
    run(
        &mut conn,
        &[
            "INSERT INTO `select` VALUES (3, 'group', 3)",
            "UPDATE `select` SET `a b` = 20 WHERE id = 2",
            "DELETE FROM `select` WHERE id = 1",
            "UPDATE `sp ace` SET `col umn` = 'e f' WHERE id = 1",
            "UPDATE `we\"ird` SET `v'v` = 9, `x``y` = 8 WHERE `i\"d` = 2",
            "DELETE FROM `we\"ird` WHERE `i\"d` = 1",
            "INSERT INTO `tää` VALUES (3, 'å', '😀')",
            "UPDATE `MiXed` SET CamelCol = 11 WHERE Id = 1",
            "ALTER TABLE `sp ace` RENAME COLUMN `col umn` TO `col \"umn\"`",
            "UPDATE `sp ace` SET `col \"umn\"` = 'g h' WHERE id = 2",
        ],
    );
    let (ok, err) = catch_up(&c, &db, &tables);
    assert!(ok, "replication failed: {err}");
    for table in TABLES {
        let rows = assert_same(&mut conn, &db, table, 1);
        println!("table {table:?}: {rows} rows equal");
    }
    let mirror = rusqlite::Connection::open(&db).unwrap();
    let renamed: String = mirror
        .query_row(
            "SELECT \"col \"\"umn\"\"\" FROM \"sp ace\" WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(renamed, "e f", "the renamed column kept its values");
    run(
        &mut conn,
        &["DROP TABLE `select`, `sp ace`, `we\"ird`, `tää`, `MiXed`"],
    );
}

#[test]
fn names_that_cannot_be_carried_are_refused_with_a_clear_message() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    run(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS `_vtmirror_checkpoint`",
            "CREATE TABLE `_vtmirror_checkpoint` (id BIGINT PRIMARY KEY)",
            "INSERT INTO `_vtmirror_checkpoint` VALUES (1)",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reserved.db");
    let (ok, err) = catch_up(&c, &db, "_vtmirror_checkpoint");
    assert!(!ok, "a source table with vtmirror's prefix must be refused");
    assert!(err.contains("reserved prefix"), "{err}");

    let (ok, err) = catch_up(&c, &dir.path().join("tick.db"), "a`b");
    assert!(
        !ok,
        "a table name with a backtick must be refused, not hang"
    );
    assert!(err.contains("backtick"), "{err}");
    run(&mut conn, &["DROP TABLE `_vtmirror_checkpoint`"]);
}
