//! Partial row images against real Vitess (keyspace `commerce` of vttestserver): with
//! `binlog_row_image=NOBLOB`, MySQL leaves unchanged BLOB and TEXT columns out of an UPDATE's
//! images and vttablet marks the columns present; vtmirror merges them into the rows it holds.
//!
//! vtgate refuses `SET binlog_row_image`, so the NOBLOB writes go to the cluster's mysqld
//! directly (`VTTEST_MYSQLD_SOCKET`, as vt_dba) in a session of their own: vttablet streams
//! every binlog event of the keyspace's database, whoever wrote it.

use std::time::Duration;

use crate::support::vitess::{
    assert_rows_equal, assert_same, cluster, env_file, run_sql, source_rows, sync_process,
    sync_until_caught_up, Cleanup, KillOnDrop,
};
use mysql::prelude::Queryable;

const TABLE: &str = "noblob_items";

/// A session on the vttestserver mysqld whose row images are NOBLOB.
fn noblob_session() -> mysql::Conn {
    let env = env_file();
    let socket = env.get("VTTEST_MYSQLD_SOCKET").unwrap_or_else(|| {
        panic!("no VTTEST_MYSQLD_SOCKET in the env file: run scripts/vitess-local.sh up")
    });
    let opts = mysql::OptsBuilder::new()
        .socket(Some(socket))
        .user(Some("vt_dba"))
        .db_name(Some("vt_commerce_0"));
    let mut conn = mysql::Conn::new(opts).expect("the vttestserver mysqld answers on its socket");
    conn.query_drop("SET SESSION binlog_row_image = 'NOBLOB'")
        .unwrap();
    let image: String = conn
        .query_first("SELECT @@session.binlog_row_image")
        .unwrap()
        .unwrap();
    assert_eq!(image, "NOBLOB");
    conn
}

/// One source transaction of NOBLOB writes, `round` choosing the rows: updates of the
/// non-blob columns only (their images leave `body`, `data` and `note` out), updates of one
/// TEXT or BLOB column (that one is present), a key change with unchanged blobs, a delete
/// and an insert.
fn noblob_round(conn: &mut mysql::Conn, round: i64) {
    let statements = [
        format!(
            "UPDATE {TABLE} SET n = n + 1, label = CONCAT('r{round}-', id) WHERE id % 4 = {}",
            round % 4
        ),
        format!(
            "UPDATE {TABLE} SET body = CONCAT(REPEAT('b', {round}), id) \
             WHERE id % 7 = {} AND id > 150",
            round % 7
        ),
        format!(
            "UPDATE {TABLE} SET data = UNHEX(SHA2(CONCAT(id, '/{round}'), 256)), n = -n \
             WHERE id % 9 = {}",
            round % 9
        ),
        format!(
            "UPDATE {TABLE} SET note = NULL WHERE id % 11 = {}",
            round % 11
        ),
        format!(
            "UPDATE {TABLE} SET id = id + 100000 WHERE id = {}",
            20 + round
        ),
        format!("DELETE FROM {TABLE} WHERE id = {}", 40 + 3 * round),
        format!(
            "INSERT INTO {TABLE} VALUES ({0}, {round}, 'new', REPEAT('t', {round}), \
             UNHEX('00ff{round:02}'), NULL)",
            1000 + round
        ),
    ];
    conn.query_drop("BEGIN").unwrap();
    for sql in &statements {
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.query_drop("COMMIT").unwrap();
}

#[test]
fn updates_with_noblob_images_merge_into_the_stored_rows_and_the_mirror_equals_the_source() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    let _cleanup = Cleanup::new(&c).then("commerce", &format!("DROP TABLE IF EXISTS {TABLE}"));
    run_sql(
        &mut conn,
        &[
            &format!("DROP TABLE IF EXISTS {TABLE}"),
            &format!(
                "CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, n INT, label VARCHAR(40), \
                 body TEXT, data BLOB, note MEDIUMTEXT)"
            ),
        ],
    );
    let rows: Vec<String> = (1..=300)
        .map(|id| {
            format!(
                "({id}, {id}, 'l{id}', REPEAT('body {id} ', {}), UNHEX(SHA2('{id}', 256)), \
                 'note {id}')",
                1 + id % 50
            )
        })
        .collect();
    run_sql(
        &mut conn,
        &[&format!("INSERT INTO {TABLE} VALUES {}", rows.join(", "))],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("noblob.db");
    let args = ["--tablet-type", "primary", "--tables", TABLE];
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &args);
    assert!(ok, "copy failed: {err}");
    assert_same(&mut conn, &db, TABLE, 1);

    // NOBLOB writes while a sync streams them, SIGKILLed in the middle; the next sync resumes
    // from the last commit and replays what followed it.
    let mut noblob = noblob_session();
    let mut sync = KillOnDrop(sync_process(&c.grpc, "commerce", &db, &args));
    for round in 1..=12 {
        noblob_round(&mut noblob, round);
        std::thread::sleep(Duration::from_millis(150));
    }
    sync.sigkill("while NOBLOB updates streamed");
    for round in 13..=20 {
        noblob_round(&mut noblob, round);
    }
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &args);
    assert!(ok, "replication of NOBLOB images failed: {err}");
    let rows = assert_same(&mut conn, &db, TABLE, 1);
    assert!(rows > 250, "{rows} rows");

    // The blob columns the images left out are the copy's, kept exactly.
    let mirror = rusqlite::Connection::open(&db).unwrap();
    let body: String = mirror
        .query_row(&format!("SELECT body FROM {TABLE} WHERE id = 2"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(body.starts_with("body 2 "), "{body}");
    let moved: i64 = mirror
        .query_row(
            &format!("SELECT count(*) FROM {TABLE} WHERE id > 100000 AND data IS NOT NULL"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        moved >= 10,
        "rows whose key changed keep their blobs ({moved})"
    );
    drop(mirror);

    // An INSERT that does not name a TEXT column leaves it out of a NOBLOB image: its value is
    // the column's default, which the stream does not carry. A definite error, nothing applied.
    let before = source_rows(&mut conn, TABLE, 1);
    noblob
        .query_drop(format!(
            "INSERT INTO {TABLE} (id, n, label, body, data) VALUES (5000, 1, 'x', 'y', 'z')"
        ))
        .unwrap();
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &args);
    assert!(!ok, "a partial insert must stop the sync");
    let named = ["table noblob_items", "leaves out columns note", "key (id)"];
    assert!(named.iter().all(|n| err.contains(n)), "{err}");
    assert!(!err.contains("5000"), "no row value in the error: {err}");
    assert_rows_equal(&before, &db, TABLE, 1);
}
