//! `--rule` filters with a WHERE clause (issue 29), keyspace `things` (-80 and 80-): rows
//! moving into and out of the filter while the sync is SIGKILLed mid-way must leave the
//! mirror equal to `SELECT * ... WHERE <predicate>` at the source, and a filter Vitess cannot
//! apply must stop the sync at once. The table has no vindex: each row is written on the
//! shard the test chooses, as in `shards.rs`.
//!
//! Before the fix, vstreamer (v24) sent both images of an UPDATE that moved a row out of the
//! filter and the mirror kept such rows with their new values; a LIKE filter was retried
//! every second for as long as the sync ran.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::support::vitess::{
    mirror_rows, query_rows, refused_in_one_line, run_sql, sync_process, Cleanup, Cluster,
    KillOnDrop, Rows,
};

const SHARDS: [&str; 2] = ["-80", "80-"];
const TABLE: &str = "rf_moves";
/// An IN list and a range, as the report's `tenant_id in (3,7)` with a range added.
const PREDICATE: &str = "tenant_id IN (3, 7) AND amount BETWEEN 100 AND 499";
const IDS: i64 = 300;

/// The shard a row lives on: the first half of the ids on -80.
fn shard_of(id: i64) -> usize {
    usize::from(id > IDS / 2)
}

fn passes((tenant, amount): (i64, i64)) -> bool {
    (tenant == 3 || tenant == 7) && (100..=499).contains(&amount)
}

/// The filtered source, read shard by shard.
fn filtered_source(c: &Cluster) -> Rows {
    let sql = format!("SELECT * FROM {TABLE} WHERE {PREDICATE}");
    let mut rows = Rows::new();
    for shard in SHARDS {
        rows.extend(query_rows(&mut c.sql(&format!("things:{shard}")), &sql, 1));
    }
    rows
}

/// Waits until the mirror equals the filtered source; fails with both counts after 60 s.
fn wait_until_filtered_equal(c: &Cluster, db: &Path) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = filtered_source(c);
        let got = std::panic::catch_unwind(|| mirror_rows(db, TABLE, 1)).unwrap_or_default();
        if got == want {
            return want.len();
        }
        if Instant::now() > deadline {
            let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
            let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
            let differing = (want.iter())
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .count();
            panic!(
                "after 60 s the mirror holds {} rows, the filtered source {}: {extra} extra \
                 (rows that left the filter), {missing} missing, {differing} differing",
                got.len(),
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Creates `table` in `things` (key `id`, then `columns`), dropped again when the returned
/// guard goes.
fn fresh_table<'c>(c: &'c Cluster, table: &str, columns: &str) -> Cleanup<'c> {
    let drop = format!("DROP TABLE IF EXISTS {table}");
    let create = format!("CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, {columns})");
    run_sql(&mut c.sql("things"), &[&drop, &create]);
    Cleanup::new(c).then("things", &drop)
}

fn rule() -> String {
    format!("{TABLE}=select * from {TABLE} where {PREDICATE}")
}

fn sync(c: &Cluster, db: &Path) -> KillOnDrop {
    let rule = rule();
    KillOnDrop(sync_process(
        &c.grpc,
        "things",
        db,
        &["--tablet-type", "primary", "--rule", &rule],
    ))
}

#[test]
fn rows_moving_into_and_out_of_a_rule_filter_end_as_at_the_filtered_source() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = fresh_table(
        &c,
        TABLE,
        "tenant_id INT, amount INT NOT NULL, v VARCHAR(64)",
    );
    let mut conns = SHARDS.map(|s| c.sql(&format!("things:{s}")));
    // Source rows as the test wrote them: id → (tenant_id, amount).
    let mut rows: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for id in 1..=IDS {
        let row = (id % 10, (id * 37) % 600);
        conns[shard_of(id)]
            .query_drop(format!(
                "INSERT INTO {TABLE} (id, tenant_id, amount, v) VALUES ({id}, {}, {}, 'seed{id}')",
                row.0, row.1
            ))
            .unwrap();
        rows.insert(id, row);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("filtered.db");
    let mut sync_child = sync(&c, &db);
    let mut rng = vtmirror::sim::rng::SplitMix64::new(29);
    let (mut writes, mut moves, mut kills) = (0, 0, 0);
    for round in 0..4 {
        for step in 0..200 {
            if step == 100 {
                // Mid-way, with writes still coming: the restarted sync resumes exactly.
                sync_child.sigkill(&format!("in round {round}"));
                kills += 1;
                sync_child = sync(&c, &db);
            }
            let id = rng.range(1, IDS);
            let shard = shard_of(id);
            let before = rows.get(&id).copied();
            // Tenants 1, 3, 5, 7 and amounts 0..600: about a quarter of the rows pass.
            let after = (2 * rng.range(0, 3) + 1, rng.range(0, 599));
            let text = format!("r{round}s{step}");
            let (sql, now) = match (before, rng.below(10)) {
                (None, _) => (
                    format!(
                        "INSERT INTO {TABLE} (id, tenant_id, amount, v) VALUES ({id}, {}, {}, '{text}')",
                        after.0, after.1
                    ),
                    Some(after),
                ),
                (Some(_), 0) => (format!("DELETE FROM {TABLE} WHERE id = {id}"), None),
                (Some(_), 1) => (
                    format!("UPDATE {TABLE} SET v = '{text}' WHERE id = {id}"),
                    before,
                ),
                (Some((_, amount)), 2) => (
                    format!("UPDATE {TABLE} SET tenant_id = {} WHERE id = {id}", after.0),
                    Some((after.0, amount)),
                ),
                (Some((tenant, _)), 3) => (
                    format!("UPDATE {TABLE} SET amount = {} WHERE id = {id}", after.1),
                    Some((tenant, after.1)),
                ),
                (Some(_), _) => (
                    format!(
                        "UPDATE {TABLE} SET tenant_id = {}, amount = {}, v = '{text}' WHERE id = {id}",
                        after.0, after.1
                    ),
                    Some(after),
                ),
            };
            conns[shard].query_drop(&sql).unwrap();
            writes += 1;
            // About two seconds a round: each sync runs for a second before its SIGKILL.
            std::thread::sleep(Duration::from_millis(10));
            match now {
                Some(row) => rows.insert(id, row),
                None => rows.remove(&id),
            };
            if before.is_some_and(passes) != now.is_some_and(passes) {
                moves += 1;
            }
        }
    }
    let expected = rows.values().filter(|r| passes(**r)).count();
    let mirrored = wait_until_filtered_equal(&c, &db);
    assert_eq!(mirrored, expected, "the test's own count of passing rows");
    assert!(
        moves >= 150,
        "only {moves} writes moved a row into or out of the filter"
    );
    sync_child.sigkill("at the end");
    println!(
        "{writes} writes, {moves} moving a row into or out of the filter, {kills} SIGKILLs: \
         the mirror holds the filtered source's {mirrored} rows"
    );
}

#[test]
fn a_rule_filter_vitess_cannot_apply_stops_the_sync_at_once_in_one_line() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = fresh_table(&c, "rf_refused", "v VARCHAR(64)");
    // The first is refused before connecting; the second (a function in the select list)
    // only vttablet judges, and vtgate relays its refusal, which must not be retried.
    let cases = [
        (
            "where v LIKE 'v1%'",
            ["--rule for table rf_refused", "v LIKE 'v1%'"],
        ),
        ("", ["upper(v)", "refused the --rule filter"]),
    ];
    for (filter, reasons) in cases {
        let select = match filter {
            "" => "select id, upper(v) as v from rf_refused".to_string(),
            filter => format!("select * from rf_refused {filter}"),
        };
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("refused.db");
        let began = Instant::now();
        let line = refused_in_one_line(
            &[
                "sync",
                "--vtgate",
                &c.grpc,
                "--keyspace",
                "things",
                "--tablet-type",
                "primary",
                "--db",
                db.to_str().unwrap(),
                "--rule",
                &format!("rf_refused={select}"),
            ],
            dir.path(),
        );
        assert!(reasons.iter().all(|r| line.contains(r)), "{line}");
        println!("{select}: refused in {:?}: {line}", began.elapsed());
    }
}
