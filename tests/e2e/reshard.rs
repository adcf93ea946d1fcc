//! Seed 000 against a real cluster (etcd, vtctld, vttablets, vtgate): `vtmirror sync` keeps
//! running while keyspace `customer` is resharded 0 → -80,80-. Needs
//! `scripts/vitess-local.sh up-reshard` (shard 0 only); drives the reshard itself. Alongside,
//! a mirror of every keyspace (`customer` and `onlineddl`, tables named `keyspace.table`)
//! follows the same reshard from the primaries while `onlineddl` is written, SIGKILLed in its
//! copy, after the switch and at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::vitess::{
    assert_mirror_holds, assert_same, checkpoint_shards, cluster, run_sql, seed_rows, sync_process,
    sync_then_sigkill, sync_until_caught_up, Cleanup, Cluster, KillOnDrop, Naming, Part,
    WriteTarget, Writer,
};
use mysql::prelude::Queryable;
use vtmirror::mirror::schema::quote;

/// The mirror of every keyspace streams from the primaries: a replica's schema learns the
/// `onlineddl` table created here only at its next reload.
const EVERY: [&str; 2] = ["--tablet-type", "primary"];
/// Rows seeded in this test's table in keyspace `onlineddl`, `ksr_items`.
const ODL_ROWS: i64 = 300;

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

/// Customers from `min_id` in the mirror's `table` (`customer`, or `customer.customer` in the
/// mirror of every keyspace).
fn mirrored_count(db: &Path, table: &str, min_id: i64) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE customer_id >= ?1",
                    quote(table)
                ),
                [min_id],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// Waits for `want` customers from `min_id`; `alive` fails the test when the sync ended.
fn wait_for_rows(db: &Path, table: &str, min_id: i64, want: i64, mut alive: impl FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while mirrored_count(db, table, min_id) < want {
        alive();
        assert!(
            Instant::now() < deadline,
            "rows from id {min_id} did not arrive in {table} of {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stored_shards(db: &Path) -> Vec<String> {
    checkpoint_shards(db).into_iter().map(|(_, s)| s).collect()
}

/// `onlineddl.ksr_items`, seeded, and a writer changing it until stopped.
fn write_onlineddl(c: &Cluster) -> Writer {
    let mut conn = c.sql("onlineddl");
    run_sql(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS ksr_items",
            "CREATE TABLE ksr_items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64))",
        ],
    );
    let columns = ("id", "name");
    seed_rows(&mut conn, "ksr_items", columns, 1..=ODL_ROWS, "seed-");
    let target = WriteTarget::new("onlineddl", "ksr_items", columns, 1..=ODL_ROWS, 10_000);
    Writer::start(c, &[target])
}

/// The mirror of every keyspace, started (again) on `db`.
fn start_every(grpc: &str, db: &Path) -> KillOnDrop {
    KillOnDrop(sync_process(grpc, "*", db, &EVERY))
}

/// Catches the mirror of every keyspace up and asserts it equals the source keyspace by
/// keyspace, its checkpoint on the new shards of `customer`.
fn every_keyspace_equals_the_source(c: &Cluster, db: &Path, customers: usize) {
    let (ok, err) = sync_until_caught_up(&c.grpc, "*", db, &EVERY);
    assert!(ok, "the mirror of every keyspace failed to catch up: {err}");
    let parts = [Part::whole("customer"), Part::whole("onlineddl")];
    let counts = assert_mirror_holds(c, db, Naming::Qualified, &parts);
    assert_eq!(counts["customer.customer"], customers, "{counts:?}");
    assert!(counts["onlineddl.ksr_items"] > 0, "{counts:?}");
    assert_eq!(
        checkpoint_shards(db),
        [("customer", "-80"), ("customer", "80-"), ("onlineddl", "0")]
            .map(|(k, s)| (k.to_string(), s.to_string())),
        "the checkpoint moved to the new shards of customer"
    );
    println!("mirror of every keyspace equals the source: {counts:?}");
}

/// `vtmirror tail --format json` from "current", writing to `out`.
fn start_tail(grpc: &str, out: &Path) -> std::process::Child {
    let file = std::fs::File::create(out).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args([
            "tail",
            "--vtgate",
            grpc,
            "--keyspace",
            "customer",
            "--tablet-type",
            "replica",
        ])
        .args([
            "--pos",
            r#"[ {"shard":"", "gtid":"current"} ]"#,
            "--format",
            "json",
        ])
        .stdout(file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vtmirror tail starts")
}

/// The seed's client view: transactions on shard 0 first, then VGTIDs naming -80 and 80-, and
/// every row inserted after the switch.
fn check_tail_followed_the_reshard(out: &Path) {
    let text = std::fs::read_to_string(out).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let shard_sets: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| e["vgtid"]["shard_gtids"].as_array())
        .map(|list| {
            list.iter()
                .filter_map(|s| s["shard"].as_str().map(String::from))
                .collect()
        })
        .collect();
    let first_new = shard_sets
        .iter()
        .position(|s| s.contains(&"-80".to_string()) && s.contains(&"80-".to_string()));
    assert!(
        first_new.is_some(),
        "tail saw the VGTID move to -80 and 80- ({} events)",
        events.len()
    );
    assert!(
        shard_sets[..first_new.unwrap()]
            .iter()
            .any(|s| s == &vec!["0".to_string()]),
        "tail saw shard 0 first"
    );
    let inserted: std::collections::BTreeSet<i64> = events
        .iter()
        .filter(|e| e["event"] == "row" && e["op"] == "insert")
        .filter_map(|e| {
            e["after"]["customer_id"]
                .as_str()
                .and_then(|v| v.parse().ok())
        })
        .filter(|id| *id >= 1_000)
        .collect();
    assert_eq!(
        inserted.len(),
        100,
        "tail printed every row inserted after the switch"
    );
}

/// `vtmirror status --json` on the live mirror: replicating, on the new shards, not lagging.
fn check_status_while_syncing(db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["status", "--json", "--db"])
        .arg(db)
        .output()
        .expect("status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["state"], "replicating", "{status}");
    let mut shards: Vec<&str> = status["checkpoint"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["shard"].as_str())
        .collect();
    shards.sort();
    assert_eq!(shards, vec!["-80", "80-"]);
    assert!(
        status["lag_seconds"].as_i64().is_some_and(|lag| lag < 60),
        "{status}"
    );
}

/// SIGKILLs from the start of a reshard until it is `done` and `kills` happened (the soak's
/// `VTMIRROR_E2E_RESHARD_KILLS`): of the mirror of every keyspace `every`, and, three kills in
/// eight, of a new mirror each eight kills, so that copies are killed across the reshard too.
/// Each kill is counted by the phase and the shards of `customer` its checkpoint stored.
/// Returns the count and the new mirrors.
fn kills_across_the_reshard(
    grpc: &str,
    every: &Path,
    kills: usize,
    done: &std::sync::atomic::AtomicBool,
) -> (std::collections::BTreeMap<String, usize>, Vec<PathBuf>) {
    let delays_ms = [150, 300, 700, 900, 1_500, 600, 2_200, 1_100];
    let (mut tally, mut new_mirrors) = (std::collections::BTreeMap::new(), Vec::new());
    let mut n = 0;
    while n < kills || !done.load(std::sync::atomic::Ordering::SeqCst) {
        let step = n % delays_ms.len();
        if step == 0 {
            new_mirrors.push(every.with_file_name(format!("new-{n}.db")));
        }
        let db = if step < 3 {
            new_mirrors.last().expect("a new mirror")
        } else {
            every
        };
        let delay = Duration::from_millis(delays_ms[step]);
        let at = match sync_then_sigkill(grpc, "*", db, &EVERY, delay) {
            None => "before the first commit".to_string(),
            Some(phase) => {
                let shards: Vec<String> = (checkpoint_shards(db).into_iter())
                    .filter(|(k, _)| k == "customer")
                    .map(|(_, s)| s)
                    .collect();
                format!("{phase} on customer/{}", shards.join(","))
            }
        };
        *tally.entry(at).or_default() += 1;
        n += 1;
    }
    (tally, new_mirrors)
}

/// The reshard, with mirrors of every keyspace SIGKILLed over and over meanwhile when the
/// soak asks for it (`VTMIRROR_E2E_RESHARD_KILLS`); returns the sync of `every` running again
/// and the mirrors the kills made.
fn reshard_under_kills(
    c: &Cluster,
    every: &Path,
    mut every_sync: KillOnDrop,
) -> (KillOnDrop, Vec<PathBuf>) {
    let kills: usize = (std::env::var("VTMIRROR_E2E_RESHARD_KILLS").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if kills == 0 {
        script("reshard");
        return (every_sync, Vec::new());
    }
    every_sync.sigkill("before the reshard's kills");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (tally, new_mirrors) = std::thread::scope(|s| {
        let killer = s.spawn(|| kills_across_the_reshard(&c.grpc, every, kills, &done));
        script("reshard");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        killer.join().expect("the kill loop")
    });
    let total: usize = tally.values().sum();
    println!(
        "reshard kill test: {total} SIGKILLs across the reshard, {} new mirrors (phase and shards stored at each kill: {tally:?})",
        new_mirrors.len()
    );
    (start_every(&c.grpc, every), new_mirrors)
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
    let _cleanup = Cleanup::new(&c).then("onlineddl", "DROP TABLE IF EXISTS ksr_items");
    let writer = write_onlineddl(&c);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("customer.db");
    let mut sync = sync_process(&c.grpc, "customer", &db, &["--tablet-type", "replica"]);
    let every = dir.path().join("every.db");
    let mut every_sync = start_every(&c.grpc, &every);
    std::thread::sleep(Duration::from_millis(1_000));
    every_sync.sigkill("in its copy");
    every_sync = start_every(&c.grpc, &every);
    wait_for_rows(&db, "customer", 1, 200, || {});
    wait_for_rows(&every, "customer.customer", 1, 200, || {
        every_sync.assert_running("before the reshard")
    });
    assert_eq!(stored_shards(&db), vec!["0"]);
    let (before_a, before_b) = (dir.path().join("pre-a.db"), dir.path().join("pre-b.db"));
    backup(&db, &before_a);
    backup(&db, &before_b);

    let tail_out = dir.path().join("tail.jsonl");
    let mut tail = start_tail(&c.grpc, &tail_out);
    std::thread::sleep(Duration::from_secs(2));

    let (restarted, new_mirrors) = reshard_under_kills(&c, &every, every_sync);
    every_sync = restarted;
    insert_customers(&mut conn, 1_000..1_100);
    wait_for_rows(&db, "customer", 1_000, 100, || {});
    wait_for_rows(&every, "customer.customer", 1_000, 100, || {
        every_sync.assert_running("through the reshard")
    });
    every_sync.sigkill("after the switch");
    every_sync = start_every(&c.grpc, &every);
    check_status_while_syncing(&db);
    std::thread::sleep(Duration::from_secs(2));
    tail.kill().unwrap();
    tail.wait().unwrap();
    check_tail_followed_the_reshard(&tail_out);
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
    let rounds = writer.stop();
    std::thread::sleep(Duration::from_secs(1));
    every_sync.sigkill("after the writes");
    println!("onlineddl writer: {rounds} rounds");
    every_keyspace_equals_the_source(&c, &every, 300);
    for db in &new_mirrors {
        every_keyspace_equals_the_source(&c, db, 300);
    }

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
    assert_eq!(mirrored_count(&before_b, "customer", 1), 200);

    // The mirror of every keyspace resumes on the new shards once shard 0 is gone.
    insert_customers(&mut conn, 2_000..2_010);
    every_keyspace_equals_the_source(&c, &every, 310);
}
