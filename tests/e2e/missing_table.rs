//! A table created right before a fresh sync from replicas, against real Vitess: a replica's
//! schema engine loads a new table only at its next reload (vttestserver: about every 60 s),
//! and vttablet plans a copy from the tables its engine knows, so a copy started at once
//! leaves the table out. The sync must copy it once the replica knows it (retrying while it
//! does not) and never create it from its later row changes alone; a SIGKILL meanwhile
//! changes nothing. Rows are written to it before the sync and while it runs.

use std::time::Duration;

use mysql::prelude::Queryable;

use crate::support::vitess::*;

#[test]
fn a_table_created_right_before_a_fresh_replica_sync_is_mirrored_whole() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    run_sql(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS mt_new",
            "CREATE TABLE mt_new (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL)",
        ],
    );
    seed_rows(&mut conn, "mt_new", ("id", "v"), 1..=500, "before");
    let mut later = c.sql("commerce");
    let writes = std::thread::spawn(move || {
        for id in 1001..=1080 {
            later
                .query_drop(format!(
                    "INSERT INTO mt_new (id, v) VALUES ({id}, 'after{id}')"
                ))
                .expect("insert while the sync runs");
            later
                .query_drop(format!(
                    "UPDATE mt_new SET v = 'changed{id}' WHERE id = {}",
                    id - 1000
                ))
                .expect("update while the sync runs");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.db");
    // The default tablet type (replica) and rule (`/.*`), as a user would start it.
    let mut first = KillOnDrop(sync_process(&c.grpc, "commerce", &db, &[]));
    std::thread::sleep(Duration::from_secs(4));
    first.sigkill("4 s into the first sync");
    let mut log = String::new();
    if let Some(mut stderr) = first.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
    }
    assert_intact(&db, "after a SIGKILL 4 s into the first sync");
    writes.join().unwrap();
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &[]);
    assert!(ok, "sync failed: {err}");
    let rows = assert_same(&mut conn, &db, "mt_new", 1);
    assert_eq!(rows, 580);
    let logs = format!("{log}{err}");
    let waited = logs.contains("did not deliver") || logs.contains("does not know table");
    println!(
        "mt_new: {rows} rows equal to the source; the copy {} it",
        match waited {
            true => "had left it out, and the sync copied it once the replica knew",
            false => "delivered",
        }
    );
    run_sql(&mut conn, &["DROP TABLE mt_new"]);
}
