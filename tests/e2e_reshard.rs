//! Seed 000 against a real cluster (etcd, vtctld, vttablets, vtgate): `vtmirror sync` keeps
//! running while keyspace `customer` is resharded 0 → -80,80-. Needs
//! `scripts/vitess-local.sh up-reshard` (shard 0 only); drives the reshard itself.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::vitess::{assert_same, cluster, sync_process, sync_until_caught_up};

fn script(step: &str) {
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/vitess-local.sh"
        ))
        .arg(step)
        .status()
        .expect("cluster script runs");
    assert!(status.success(), "scripts/vitess-local.sh {step} failed");
    println!(
        "cluster step {step}: {:.0}s",
        started.elapsed().as_secs_f64()
    );
}

fn insert_customers(conn: &mut mysql::Conn, ids: std::ops::Range<i64>) {
    for id in ids {
        conn.query_drop(format!(
            "INSERT INTO customer (customer_id, email) VALUES ({id}, 'c{id}@example.com')"
        ))
        .expect("insert through vtgate");
    }
}

fn mirrored_count(db: &Path, min_id: i64) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM customer WHERE customer_id >= ?1",
                [min_id],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

fn wait_for_rows(db: &Path, min_id: i64, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while mirrored_count(db, min_id) < want {
        assert!(
            Instant::now() < deadline,
            "rows from id {min_id} did not arrive"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stored_shards(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let bytes: Vec<u8> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .unwrap();
    let vgtid = vtmirror::checkpoint::decode(&bytes).unwrap();
    vgtid.shard_gtids.iter().map(|s| s.shard.clone()).collect()
}

/// A consistent copy of a mirror that is being written (SQLite online backup).
fn backup(from: &Path, to: &Path) {
    let src = rusqlite::Connection::open(from).unwrap();
    let mut dst = rusqlite::Connection::open(to).unwrap();
    rusqlite::backup::Backup::new(&src, &mut dst)
        .unwrap()
        .run_to_completion(1_000, Duration::ZERO, None)
        .unwrap();
}

#[test]
fn seed_000_sync_follows_a_reshard_and_an_old_position_fails_clearly_after_shard_0_is_gone() {
    let Some(c) = cluster("RESHARD_") else { return };
    let mut conn = c.sql("customer");
    conn.query_drop("DELETE FROM customer").unwrap();
    insert_customers(&mut conn, 1..201);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("customer.db");
    let mut sync = sync_process(&c.grpc, "customer", &db, &["--tablet-type", "replica"]);
    wait_for_rows(&db, 1, 200);
    assert_eq!(stored_shards(&db), vec!["0"]);
    let (before_a, before_b) = (dir.path().join("pre-a.db"), dir.path().join("pre-b.db"));
    backup(&db, &before_a);
    backup(&db, &before_b);

    script("reshard");
    insert_customers(&mut conn, 1_000..1_100);
    wait_for_rows(&db, 1_000, 100);
    let mut shards = stored_shards(&db);
    shards.sort();
    assert_eq!(
        shards,
        vec!["-80", "80-"],
        "the checkpoint moved to the new shards"
    );
    assert!(
        sync.try_wait().unwrap().is_none(),
        "sync kept running through the reshard"
    );
    sync.kill().unwrap();
    sync.wait().unwrap();
    assert_eq!(assert_same(&mut conn, &db, "customer", 1), 300);

    // While shard 0 exists, a pre-reshard checkpoint replays it and switches by itself.
    let (ok, err) = sync_until_caught_up(
        &c.grpc,
        "customer",
        &before_a,
        &["--tablet-type", "replica"],
    );
    assert!(ok, "resume from the pre-reshard checkpoint failed: {err}");
    assert_eq!(assert_same(&mut conn, &before_a, "customer", 1), 300);

    script("remove-shard0");
    let (ok, err) = sync_until_caught_up(
        &c.grpc,
        "customer",
        &before_b,
        &["--tablet-type", "replica"],
    );
    assert!(!ok, "starting from a removed shard must fail");
    println!("old position after shard 0 removal: {}", err.trim());
    assert!(
        err.contains("not found") || err.contains("shard"),
        "the error names the problem: {err}"
    );
    assert_eq!(
        stored_shards(&before_b),
        vec!["0"],
        "the mirror is left untouched"
    );
    assert_eq!(mirrored_count(&before_b, 1), 200);
}
