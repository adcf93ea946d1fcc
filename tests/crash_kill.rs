//! The real `vtmirror` binary killed with SIGKILL at seeded random points during copy and
//! replication, restarted each time; the final mirror equals the source, with no duplicate and
//! no missing key, and the checkpoint never moves backwards.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// splitmix64: a replayable sequence from the printed seed.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn spawn_sync(endpoint: &str, db: &Path, caught_up: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    cmd.args([
        "sync",
        "--vtgate",
        endpoint,
        "--keyspace",
        "commerce",
        "--heartbeat",
        "1",
    ])
    .arg("--db")
    .arg(db)
    .args(["--max-backoff", "0.2", "--caught-up-idle", "1.5"])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if caught_up {
        cmd.arg("--exit-when-caught-up");
    }
    cmd.spawn().expect("vtmirror binary starts")
}

/// Sequence number N of each shard's `MySQL56/uuid:1-N` in the stored checkpoint.
fn stored_sequence(db: &Path) -> Option<BTreeMap<String, u64>> {
    let conn = rusqlite::Connection::open(db).ok()?;
    let bytes: Vec<u8> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .ok()?;
    let vgtid = vtmirror::checkpoint::decode(&bytes).ok()?;
    Some(
        vgtid
            .shard_gtids
            .iter()
            .map(|s| {
                let n = s
                    .gtid
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (s.shard.clone(), n)
            })
            .collect(),
    )
}

fn copy_completed(db: &Path) -> bool {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row("SELECT copy_completed FROM _vtmirror_checkpoint", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|v| v == 1)
        .unwrap_or(false)
}

fn integrity_ok(db: &Path) -> bool {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
        .map(|s| s == "ok")
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_in_copy_and_replication_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("VTMIRROR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    let kills: usize = std::env::var("VTMIRROR_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut rng = Seeded(seed);
    let (model, server) = source_with_batch(10_000, 100).await;
    // 300 copy batches at 25 responses/s: the copy lasts long enough for kills to land inside it.
    server.faults().set_max_responses_per_sec(Some(25.0));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let (mut in_copy, mut in_replication) = (0, 0);
    let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
    for kill in 0..kills {
        if kill == kills / 2 {
            server.faults().set_max_responses_per_sec(None);
        }
        let mut child = spawn_sync(&server.endpoint(), &db, false);
        model.apply_random_transactions(rng.between(5, 60) as usize);
        tokio::time::sleep(Duration::from_millis(rng.between(150, 900))).await;
        model.apply_random_transactions(rng.between(5, 60) as usize);
        tokio::time::sleep(Duration::from_millis(rng.between(0, 300))).await;
        child.kill().expect("SIGKILL delivered");
        child.wait().unwrap();
        if copy_completed(&db) {
            in_replication += 1
        } else {
            in_copy += 1
        }
        assert!(
            integrity_ok(&db),
            "integrity check failed after kill {kill}"
        );
        if let Some(now) = stored_sequence(&db) {
            for (shard, n) in &now {
                let before = last_seen.get(shard).copied().unwrap_or(0);
                assert!(
                    *n >= before || *n == 0,
                    "checkpoint of shard {shard} moved backwards"
                );
            }
            last_seen = now;
        }
    }
    let status = spawn_sync(&server.endpoint(), &db, true).wait().unwrap();
    assert!(status.success(), "the final sync exits 0 once caught up");
    let rows = assert_mirror_equals_source(&db, &model);
    println!(
        "crash test: seed {seed}, {kills} SIGKILLs ({in_copy} during copy, {in_replication} during replication), \
         {rows} rows compared: 0 missing, 0 duplicate, 0 differing"
    );
    assert!(
        in_copy >= 3 && in_replication >= 3,
        "kills landed in both phases ({in_copy}/{in_replication})"
    );
}
