//! A rule's row filter changed on an existing mirror, on real Vitess (vttestserver, keyspace
//! `commerce`): the rows the mirror holds were chosen by the old filter, so the
//! table is copied again under the new one (`sync::tables`, a table copy swapped in whole)
//! instead of keeping rows the new filter drops and never receiving rows it adds (until a write
//! touched them). Widened, narrowed and widened again, the mirror each time holds exactly the
//! source's rows that the current filter selects, with writes between the runs.

use std::path::Path;

use mysql::prelude::Queryable;

use crate::support::vitess::{
    assert_rows_equal, run_sql, source_rows, sync_until_caught_up, Cleanup, Rows,
};

/// The source's rows of `rf_rows` with `v < limit`.
fn filtered_source(conn: &mut mysql::Conn, limit: i64) -> Rows {
    let mut rows = source_rows(conn, "rf_rows", 1);
    rows.retain(|_, values| {
        let v = values[1].as_deref().map(String::from_utf8_lossy);
        v.and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|v| v < limit)
    });
    rows
}

fn sync_with_limit(grpc: &str, db: &Path, limit: i64) {
    let rule = format!("rf_rows=select * from rf_rows where v < {limit}");
    let (ok, log) = sync_until_caught_up(
        grpc,
        "commerce",
        db,
        &["--rule", &rule, "--tablet-type", "primary"],
    );
    assert!(ok, "sync with v < {limit}: {log}");
}

#[test]
fn a_changed_row_filter_copies_the_table_again_and_the_mirror_holds_what_the_new_one_selects() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c).then("commerce", "DROP TABLE IF EXISTS rf_rows");
    let mut conn = c.sql("commerce");
    run_sql(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS rf_rows",
            "CREATE TABLE rf_rows (id BIGINT NOT NULL PRIMARY KEY, v BIGINT NOT NULL)",
        ],
    );
    let values: Vec<String> = (1..=300).map(|i| format!("({i}, {})", i % 100)).collect();
    conn.query_drop(format!(
        "INSERT INTO rf_rows (id, v) VALUES {}",
        values.join(", ")
    ))
    .expect("seeding rf_rows");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refilter.db");

    let mut next_id = 1000;
    for limit in [50, 80, 30, 90] {
        sync_with_limit(&c.grpc, &db, limit);
        let want = filtered_source(&mut conn, limit);
        let held = assert_rows_equal(&want, &db, "rf_rows", 1);
        println!("v < {limit}: the mirror holds the {held} rows the filter selects");
        // Writes between the runs: rows in and out of every filter tried.
        for v in [10, 40, 60, 85, 95] {
            next_id += 1;
            conn.query_drop(format!(
                "INSERT INTO rf_rows (id, v) VALUES ({next_id}, {v})"
            ))
            .expect("a write between syncs");
        }
        conn.query_drop("UPDATE rf_rows SET v = (v + 7) % 100 WHERE id % 13 = 0")
            .expect("an update between syncs");
    }
    sync_with_limit(&c.grpc, &db, 90);
    assert_rows_equal(&filtered_source(&mut conn, 90), &db, "rf_rows", 1);
}
